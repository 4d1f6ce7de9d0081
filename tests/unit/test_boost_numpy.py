"""examples/boost_numpy (gradient-boosted trees in numpy on a fixed synthetic classification task): its block declares
nine editable parameters, it writes a finite `val_logloss` to metrics.json, below a constant guess's, the same one for
the same SEED, deeper Newton-step trees beat the default stumps by far, a node too small to split stays a leaf, and a
corner of its ranges still finishes."""

from __future__ import annotations

import math
from pathlib import Path

from tests.unit.example_run import run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "boost_numpy" / "train.py"
SMALL = {"ROUNDS": 60}  # a fifth of the default budget: fast
CONSTANT_GUESS = math.log(2.0)  # the log loss of p = 0.5; the labels are close to balanced


def run(changes: dict, folder: Path) -> dict:
    return run_example("boost_numpy", {**SMALL, **changes}, folder)


def test_the_block_declares_nine_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "ROUNDS"} == {"LEARNING_RATE", "MAX_DEPTH", "MIN_LEAF", "L2_REG", "MIN_GAIN",
                                               "SUBSAMPLE", "COLSAMPLE", "BINS", "NEWTON"}
    assert specs["LEARNING_RATE"].log and specs["L2_REG"].log and specs["NEWTON"].kind.value == "bool"
    assert specs["ROUNDS"].value == 300 and specs["MAX_DEPTH"].value == 1


def test_the_defaults_write_a_finite_val_logloss_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and first["rounds"] == 60
    assert 0.49 < first["val_logloss"] < CONSTANT_GUESS - 0.03  # above the Bayes rule's, below a constant guess
    assert 0 < first["splits"] <= 60  # stumps: one split per tree at most
    assert 0.0 < first["val_error"] < 0.5 and first["train_logloss"] < CONSTANT_GUESS
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["val_logloss"] != first["val_logloss"]


def test_deeper_newton_trees_beat_the_default_stumps_by_far(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    tuned = run({"MAX_DEPTH": 3, "NEWTON": True, "MIN_LEAF": 20, "L2_REG": 1.0, "BINS": 32, "LEARNING_RATE": 0.3},
                tmp_path / "tuned")
    assert tuned["val_logloss"] < default["val_logloss"] - 0.04  # the noise across seeds is about 0.002
    assert tuned["splits"] > 3 * default["splits"]


def test_a_node_smaller_than_two_leaves_is_not_split(tmp_path: Path) -> None:
    # 300 rows per tree cannot make two leaves of 200: every tree is a single leaf, the scores only shift.
    metrics = run({"SUBSAMPLE": 0.1, "MIN_LEAF": 200, "MAX_DEPTH": 6}, tmp_path / "leaf")
    assert metrics["splits"] == 0 and abs(metrics["val_logloss"] - CONSTANT_GUESS) < 0.01


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"MAX_DEPTH": 6, "MIN_LEAF": 1, "L2_REG": 0.001, "LEARNING_RATE": 1.0, "NEWTON": True, "BINS": 64,
              "SUBSAMPLE": 0.1, "COLSAMPLE": 0.1, "MIN_GAIN": 0.0, "ROUNDS": 10}
    metrics = run(corner, tmp_path / "corner")
    assert math.isfinite(metrics["val_logloss"]) and metrics["splits"] > 0 and metrics["rounds"] == 10
    stumps = run({"BINS": 2, "MIN_GAIN": 5.0, "COLSAMPLE": 1.0, "SUBSAMPLE": 1.0, "ROUNDS": 10}, tmp_path / "stumps")
    assert math.isfinite(stumps["val_logloss"]) and stumps["splits"] <= 10
