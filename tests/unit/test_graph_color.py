"""examples/graph_color (a fixed random graph coloured with too few colours by a greedy construction and tabu search):
its block declares eight editable parameters, it writes an integer `conflicts` to metrics.json, above zero, the same
one for the same SEED and after exactly the budget's moves, TabuCol's best move with a tenure beats min-conflicts by
far, a greedy or DSATUR construction beats random colours, kicks and random changes are counted, a value outside its
range fails in one line, and a corner of its ranges still finishes."""

from __future__ import annotations

from pathlib import Path

from tests.unit.example_run import refusal, run_example
from workloads.hyperblock import parse_params

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "graph_color" / "train.py"
SMALL = {"MOVES": 4000}  # a fifth of the default budget: fast
EDGES = 3867  # the fixed graph's edges (125 vertices, each pair joined with probability one half)
TABUCOL = {"MOVE": "best", "TENURE": 7, "TENURE_SCALE": 0.6}  # Galinier and Hao's tenure, about


def run(changes: dict, folder: Path) -> dict:
    return run_example("graph_color", {**SMALL, **changes}, folder)


def test_the_block_declares_eight_editable_parameters_besides_the_fixed_seed_and_budget() -> None:
    specs = {spec.name: spec for spec in parse_params(SCRIPT.read_text())}
    assert set(specs) - {"SEED", "MOVES"} == {"INIT", "RESTARTS", "MOVE", "TENURE", "TENURE_SCALE", "WALK", "KICK",
                                              "STALL"}
    assert specs["RESTARTS"].log and specs["STALL"].log and specs["MOVE"].choices == ("best", "minconf")
    assert specs["INIT"].choices == ("random", "greedy", "dsatur")
    assert specs["MOVES"].value == 20000 and specs["SEED"].value == 0


def test_the_defaults_write_integer_conflicts_and_the_same_seed_gives_the_same_ones(tmp_path: Path) -> None:
    first, second = run({}, tmp_path / "a"), run({}, tmp_path / "b")
    assert first == second and isinstance(first["conflicts"], int)
    assert first["edges"] == EDGES and 0 < first["conflicts"] < 0.05 * EDGES
    assert first["moves"] == 4000 and first["kicks"] == 0 and first["walks"] == 0
    other = run({"SEED": 1}, tmp_path / "c")
    assert other["conflicts"] != first["conflicts"] and other["edges"] == EDGES


def test_the_best_move_with_a_tenure_beats_min_conflicts_by_far(tmp_path: Path) -> None:
    default = run({}, tmp_path / "default")  # min-conflicts, no tenure: about 60 conflicts at any budget
    best = run({"MOVE": "best"}, tmp_path / "best")
    tabucol = run(TABUCOL, tmp_path / "tabucol")
    assert best["conflicts"] < default["conflicts"] - 30
    assert tabucol["conflicts"] < best["conflicts"] - 3 and tabucol["moves"] == 4000


def test_a_greedy_or_dsatur_construction_beats_random_colours(tmp_path: Path) -> None:
    # Twenty restarts of fifty moves each: the construction decides most of the result.
    constructions = {"RESTARTS": 20, "MOVES": 1000}
    random = run(constructions, tmp_path / "random")
    greedy = run({**constructions, "INIT": "greedy"}, tmp_path / "greedy")
    dsatur = run({**constructions, "INIT": "dsatur"}, tmp_path / "dsatur")
    assert max(greedy["conflicts"], dsatur["conflicts"]) < random["conflicts"] - 80
    assert random["moves"] == greedy["moves"] == dsatur["moves"] == 1000


def test_kicks_and_random_changes_are_counted_in_the_budget(tmp_path: Path) -> None:
    shaken = run({**TABUCOL, "KICK": 10, "STALL": 200, "WALK": 0.05}, tmp_path / "shaken")
    assert shaken["kicks"] > 5 and 100 < shaken["walks"] < 300 and shaken["moves"] == 4000
    assert shaken["conflicts"] < run({}, tmp_path / "default")["conflicts"] - 30


def test_a_value_outside_its_range_fails_in_one_line(tmp_path: Path) -> None:
    assert refusal("graph_color", 'MOVE = "minconf"  ', 'MOVE = "tabu"  ', tmp_path) == "train.py: MOVE = 'tabu' is not a valid choice in [best, minconf]"


def test_a_corner_of_the_ranges_still_finishes(tmp_path: Path) -> None:
    corner = {"INIT": "dsatur", "RESTARTS": 20, "MOVE": "best", "TENURE": 50, "TENURE_SCALE": 2.0, "WALK": 0.5,
              "KICK": 30, "STALL": 10, "MOVES": 1000}
    metrics = run(corner, tmp_path / "corner")
    assert metrics["conflicts"] > 0 and metrics["moves"] == 1000 and metrics["kicks"] > 0 and metrics["walks"] > 0
    plain = run({"TENURE": 50, "TENURE_SCALE": 2.0, "STALL": 5000, "MOVES": 1000}, tmp_path / "plain")
    assert plain["conflicts"] > 0 and plain["moves"] == 1000 and plain["kicks"] == 0
