"""examples/knapsack_ga (a genetic algorithm on a fixed 200-item 0/1 knapsack): its block declares nine editable
parameters, it writes a `value_gap` in [0, 1] to metrics.json against the exact optimum, the same one for the same
SEED, better settings close most of the default's gap, and a corner of its ranges still finishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from workloads.hyperblock import apply_changes, parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "knapsack_ga" / "train.py"
SMALL = {"EVALUATIONS": 4000}  # a fifth of the default budget: fast


def run(source: str, folder: Path) -> dict:
    folder.mkdir()
    (folder / "train.py").write_text(source)
    done = subprocess.run([sys.executable, "train.py"], cwd=folder, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads((folder / "metrics.json").read_text())


def test_the_block_declares_nine_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "EVALUATIONS"} == {"POPULATION", "MUTATION_RATE", "CROSSOVER_RATE", "CROSSOVER",
                                                    "SELECTION", "TOURNAMENT_SIZE", "ELITES", "REPAIR", "PENALTY"}
    assert specs["MUTATION_RATE"].log and specs["REPAIR"].kind.value == "bool"
    assert specs["SELECTION"].choices == ("roulette", "tournament", "rank")


def test_the_gap_is_measured_against_the_exact_optimum_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    source = apply_changes(SCRIPT.read_text(), SMALL)
    first, second = run(source, tmp_path / "a"), run(source, tmp_path / "b")
    assert first == second and first["evaluations"] <= 4000
    assert first["best_value"] <= first["optimum"]
    assert first["value_gap"] == (first["optimum"] - first["best_value"]) / first["optimum"] and 0 < first["value_gap"] < 1
    other = run(apply_changes(source, {"SEED": 1}), tmp_path / "c")
    assert other["optimum"] == first["optimum"] and other["value_gap"] != first["value_gap"]


def test_the_parameters_matter_elitism_tournaments_and_repair_close_most_of_the_gap(tmp_path: Path) -> None:
    source = apply_changes(SCRIPT.read_text(), SMALL)
    default = run(source, tmp_path / "default")
    tuned = run(apply_changes(source, {"SELECTION": "tournament", "TOURNAMENT_SIZE": 4, "ELITES": 2, "REPAIR": True,
                                       "MUTATION_RATE": 0.005, "CROSSOVER": "uniform"}), tmp_path / "tuned")
    assert tuned["value_gap"] < default["value_gap"] / 2


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"POPULATION": 10, "ELITES": 20, "MUTATION_RATE": 0.0001, "PENALTY": 0.01, "SELECTION": "tournament",
              "TOURNAMENT_SIZE": 16, "CROSSOVER": "two_point", "CROSSOVER_RATE": 1.0, "EVALUATIONS": 1000}
    metrics = run(apply_changes(SCRIPT.read_text(), corner), tmp_path / "corner")
    # So light a penalty leaves every packing overweight: no feasible one, the whole gap. ELITES is capped at 9 of
    # 10, so each generation breeds one child: 10 evaluated first, then 990 generations.
    assert metrics["value_gap"] == 1.0 and metrics["evaluations"] == 1000 and metrics["generations"] == 990
    repaired = run(apply_changes(SCRIPT.read_text(), {**corner, "REPAIR": True, "POPULATION": 400}), tmp_path / "big")
    assert 0 <= repaired["value_gap"] < 1 and repaired["generations"] == 1
