"""Early stopping: the rule at a checkpoint, the rule for an iteration (against the current point's curve), the
checkpoint lines a run prints, a stopped run in a trace (never kept, not a crash, old traces still read), the
replay that measures compute saved and winners lost, and the training request's cache key."""

from __future__ import annotations

import json
import math
import sys
import textwrap
from pathlib import Path

import pytest

from search.early_stop import EarlyStop, early_stop_for, loss_at, replay, stop_fraction
from search.iteration import baseline_experiment
from search.objective import Objective
from search.run_spec import Budget
from search.trace import Experiment, RunOutcome, Trace
from workloads.curve import CurveWatch, parse_checkpoint

INCUMBENT = ((0.25, 3.0), (0.5, 2.5), (0.75, 2.2))


def ok(value: float, curve=INCUMBENT) -> RunOutcome:
    return RunOutcome(status="ok", value=value, curve=list(curve))


def experiment(index: int, value: float | None, curve, kept: bool) -> Experiment:
    outcome = ok(value, curve) if value is not None else RunOutcome(status="stopped", curve=list(curve))
    return Experiment(index=index, changes={"LR": index}, config={"LR": index}, outcome=outcome, kept=kept,
                      default_kept=kept)


def test_a_checkpoint_worse_than_the_incumbent_by_more_than_the_margin_stops() -> None:
    rule = EarlyStop(margin=0.1, incumbent=INCUMBENT)
    assert rule.verdict(0.25, 3.1) is None  # within the margin
    assert rule.verdict(0.25, 2.0) is None  # better
    reason = rule.verdict(0.5, 2.61)
    assert reason is not None and "50%" in reason and "2.6100" in reason and "2.5000" in reason
    assert rule.verdict(0.4, 9.0) is None  # no incumbent checkpoint there: no evidence, no stop
    assert rule.verdict(0.75, math.inf) is not None
    assert loss_at(INCUMBENT, 0.5) == 2.5 and loss_at(INCUMBENT, 1.0) is None
    assert stop_fraction([(0.25, 3.05), (0.5, 2.9), (0.75, 2.0)], rule) == 0.5
    assert stop_fraction(list(INCUMBENT), rule) is None


def test_the_rule_of_an_iteration_is_against_the_points_curve_and_off_without_one() -> None:
    trace = Trace(objective=Objective()).appended(baseline_experiment(ok(3.0), {"LR": 0}))
    rule = early_stop_for(trace, 0, 0.2)
    assert rule is not None and rule.incumbent == INCUMBENT and rule.margin == 0.2
    assert early_stop_for(trace, 0, None) is None  # early stopping off
    old = Trace(objective=Objective()).appended(baseline_experiment(RunOutcome(status="ok", value=3.0), {"LR": 0}))
    assert early_stop_for(old, 0, 0.2) is None  # a run recorded before curves existed: nothing to compare with
    assert early_stop_for(trace, 7, 0.2) is None


def test_a_stopped_experiment_is_counted_as_stopped_never_kept_and_old_traces_still_read() -> None:
    trace = Trace(objective=Objective()).appended(baseline_experiment(ok(3.0), {"LR": 0}))
    trace = trace.appended(experiment(1, None, [(0.25, 9.0)], kept=False))
    counts = trace.counts()
    assert (counts.stopped, counts.crashes, counts.kept) == (1, 0, 0)
    assert trace.state().best.value == 3.0 and not trace.experiments[1].crashed
    again = Trace.model_validate_json(trace.model_dump_json())
    assert again.experiments[1].outcome.curve == [(0.25, 9.0)]
    legacy = {"status": "ok", "val_bpb": 2.9, "seed": 0}  # an outcome written before curves and objectives
    assert RunOutcome.model_validate(legacy).curve == [] and RunOutcome.model_validate(legacy).value == 2.9


def test_replay_counts_compute_saved_and_winners_that_would_have_been_stopped() -> None:
    # The baseline's curve is the incumbent until experiment 2 improves on it; experiment 3 is compared with 2's.
    trace = Trace(objective=Objective()).appended(baseline_experiment(ok(3.0), {"LR": 0}))
    rows = [
        (4.0, [(0.25, 3.6), (0.5, 3.4), (0.75, 3.3)], False),  # hopeless: stopped at 25%, saves 0.75
        (2.8, [(0.25, 3.05), (0.5, 2.55), (0.75, 2.25)], True),  # a winner slower at first: within the margin
        (2.7, [(0.25, 3.3), (0.5, 2.6), (0.75, 2.1)], True),  # a winner that starts badly: stopped at 25%
    ]
    for index, (value, curve, kept) in enumerate(rows, start=1):
        trace = trace.appended(experiment(index, value, curve, kept))
    result = replay(trace, margin=0.1)
    assert (result.candidates, result.stopped, result.winners, result.winners_stopped) == (3, 2, 2, 1)
    assert result.compute_saved == pytest.approx(1.5) and result.saved_fraction == pytest.approx(0.5)
    assert result.winners_stopped_fraction == pytest.approx(0.5)
    assert replay(trace, margin=10.0).stopped == 0


