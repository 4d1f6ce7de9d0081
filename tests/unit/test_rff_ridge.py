"""examples/rff_ridge (random-Fourier-feature kernel ridge regression in numpy on a fixed synthetic task): its block
declares ten editable parameters, it writes a finite `val_rmse` to metrics.json, below the training mean's, the same
one for the same SEED, a log target with a Laplace kernel and a light penalty beats the default by far, unscaled
inputs do far worse, clipping the contaminated targets helps, the linear columns and the row share are what they
say, a value outside its range fails in one line, and a corner of its ranges still finishes."""

from __future__ import annotations

import math
from pathlib import Path

from tests.unit.example_run import refusal, run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "rff_ridge" / "train.py"
SMALL = {"MODELS": 2}  # a quarter of the default budget: fast
MEAN_GUESS = 2.26  # the validation RMSE of predicting the (contaminated) training mean


def run(changes: dict, folder: Path) -> dict:
    return run_example("rff_ridge", {**SMALL, **changes}, folder)


def test_the_block_declares_ten_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "MODELS"} == {"FEATURES", "BANDWIDTH", "RIDGE", "KERNEL", "ORTHOGONAL", "SCALING",
                                               "TARGET", "TARGET_CLIP", "LINEAR", "ROW_SHARE"}
    assert specs["FEATURES"].log and specs["BANDWIDTH"].log and specs["RIDGE"].log and specs["TARGET_CLIP"].log
    assert specs["KERNEL"].choices == ("gaussian", "laplace", "matern") and specs["LINEAR"].kind.value == "bool"
    assert specs["MODELS"].value == 8 and specs["SEED"].value == 0


def test_the_defaults_write_a_finite_val_rmse_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and first["models"] == 2 and first["columns"] == 256 and first["rows_per_model"] == 4000
    assert 1.0 < first["val_rmse"] < MEAN_GUESS - 0.5
    assert first["train_rmse"] > first["val_rmse"]  # the training targets are the contaminated ones
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["val_rmse"] != first["val_rmse"] and abs(other["val_rmse"] - first["val_rmse"]) < 0.05


def test_a_log_target_with_a_laplace_kernel_beats_the_default_by_far(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    tuned = run({"TARGET": "log", "KERNEL": "laplace", "RIDGE": 1e-5}, tmp_path / "tuned")
    assert tuned["val_rmse"] < default["val_rmse"] - 0.4  # the noise across seeds at the defaults is about 0.01


def test_scaling_and_clipping_matter_and_the_columns_and_rows_are_what_they_say(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    unscaled = run({"SCALING": "none"}, tmp_path / "unscaled")  # the wide input that does not matter dominates
    assert unscaled["val_rmse"] > MEAN_GUESS
    clipped = run({"TARGET_CLIP": 8.0}, tmp_path / "clipped")
    assert clipped["val_rmse"] < default["val_rmse"] - 0.1
    narrow = run({"LINEAR": True, "ROW_SHARE": 0.1}, tmp_path / "narrow")
    assert narrow["columns"] == 256 + 9 and narrow["rows_per_model"] == 400


def test_a_value_outside_its_range_fails_in_one_line(tmp_path: Path) -> None:
    assert refusal("rff_ridge", "FEATURES = 256 ", "FEATURES = 4096", tmp_path) == "train.py: FEATURES = 4096 is not a valid int in [16, 1024]"


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"FEATURES": 1024, "RIDGE": 1e-8, "ROW_SHARE": 0.1, "KERNEL": "laplace", "ORTHOGONAL": True,
              "SCALING": "robust", "TARGET": "standard", "TARGET_CLIP": 0.5, "LINEAR": True, "BANDWIDTH": 0.01,
              "MODELS": 1}
    metrics = run(corner, tmp_path / "corner")
    assert math.isfinite(metrics["val_rmse"]) and metrics["columns"] == 1033 and metrics["rows_per_model"] == 400
    smooth = run({"FEATURES": 16, "BANDWIDTH": 100.0, "RIDGE": 10.0, "KERNEL": "matern", "MODELS": 1},
                 tmp_path / "smooth")  # all but constant features, shrunk to zero: the raw target is not centred
    assert math.isfinite(smooth["val_rmse"]) and smooth["val_rmse"] > MEAN_GUESS
