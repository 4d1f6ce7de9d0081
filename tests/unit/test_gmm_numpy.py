"""examples/gmm_numpy (a Gaussian mixture fitted by EM in numpy to a fixed synthetic data set): its block declares
eight editable parameters, it writes a finite `val_nll` to metrics.json, worse than one full Gaussian's at the
defaults, the same one for the same SEED, full covariances with enough components beat the default by far, scaled
inputs help spherical components, the broad component keeps its fixed weight, a value outside its range fails in one
line, and a corner of its ranges still finishes."""

from __future__ import annotations

import math
from pathlib import Path

from tests.unit.example_run import refusal, run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "gmm_numpy" / "train.py"
SMALL = {"STEPS": 50}  # a quarter of the default budget: fast (these fits converge well within it)
ONE_GAUSSIAN = 13.8  # the validation NLL of one Gaussian with a full covariance


def run(changes: dict, folder: Path) -> dict:
    return run_example("gmm_numpy", {**SMALL, **changes}, folder)


def test_the_block_declares_eight_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "STEPS"} == {"COMPONENTS", "COVARIANCE", "INIT", "RESTARTS", "REG_COVAR", "SCALING",
                                              "BACKGROUND", "ANNEAL"}
    assert specs["COMPONENTS"].log and specs["REG_COVAR"].log and specs["ANNEAL"].log
    assert specs["COVARIANCE"].choices == ("spherical", "diag", "full")
    assert specs["INIT"].choices == ("random", "kmeans++", "kmeans")
    assert specs["STEPS"].value == 200 and specs["SEED"].value == 0


def test_the_defaults_write_a_finite_val_nll_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and first["components"] == 3 and first["steps"] == 50
    assert ONE_GAUSSIAN + 2.0 < first["val_nll"] < 25.0 and math.isfinite(first["train_nll"])
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["val_nll"] != first["val_nll"] and abs(other["val_nll"] - first["val_nll"]) < 0.5


def test_full_covariances_with_enough_components_beat_the_default_by_far(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    full = run({"COVARIANCE": "full"}, tmp_path / "full")
    tuned = run({"COMPONENTS": 8, "COVARIANCE": "full"}, tmp_path / "tuned")
    assert tuned["val_nll"] < full["val_nll"] - 1.0 < default["val_nll"] - 5.0
    assert tuned["val_nll"] < ONE_GAUSSIAN - 2.0 and tuned["components"] == 8


def test_scaling_helps_spherical_components_and_the_broad_component_keeps_its_weight(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    scaled = run({"SCALING": "standard"}, tmp_path / "scaled")  # the stretched feature no longer sets the variance
    assert scaled["val_nll"] < default["val_nll"] - 3.0
    single = run({"COMPONENTS": 1, "BACKGROUND": 0.2, "STEPS": 20}, tmp_path / "single")
    assert single["largest_weight"] == single["smallest_weight"] == 0.8 and single["steps"] == 20


def test_a_value_outside_its_range_fails_in_one_line(tmp_path: Path) -> None:
    assert refusal("gmm_numpy", "COMPONENTS = 3 ", "COMPONENTS = 32", tmp_path) == "train.py: COMPONENTS = 32 is not a valid int in [1, 24]"


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"COMPONENTS": 24, "COVARIANCE": "full", "INIT": "kmeans", "RESTARTS": 10, "REG_COVAR": 1e-6,
              "SCALING": "robust", "BACKGROUND": 0.2, "ANNEAL": 10.0, "STEPS": 20}
    metrics = run(corner, tmp_path / "corner")
    assert math.isfinite(metrics["val_nll"]) and metrics["components"] == 24 and metrics["steps"] == 20
    smooth = run({"COMPONENTS": 1, "REG_COVAR": 1.0, "RESTARTS": 10, "INIT": "kmeans++", "STEPS": 20},
                 tmp_path / "smooth")  # one spherical Gaussian on the unscaled inputs: far worse than the default
    assert math.isfinite(smooth["val_nll"]) and smooth["val_nll"] > 20.0 and smooth["steps"] == 20
