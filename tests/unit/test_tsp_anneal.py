"""examples/tsp_anneal (simulated annealing on a fixed 60-city TSP): its block declares eight editable parameters,
it writes a finite `tour_length` to metrics.json with its defaults, the same one for the same SEED, and a corner of
its ranges (hot, slow to cool, reheating every stage, no 2-opt) still finishes with a valid tour."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

from workloads.hyperblock import apply_changes, parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "tsp_anneal" / "train.py"


def tour_length(source: str, folder: Path) -> dict:
    folder.mkdir()
    (folder / "train.py").write_text(source)
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "metrics.json").read_text())


def test_the_block_declares_eight_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "STEPS"} == {"INITIAL_TEMPERATURE", "COOLING", "MOVES_PER_TEMPERATURE", "TWO_OPT_SHARE",
                                              "OR_OPT_SHARE", "REHEAT_AFTER", "REHEAT_FRACTION", "GREEDY_START"}
    assert specs["INITIAL_TEMPERATURE"].log and specs["GREEDY_START"].kind.value == "bool"


def test_the_defaults_write_a_finite_tour_length_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    source = SCRIPT.read_text()
    first, second = tour_length(source, tmp_path / "a"), tour_length(source, tmp_path / "b")
    assert math.isfinite(first["tour_length"]) and first == second
    # 60 cities in the unit square: no closed tour is shorter than about 0.7 * sqrt(60 * area) - a margin, nor
    # longer than 60 diagonals.
    assert 4.0 < first["tour_length"] < 60 * math.sqrt(2) and first["steps"] == 40000
    other = tour_length(apply_changes(source, {"SEED": 1}), tmp_path / "c")
    assert other["tour_length"] != first["tour_length"]


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"INITIAL_TEMPERATURE": 10.0, "COOLING": 0.9999, "MOVES_PER_TEMPERATURE": 1, "TWO_OPT_SHARE": 0.0,
              "OR_OPT_SHARE": 1.0, "REHEAT_AFTER": 1, "REHEAT_FRACTION": 0.001, "GREEDY_START": True, "STEPS": 1000}
    metrics = tour_length(apply_changes(SCRIPT.read_text(), corner), tmp_path / "corner")
    assert math.isfinite(metrics["tour_length"]) and metrics["reheats"] > 0 and metrics["steps"] == 1000
