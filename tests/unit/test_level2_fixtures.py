"""The Level-2 yield benchmark's recorded fixtures (benchmarks/fixtures/level2/): `fixtures()` loads them, the
knapsack_ga and mlp_numpy traces among them (held out until session 5 read them, as tsp_anneal and fit_curve until
session 4), the held-out queue_sim and boost_numpy traces and the held-out jobshop_sched, rff_ridge, graph_color and
gmm_numpy traces (with their noise across seeds), each recorded from the committed script (its hash), with a search
that moved off the baseline; every example script a fixture names is a fast workload for the real-gain arms.
`--fixtures` plans sessions over the named fixtures only, one fixture per shard, and a session folder written under
another selection is refused rather than mixed in; the speed benchmark plans over development fixtures only."""

from __future__ import annotations

import hashlib
import json
import statistics
from pathlib import Path

import pytest

from benchmarks import level2_speed, level2_yield
from benchmarks.real_gain import FAST_WORKLOADS

ROOT = Path(__file__).resolve().parents[2]


def test_the_tsp_anneal_fixture_loads_from_its_committed_script_and_is_development_data_now() -> None:
    found = {fixture["name"]: fixture for fixture in level2_yield.fixtures()}
    tsp = found["tsp_anneal"]
    workload = tsp["spec"].workload
    # recorded held out, then read in session 4: later sessions tuned on it, so it counts as development data
    assert tsp["development"] is True and "development since session 4" in tsp["note"]
    assert found["fit_curve"]["development"] is True
    assert workload.reference == "examples/tsp_anneal/train.py" and workload.metric == "tour_length"
    assert workload.script_sha256 == hashlib.sha256((ROOT / workload.reference).read_bytes()).hexdigest()
    assert tsp["spec"].proposer == "tpe" and tsp["spec"].levels == ["1"] and set(workload.fixed) == {"SEED", "STEPS"}
    values = [e.outcome.value for e in tsp["trace"].experiments if e.outcome.value is not None]
    assert len(values) == 17 and len(set(values)) >= 8 and min(values) < values[0]  # the baseline comes first


def test_every_fixture_recorded_from_an_example_script_matches_it_and_is_a_fast_workload() -> None:
    for fixture in level2_yield.fixtures():
        workload = fixture["spec"].workload
        if workload.script_sha256 is None or not workload.reference.startswith("examples/"):
            continue
        assert workload.script_sha256 == hashlib.sha256((ROOT / workload.reference).read_bytes()).hexdigest(), fixture["name"]
        assert workload.reference in FAST_WORKLOADS, fixture["name"]


def recorded_by_tpe(fixture: dict, name: str, metric: str, budget: str) -> list:
    """Assert a fixture was recorded as the held-out ones are (its committed script, Level 1 with TPE, 2 x 8, seed 0,
    no Level 2); its experiments."""
    spec, workload = fixture["spec"], fixture["spec"].workload
    assert workload.reference == f"examples/{name}/train.py" and workload.metric == metric and workload.goal == "minimize"
    assert workload.script_sha256 == hashlib.sha256((ROOT / workload.reference).read_bytes()).hexdigest()
    assert spec.proposer == "tpe" and spec.levels == ["1"] and set(workload.fixed) == {"SEED", budget}
    assert (spec.generations, spec.iterations, spec.seed) == (2, 8, 0) and spec.meta_run_id == f"fx-{name}"
    experiments = fixture["trace"].experiments
    assert len(experiments) == 17 and experiments[0].proposed_by == "baseline"
    assert {e.proposed_by for e in experiments[1:]} == {"tpe"}
    assert all(not g.active.mechanisms for g in fixture["trace"].generations)  # no Level 2 ran
    return experiments


@pytest.mark.parametrize(("name", "metric", "budget"), [("knapsack_ga", "value_gap", "EVALUATIONS"),
                                                        ("mlp_numpy", "val_loss", "STEPS")])
def test_the_new_held_out_fixtures_load_from_their_committed_scripts(name: str, metric: str, budget: str) -> None:
    fixture = {f["name"]: f for f in level2_yield.fixtures()}[name]
    # recorded held out before any Level 2 session saw it; read after the session-5 yield run, so development now
    assert fixture["development"] is True and "before any Level 2" in fixture["note"]
    assert "development since session 5" in fixture["note"]
    experiments = recorded_by_tpe(fixture, name, metric, budget)
    values = [e.outcome.value for e in experiments if e.outcome.value is not None]
    assert len(values) >= 12 and len(set(values)) >= 8 and min(values) < values[0] / 10  # the search moved, far


@pytest.mark.parametrize(("name", "metric", "budget", "best_below"), [("queue_sim", "cost_per_hour", "HOURS", 600.0),
                                                                      ("boost_numpy", "val_logloss", "ROUNDS", 0.55)])
def test_the_held_out_queue_sim_and_boost_numpy_fixtures_load_from_their_committed_scripts(
        name: str, metric: str, budget: str, best_below: float) -> None:
    fixture = {f["name"]: f for f in level2_yield.fixtures()}[name]
    # recorded before any Level 2 session saw it, and no session has read it since: held out
    assert fixture["development"] is False and "held out" in fixture["note"] and "before any Level 2" in fixture["note"]
    assert "development since" not in fixture["note"]
    experiments = recorded_by_tpe(fixture, name, metric, budget)
    assert all(e.outcome.wall_seconds is not None and e.outcome.wall_seconds < 10 for e in experiments)  # fast
    values = [e.outcome.value for e in experiments if e.outcome.value is not None]
    # The search moved, far: the baseline is well above `best_below` (queue_sim 1915, boost_numpy 0.601; across seeds
    # at the defaults they vary by about 20 and 0.002), and the best is below it.
    assert len(values) == 17 and len(set(values)) >= 12 and values[0] > 1.05 * best_below > 1.05 * min(values)


