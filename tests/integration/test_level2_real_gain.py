"""The yield benchmark's real-gain mode: a recorded session that activated a mechanism on the held-out control trace
(the session file and source as the benchmark writes them) gets the next generation of examples/control trained for
real twice, on the same seed and with the TPE proposer in both arms, once with the mechanism injected; the session's
`real_gain` holds both arms and their paired Δ, and a rerun trains nothing again. (Whether the scripted mechanism
passes the benefit stage depends on the session's seeds; the session itself is covered by the wiring check.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import level2_yield

pytestmark = pytest.mark.integration


def test_an_activated_session_gets_its_next_generation_trained_with_and_without_the_mechanism(tmp_path: Path) -> None:
    out = tmp_path / "out"
    names = ["classify", "control"]  # development fixtures: no held-out one is planned
    plan = level2_yield.plan_sessions(level2_yield.select(level2_yield.fixtures(), names), 2)
    number = next(i for i, (fixture, _) in enumerate(plan) if fixture["name"] == "control")
    fixture, seen = plan[number]
    real = {"pairs": 1, "proposer": "tpe"}
    source_file = f"mechanisms/{number:03d}-control-best_neighbour.py"
    (out / "mechanisms").mkdir(parents=True)
    (out / source_file).write_text(level2_yield.SCRIPTED_MECHANISM)
    (out / "sessions").mkdir()
    (out / "sessions" / f"{number:03d}.json").write_text(json.dumps({
        "session": number, "fixture": "control", "workload": fixture["spec"].workload.reference, "development": False,
        "experiments_seen": seen, "verdict": "activated best_neighbour", "activated": True,
        "mechanism": "best_neighbour@v1", "source_file": source_file, "simulated": None, "ci_excludes_0": False,
        "novelty": None, "seconds": 1.0, "tokens": 0, "llm_calls": 0, "samples": [], "hooks": ["propose"],
        "decisions_changed": 0}))
    summary = level2_yield.run(2, None, out, scripted=True, shard=(number, 2), real=real, state=tmp_path / "first",
                               names=names)

    path = out / "sessions" / f"{number:03d}.json"
    record = json.loads(path.read_text())
    gain = record["real_gain"]
    assert gain is not None and gain["pairs"] == 1 and gain["proposer"] == "tpe"
    [pair] = gain["per_pair"]
    without, with_it = pair["without"], pair["with"]
    iterations = fixture["spec"].iterations
    # Both arms trained the whole next generation for real, on the same seed.
    assert without["experiments"] == with_it["experiments"] == iterations
    assert without["trained"] >= iterations and with_it["trained"] >= iterations
    assert without["launch_seeds"] == with_it["launch_seeds"] == [pair["seed"]] == [fixture["spec"].seed]
    # The proposer is TPE in both; only the arm with the mechanism trained a candidate the mechanism put forward.
    assert without["proposed_by"] == ["tpe"]
    assert set(with_it["proposed_by"]) - {"tpe"}, with_it["proposed_by"]
    objective = fixture["trace"].objective
    assert pair["delta"] == pytest.approx(objective.delta(without["best"], with_it["best"]))
    assert gain["delta"] == pytest.approx(pair["delta"]) and gain["ci_low"] <= gain["delta"] <= gain["ci_high"]
    # The second measure: the best value measured within the new generation, whether or not it beat the trace.
    for arm in (without, with_it):
        assert objective.better(arm["best"], arm["generation_best"]) or arm["best"] == arm["generation_best"]
    assert pair["generation_delta"] == pytest.approx(objective.delta(without["generation_best"],
                                                                     with_it["generation_best"]))
    assert summary["generation_gain_all"]["mean"] == pytest.approx(pair["generation_delta"], abs=1e-6)
    # The third: each arm's final best configuration trained again on fresh SEEDs (exactly 0 without training when
    # both arms end on the same configuration)
    if without["best_config"] == with_it["best_config"]:
        assert pair["quality_delta"] == 0.0 and pair["remeasured"] is None
    else:
        means = {arm: sum(values) / len(values) for arm, values in pair["remeasured"].items()}
        assert all(len(values) == 5 for values in pair["remeasured"].values())
        assert pair["quality_delta"] == pytest.approx(objective.delta(means["without"], means["with"]))
    assert summary["quality_gain_all"]["mean"] == pytest.approx(pair["quality_delta"], abs=1e-6)
    assert summary["real_gain_all"]["sessions"] == 1 and summary["held_out"]["real_gain_sessions"] == 1

    # A rerun finds the session and its real gain recorded: no session, no arm runs again.
    level2_yield.run(2, None, out, scripted=True, shard=(number, 2), real=real, state=tmp_path / "second", names=names)
    assert json.loads(path.read_text()) == record
    assert not (tmp_path / "second" / "real-gain").exists()
