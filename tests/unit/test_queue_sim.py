"""examples/queue_sim (a help desk's staffing and dispatch policy in a discrete-event simulation): its block declares
ten editable parameters, it writes a finite `cost_per_hour` to metrics.json that is the sum of its parts, the same
one for the same SEED, a staffed-up policy with urgent customers first costs far less than the understaffed default,
each lever of the policy does what it says, and a corner of its ranges still finishes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from tests.unit.example_run import run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "queue_sim" / "train.py"
SMALL = {"HOURS": 96}  # four days instead of a hundred: fast
PARTS = ("agents", "on_call", "waiting", "rejected", "abandoned")


def run(changes: dict, folder: Path) -> dict:
    return run_example("queue_sim", {**SMALL, **changes}, folder)


def test_the_block_declares_ten_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "HOURS"} == {"SERVERS", "PEAK_EXTRA", "ON_CALL", "CALL_IN_QUEUE", "RELEASE_IDLE",
                                              "ADMIT_LIMIT", "DISCIPLINE", "URGENT_LEAD", "RESERVED", "SHORT_FIRST"}
    assert specs["CALL_IN_QUEUE"].log and specs["RELEASE_IDLE"].log and specs["SHORT_FIRST"].kind.value == "bool"
    assert specs["DISCIPLINE"].choices == ("fifo", "priority", "lead")
    assert specs["HOURS"].value == 2400 and specs["SEED"].value == 0


def test_the_cost_is_the_sum_of_its_parts_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and math.isfinite(first["cost_per_hour"])
    assert first["cost_per_hour"] == pytest.approx(sum(first[f"{part}_per_hour"] for part in PARTS))
    assert first["agents_per_hour"] == 8 * 30.0 and first["calls"] == 0 and first["on_call_per_hour"] == 0.0
    # About a customer a minute; nobody is turned away below the default limit, and nobody is counted twice.
    assert 0.9 * 96 * 60 < first["customers"] < 1.1 * 96 * 60 and first["rejected"] == 0
    assert first["served"] + first["abandoned"] <= first["customers"] and first["abandoned"] > 0
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["cost_per_hour"] != first["cost_per_hour"] and other["customers"] != first["customers"]


def test_more_agents_at_the_peak_and_urgent_customers_first_cost_far_less(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    tuned = run({"SERVERS": 11, "PEAK_EXTRA": 6, "DISCIPLINE": "priority", "ON_CALL": 3, "CALL_IN_QUEUE": 10},
                tmp_path / "tuned")
    assert tuned["cost_per_hour"] < default["cost_per_hour"] / 2
    assert tuned["agents_per_hour"] >= 30.0 * (11 + 6 * 6 / 24) and tuned["calls"] > 0


def test_each_lever_does_what_it_says(tmp_path: Path) -> None:
    turned_away = run({"ADMIT_LIMIT": 1}, tmp_path / "admit")
    assert turned_away["rejected"] > 1000 and turned_away["rejected_per_hour"] == 40.0 * turned_away["rejected"] / 96
    # Five agents held back for urgent customers out of two: no regular customer is ever served, most give up.
    reserved = run({"SERVERS": 2, "RESERVED": 5}, tmp_path / "reserved")
    assert reserved["abandoned"] > reserved["customers"] / 2 and reserved["served"] < reserved["customers"] / 4
    called = run({"ON_CALL": 15, "CALL_IN_QUEUE": 1, "RELEASE_IDLE": 1.0}, tmp_path / "called")
    assert called["calls"] > 15 and called["on_call_per_hour"] > 15.0 * called["calls"] / 96
    assert called["abandoned"] < turned_away["customers"] / 8


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"SERVERS": 1, "ADMIT_LIMIT": 500, "DISCIPLINE": "lead", "URGENT_LEAD": 240.0, "RESERVED": 5,
              "SHORT_FIRST": True, "PEAK_EXTRA": 15, "ON_CALL": 15, "CALL_IN_QUEUE": 200, "RELEASE_IDLE": 240.0,
              "HOURS": 24}
    metrics = run(corner, tmp_path / "corner")
    assert math.isfinite(metrics["cost_per_hour"]) and metrics["served"] > 0
    assert metrics["agents_per_hour"] >= 30.0 * (1 + 15 * 6 / 24)