@pytest.mark.parametrize("line, expected", [
    ("checkpoint: fraction=0.25 step=11 loss=2.345678", (0.25, 2.345678)),
    ("checkpoint: loss=1.5 fraction=0.5", (0.5, 1.5)),
    ("checkpoint: fraction=1.5 loss=2", None),
    ("checkpoint: fraction=0.5 loss=nan", None),
    ("checkpoint: fraction=0.5", None),
    ("step 100 loss 2.3", None),
    (" checkpoint: fraction=0.5 loss=2", None),
])
def test_checkpoint_lines(line: str, expected) -> None:
    assert parse_checkpoint(line) == expected


def test_the_curve_watch_keeps_the_curve_and_asks_the_rule() -> None:
    watch = CurveWatch(EarlyStop(margin=0.1, incumbent=INCUMBENT))
    assert watch("step 1") is None and watch("checkpoint: fraction=0.25 loss=3.05") is None
    assert watch("checkpoint: fraction=0.5 loss=2.9") is not None
    assert watch.curve == [(0.25, 3.05), (0.5, 2.9)]
    assert CurveWatch()("checkpoint: fraction=0.5 loss=99") is None  # no rule: only collects


def test_a_script_workload_records_the_curve_and_is_stopped_by_the_rule(tmp_path: Path) -> None:
    from workloads.script import ScriptWorkload

    script = tmp_path / "fit.py"
    script.write_text(textwrap.dedent('''\
        import time
        # --- hyperparameters ---
        LR = 0.1  # float [0.01, 10.0]: rate
        # --- end hyperparameters ---
        for i, fraction in enumerate((0.25, 0.5, 0.75)):
            print(f"checkpoint: fraction={fraction} loss={LR * (3 - i)}", flush=True)
            time.sleep(0.2)
        print("---")
        print(f"loss: {LR}")
    '''))
    work = ScriptWorkload(script, metric="loss", python=sys.executable)
    full = work.run(work.source_for({"LR": 1.0}), Budget(mode="fixed", value=1), 0, tmp_path / "a", timeout_s=30)
    assert full.ok and full.curve == [(0.25, 3.0), (0.5, 2.0), (0.75, 1.0)]
    rule = EarlyStop(margin=0.5, incumbent=tuple(full.curve))
    worse = work.run(work.source_for({"LR": 2.0}), Budget(mode="fixed", value=1), 0, tmp_path / "b", timeout_s=30,
                     early_stop=rule)
    assert worse.status == "stopped" and worse.value is None and not worse.ok and not worse.crashed
    assert worse.curve == [(0.25, 6.0)] and "25%" in (worse.error_tail or "")
    same = work.run(work.source_for({"LR": 1.0}), Budget(mode="fixed", value=1), 0, tmp_path / "c", timeout_s=30,
                    early_stop=rule)
    assert same.ok and same.value == 1.0


def test_the_training_request_key_names_the_rule() -> None:
    from tasks.train import TrainRequest

    base = dict(meta_run_id="m", generation=0, track=0, iteration=1, purpose="candidate", source="x = 1",
                budget=Budget(mode="steps", value=3), seed=0, timeout_s=10, workload="toy")
    plain, stopped = TrainRequest(**base), TrainRequest(**base, early_stop=EarlyStop(margin=0.1, incumbent=INCUMBENT))
    other = TrainRequest(**base, early_stop=EarlyStop(margin=0.2, incumbent=INCUMBENT))
    assert len({plain.cache_key, stopped.cache_key, other.cache_key}) == 3
    assert plain.cache_key.startswith(stopped.cache_key.rsplit("/stop-", 1)[0])


def test_the_committed_replay_figures_follow_from_the_committed_traces() -> None:
    root = Path(__file__).resolve().parents[2]
    traces = [Trace.model_validate_json(p.read_text()) for p in sorted((root / "benchmarks/fixtures/early_stop").glob("*.json"))]
    committed = json.loads((root / "benchmarks/results/early_stop/replay.json").read_text())
    assert traces and committed["margins"]  # the loop below checks something
    for row in committed["margins"]:
        results = [replay(trace, row["margin"]) for trace in traces]
        assert sum(r.stopped for r in results) == row["stopped"]
        assert sum(r.winners_stopped for r in results) == row["winners_stopped"]
        saved = sum(r.compute_saved for r in results) / sum(r.compute_total for r in results)
        assert round(saved, 3) == row["compute_saved_fraction"]
