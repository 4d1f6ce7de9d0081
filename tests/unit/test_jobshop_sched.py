"""examples/jobshop_sched (a job-shop schedule by randomised greedy construction and iterated local search): its block
declares ten editable parameters, it writes an integer `makespan` to metrics.json, never below the instance's lower
bound, the same one for the same SEED and after exactly the budget's schedules, the priority rule and its candidate
set make the greedy schedules far better or worse, critical-path moves need kicks or a temperature, a tuned search
beats the default, a value outside its range fails in one line, and a corner of its ranges still finishes."""

from __future__ import annotations

from pathlib import Path

from tests.unit.example_run import refusal, run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "jobshop_sched" / "train.py"
SMALL = {"EVALUATIONS": 2000}  # a tenth of the default budget: fast
LOWER_BOUND = 664  # the fixed instance's largest machine load (its longest job is shorter)


def run(changes: dict, folder: Path) -> dict:
    return run_example("jobshop_sched", {**SMALL, **changes}, folder)


def test_the_block_declares_ten_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "EVALUATIONS"} == {"W_WORK", "W_SHORT", "W_LOAD", "NOISE", "CANDIDATES", "RESTARTS",
                                                    "MOVE", "KICK", "STALL", "TEMPERATURE"}
    assert specs["RESTARTS"].log and specs["STALL"].log and specs["MOVE"].choices == ("swap", "insert", "critical")
    assert specs["CANDIDATES"].choices == ("all", "active", "nondelay")
    assert specs["EVALUATIONS"].value == 20000 and specs["SEED"].value == 0


def test_the_defaults_write_a_makespan_above_the_bound_and_the_same_seed_gives_the_same_one(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and isinstance(first["makespan"], int)
    assert first["lower_bound"] == LOWER_BOUND < first["makespan"] < 1.6 * LOWER_BOUND
    assert first["evaluations"] == 2000 and first["kicks"] == 0 and first["worse_accepted"] == 0
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["makespan"] != first["makespan"] and other["lower_bound"] == LOWER_BOUND


def test_the_rule_and_its_candidates_make_the_greedy_schedules_far_better(tmp_path: Path) -> None:
    # Fifty restarts of twenty schedules each: the construction decides most of the result.
    greedy = {"RESTARTS": 50, "EVALUATIONS": 1000}
    shortest_first = run(greedy, tmp_path / "spt")
    most_work_first = run({**greedy, "CANDIDATES": "active", "W_WORK": 2.0, "W_SHORT": 0.0, "NOISE": 0.3},
                          tmp_path / "mwkr")
    assert most_work_first["makespan"] < shortest_first["makespan"] - 200
    assert shortest_first["evaluations"] == most_work_first["evaluations"] == 1000


def test_critical_path_moves_need_kicks_or_a_temperature_and_a_tuned_search_beats_the_default(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")
    descent = run({"MOVE": "critical"}, tmp_path / "descent")  # stuck in the first local optimum
    tuned = run({"MOVE": "critical", "TEMPERATURE": 20.0, "KICK": 5, "STALL": 100, "CANDIDATES": "nondelay"},
                tmp_path / "tuned")
    assert descent["makespan"] > default["makespan"] + 200 and descent["kicks"] == 0
    assert tuned["makespan"] < default["makespan"] - 30
    assert tuned["kicks"] > 5 and tuned["worse_accepted"] > 100 and tuned["evaluations"] == 2000


def test_a_value_outside_its_range_fails_in_one_line(tmp_path: Path) -> None:
    assert refusal("jobshop_sched", 'MOVE = "swap"  ', 'MOVE = "tabu"  ', tmp_path) == "train.py: MOVE = 'tabu' is not a valid choice in [swap, insert, critical]"


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"RESTARTS": 50, "KICK": 20, "STALL": 10, "NOISE": 5.0, "W_WORK": 5.0, "W_SHORT": 5.0, "W_LOAD": 5.0,
              "CANDIDATES": "active", "MOVE": "insert", "TEMPERATURE": 50.0, "EVALUATIONS": 1000}
    metrics = run(corner, tmp_path / "corner")
    assert metrics["makespan"] >= LOWER_BOUND and metrics["evaluations"] == 1000 and metrics["kicks"] > 0
    plain = run({"W_SHORT": 0.0, "NOISE": 0.0, "STALL": 5000, "EVALUATIONS": 1000}, tmp_path / "plain")
    assert plain["makespan"] >= LOWER_BOUND and plain["evaluations"] == 1000
