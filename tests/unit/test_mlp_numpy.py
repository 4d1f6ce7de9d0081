"""examples/mlp_numpy (a numpy MLP regressing a fixed noisy 2-D surface): its block declares nine editable parameters,
it writes a finite `val_loss` to metrics.json, the same one for the same SEED, momentum and a larger step beat the
default by far, every activation and depth trains, and a diverging setting fails with a message that says what to
lower."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from workloads.hyperblock import apply_changes, parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "mlp_numpy" / "train.py"
SMALL = {"STEPS": 300}  # under a third of the default budget: fast


def train(source: str, folder: Path) -> subprocess.CompletedProcess:
    folder.mkdir()
    (folder / "train.py").write_text(source)
    return subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=60)


def metrics(source: str, folder: Path) -> dict:
    done = train(source, folder)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "metrics.json").read_text())


def test_the_block_declares_nine_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "STEPS"} == {"HIDDEN", "LAYERS", "ACTIVATION", "LEARNING_RATE", "MOMENTUM",
                                              "WEIGHT_DECAY", "INIT_SCALE", "BATCH_SIZE", "COSINE_DECAY"}
    assert specs["LEARNING_RATE"].log and specs["WEIGHT_DECAY"].log and specs["COSINE_DECAY"].kind.value == "bool"
    assert specs["ACTIVATION"].choices == ("relu", "tanh", "sin")


def test_the_defaults_write_a_finite_val_loss_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    source = apply_changes(SCRIPT.read_text(), SMALL)
    first, second = metrics(source, tmp_path / "a"), metrics(source, tmp_path / "b")
    assert math.isfinite(first["val_loss"]) and first == second and first["steps"] == 300
    assert first["val_loss"] > 0.01  # not below the noise's variance (0.1 ** 2)
    other = metrics(apply_changes(source, {"SEED": 1}), tmp_path / "c")
    assert other["val_loss"] != first["val_loss"]


def test_momentum_and_a_larger_step_beat_the_default_by_far(tmp_path: Path) -> None:
    source = apply_changes(SCRIPT.read_text(), SMALL)
    default = metrics(source, tmp_path / "default")
    tuned = metrics(apply_changes(source, {"LEARNING_RATE": 0.05, "MOMENTUM": 0.9}), tmp_path / "tuned")
    assert tuned["val_loss"] < default["val_loss"] / 2


@pytest.mark.parametrize("activation", ["relu", "tanh", "sin"])
def test_every_activation_trains_at_every_depth_corner(tmp_path: Path, activation: str) -> None:
    for layers, hidden, batch in ((1, 4, 4), (3, 64, 128)):
        changes = {"ACTIVATION": activation, "LAYERS": layers, "HIDDEN": hidden, "BATCH_SIZE": batch, "STEPS": 100,
                   "COSINE_DECAY": True, "WEIGHT_DECAY": 0.1, "INIT_SCALE": 0.1}
        result = metrics(apply_changes(SCRIPT.read_text(), changes), tmp_path / f"{layers}")
        assert math.isfinite(result["val_loss"]) and result["steps"] == 100


def test_a_diverging_setting_fails_and_says_what_to_lower(tmp_path: Path) -> None:
    changes = {"LEARNING_RATE": 0.5, "MOMENTUM": 0.99, "INIT_SCALE": 4.0, "ACTIVATION": "tanh", "LAYERS": 3, **SMALL}
    done = train(apply_changes(SCRIPT.read_text(), changes), tmp_path / "diverge")
    assert done.returncode != 0 and "lower LEARNING_RATE" in done.stderr
    assert not (tmp_path / "diverge" / "metrics.json").exists()