@pytest.mark.parametrize(("name", "metric", "budget"), [("jobshop_sched", "makespan", "EVALUATIONS"),
                                                        ("rff_ridge", "val_rmse", "MODELS"),
                                                        ("graph_color", "conflicts", "MOVES"),
                                                        ("gmm_numpy", "val_nll", "STEPS")])
def test_the_held_out_fixtures_with_their_noise_load_from_their_committed_scripts(
        name: str, metric: str, budget: str) -> None:
    fixture = {f["name"]: f for f in level2_yield.fixtures()}[name]
    # recorded before any Level 2 session saw it, and no session has read it since: held out
    assert fixture["development"] is False and "held out" in fixture["note"] and "before any Level 2" in fixture["note"]
    assert "development since" not in fixture["note"]
    experiments = recorded_by_tpe(fixture, name, metric, budget)
    assert all(e.outcome.wall_seconds is not None and e.outcome.wall_seconds < 10 for e in experiments)  # fast
    values = [e.outcome.value for e in experiments if e.outcome.value is not None]
    assert len(values) == 17 and len(set(values)) >= 12
    # The noise across seeds, measured on the committed script: its SEED 0 at the defaults is the trace's baseline.
    spread = json.loads((ROOT / "benchmarks" / "fixtures" / "level2" / name / "fixture.json").read_text())["seed_spread"]
    assert spread["metric"] == metric and spread["seeds"] == [0, 1, 2, 3, 4]
    assert spread["default"][0] == pytest.approx(values[0], abs=1e-6)
    assert spread["best"][0] == pytest.approx(min(values), abs=1e-6)
    assert min(values) == values[spread["best_experiment"]]
    assert spread["default_sd"] == pytest.approx(statistics.stdev(spread["default"]), rel=1e-3)
    assert spread["best_mean"] == pytest.approx(statistics.mean(spread["best"]), rel=1e-4)
    # The search moved past the noise: the best is more than three SDs (across seeds, at the defaults) below the
    # baseline (jobshop_sched 948 -> 898, SD 12; rff_ridge 1.463 -> 0.958, SD 0.004; graph_color 62 -> 14, SD 2.2;
    # gmm_numpy 17.790 -> 11.010, SD 0.064), and the best's mean more than two.
    assert min(values) < values[0] - 3 * spread["default_sd"]
    assert spread["best_mean"] < spread["default_mean"] - 2 * spread["default_sd"]


def test_the_fixtures_sort_by_name_and_a_shard_of_thirteen_is_one_fixture() -> None:
    found = level2_yield.fixtures()
    names = [f["name"] for f in found]
    assert names == sorted(names) and len(names) == 13
    plan = level2_yield.plan_sessions(found, 39)
    for shard in range(13):
        assert {plan[k][0]["name"] for k in range(shard, 39, 13)} == {names[shard]}
    held_out = [f["name"] for f in found if not f["development"]]
    assert held_out == ["boost_numpy", "gmm_numpy", "graph_color", "jobshop_sched", "queue_sim", "rff_ridge"]


def test_the_speed_benchmark_runs_level_2_on_development_fixtures_only() -> None:
    names = [f["name"] for f in level2_speed.development_fixtures()]
    assert names == ["classify", "control", "fit_curve", "knapsack_ga", "mlp_numpy", "tinygpt", "tsp_anneal"]


def test_fixtures_plans_sessions_over_the_named_fixtures_only() -> None:
    held_out = level2_yield.select(level2_yield.fixtures(), ["mlp_numpy", "knapsack_ga"])
    assert [f["name"] for f in held_out] == ["knapsack_ga", "mlp_numpy"]  # sorted order, whatever order was named
    plan = level2_yield.plan_sessions(held_out, 10)
    assert [fixture["name"] for fixture, _ in plan[0::2]] == ["knapsack_ga"] * 5  # shard 0/2
    assert [fixture["name"] for fixture, _ in plan[1::2]] == ["mlp_numpy"] * 5  # shard 1/2
    assert len({seen for _, seen in plan[0::2]}) == 5  # five different cut points of the trace
    assert level2_yield.select(level2_yield.fixtures(), None) == level2_yield.fixtures()


@pytest.mark.parametrize("names", [["knapsack_ga", "no_such_fixture"], []])
def test_an_unknown_or_empty_fixture_selection_is_refused_with_the_known_names(names: list[str]) -> None:
    with pytest.raises(SystemExit, match="--fixtures: unknown.*known: boost_numpy, classify, control"):
        level2_yield.select(level2_yield.fixtures(), names)


def test_a_session_folder_written_under_another_selection_is_refused(tmp_path: Path) -> None:
    found = {f["name"]: f for f in level2_yield.fixtures()}
    done = tmp_path / "000.json"
    assert level2_yield.recorded(done, found["knapsack_ga"]) is None  # nothing recorded yet: the session runs
    done.write_text(json.dumps({"session": 0, "fixture": "classify", "activated": False}))
    with pytest.raises(SystemExit, match="session of classify, but this plan puts knapsack_ga there"):
        level2_yield.recorded(done, found["knapsack_ga"])
    assert level2_yield.recorded(done, found["classify"]) == {"session": 0, "fixture": "classify", "activated": False}
