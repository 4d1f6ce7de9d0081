"""The yield benchmark's mean real gain over sessions of differently scaled objectives is read in noise floors."""

from __future__ import annotations

import pytest

from benchmarks.level2_yield import in_noise_floors


def test_real_gains_are_averaged_in_units_of_each_traces_noise_floor() -> None:
    records = [{"real_gain": {"delta": 2.0, "quality_delta": -6.0}, "simulated": {"noise_sd": 12.0}},  # a makespan
               {"real_gain": {"delta": -0.002, "quality_delta": -0.04}, "simulated": {"noise_sd": 0.04}},  # an RMSE
               {"real_gain": None, "simulated": None},  # a session that activated nothing
               {"real_gain": {"delta": 1.0, "quality_delta": None}, "simulated": {"noise_sd": 0.0}}]  # no noise floor
    quality = in_noise_floors(records, "quality_delta")
    assert quality["sessions"] == 2 and quality["mean"] == pytest.approx((-0.5 - 1.0) / 2)
    running = in_noise_floors(records, "delta")
    assert running["sessions"] == 2 and running["mean"] == pytest.approx((2.0 / 12 - 0.05) / 2, abs=1e-6)
