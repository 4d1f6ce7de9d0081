"""Resume from the trace alone (search/resume.py, infra/runs.py TraceWriter): what is decided, what each generation
and track continues from, and that a generation resumed mid-way decides exactly what an uninterrupted one did, with
mechanism state rebuilt by replaying `observe` over the track's history."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from infra.runs import RunFolder, TraceWriter
from mechanisms.replay import ReplaySource, replay_history
from mechanisms.synthetic_trace import tinygpt_space
from search.active_set import ActiveMechanism, ActiveSet
from search.config import SearchConfig
from search.context import DecisionPoint
from search.hooks import NoHooks
from search.iteration import baseline_experiment, merge_tracks, run_iteration
from search.objective import Objective
from search.random_proposal import random_proposer
from search.resume import (
    ResumeError,
    begin_generation,
    check_resumable,
    generation_inputs,
    limits_for_the_rest,
    split_generation,
    track_history,
)
from search.run_spec import Budget, MetaRunSpec, RunLimits, llm_usage
from search.trace import ConfigDecision, Experiment, GenerationEnd, LLMUsage, MechanismDecision, Trace
from tests.unit.traces import ok

SPACE = tinygpt_space()
META_RUN, RUN_SEED = "resume-unit", 3
MECHANISM = ActiveMechanism.from_source("streak", "class M: pass\n", version="v1", origin="store")


class StreakAccept(NoHooks):
    """A stateful mechanism: after two discarded experiments in a row (seen through `observe`), it keeps the next
    one whatever it measured. Its decisions depend on state that only `observe` builds."""

    def __init__(self) -> None:
        self.streak = 0
        self.observed: list[str] = []

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]:
        if self.streak >= 2 and not default and result["value"] is not None:
            return True, "streak"
        return default, None

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None:
        self.streak = 0 if result["kept"] else self.streak + 1
        self.observed.append(json.dumps([ctx, result], sort_keys=True))


def rebuilt(history: Trace) -> StreakAccept:
    """What MechanismRuntime.rebuild does: fresh state, then `observe` replayed over the history."""
    hooks = StreakAccept()
    for ctx, result in replay_history(history, SPACE, ReplaySource(meta_run_id=META_RUN, run_seed=RUN_SEED)):
        hooks.observe(ctx, result)
    return hooks


def train(config: dict[str, Any], purpose: str, seed: int) -> Any:
    return ok(round(3.0 + 0.05 * ((len(json.dumps(config, sort_keys=True)) * 7919) % 13) - 0.3, 4))


def run_track(trace: Trace, generation: int, track: int, iterations: int, decided: list[Experiment],
              hooks: StreakAccept) -> list[Experiment]:
    """What flows/inner_loop.py does, minus Prefect: continue a track after its decided experiments."""
    start = trace.generation_start(generation)
    assert start is not None
    local = trace.with_experiments([*trace.experiments, *decided])
    state = local.state()
    new = []
    for iteration in range(len(decided), iterations):
        point = DecisionPoint(meta_run_id=META_RUN, run_seed=RUN_SEED, generation=generation, track=track,
                              iteration=iteration, start=start.start, visible_from=start.visible_from,
                              config=start.config)
        experiment = run_iteration(local=local, state=state, space=SPACE, point=point, hooks=hooks,
                                   proposer=random_proposer, train=train)
        local, state = local.appended(experiment), state.after(experiment)
        new.append(experiment)
    return new


def first_generation(tracks: int = 2) -> Trace:
    """A trace with a baseline and a whole generation 0 of `tracks` tracks x 3 iterations."""
    trace = Trace(experiments=[baseline_experiment(ok(3.0), SPACE.baseline_config())])
    trace = begin_generation(trace, 0, SearchConfig(), ActiveSet(mechanisms=[MECHANISM]))
    split = split_generation(trace, 0)
    results = [run_track(split.base, 0, t, 3, [], rebuilt(split.base)) for t in range(tracks)]
    return merge_tracks(split.base, results)


def comparable(trace: Trace) -> list[tuple]:
    return [(e.index, e.generation, e.track, e.iteration, json.dumps(e.config, sort_keys=True), e.measured, e.kept,
             e.decided_by) for e in trace.experiments]


def test_a_generation_resumed_mid_way_decides_what_the_uninterrupted_one_did() -> None:
    before = first_generation()
    config = SearchConfig(strategy="explore")
    trace = begin_generation(before, 1, config, ActiveSet(mechanisms=[MECHANISM]))
    split = split_generation(trace, 1)
    live = [StreakAccept() for _ in range(2)]
    for track in range(2):
        for ctx, result in replay_history(split.base, SPACE, ReplaySource(meta_run_id=META_RUN, run_seed=RUN_SEED)):
            live[track].observe(ctx, result)
    whole = [run_track(split.base, 1, t, 6, [], live[t]) for t in range(2)]
    uninterrupted = merge_tracks(split.base, whole)
    assert any(e.decided_by == "streak" for e in uninterrupted.experiments)  # the state-driven override happened

    # Killed after track 0 decided 4 and track 1 decided 1: the trace on disk holds exactly those.
    on_disk = merge_tracks(split.base, [whole[0][:4], whole[1][:1]])
    resumed_split = split_generation(on_disk, 1)
    assert [len(resumed_split.of_track(t)) for t in range(2)] == [4, 1]
    assert resumed_split.base == split.base
    resumed = []
    for track in range(2):
        history = track_history(resumed_split, track)
        hooks = rebuilt(history)
        # observe replayed over the track's history sees what the live loop showed it, in the same order
        assert hooks.observed == live[track].observed[: len(hooks.observed)]
        resumed.append([*resumed_split.of_track(track),
                        *run_track(resumed_split.base, 1, track, 6, resumed_split.of_track(track), hooks)])
    assert comparable(merge_tracks(resumed_split.base, resumed)) == comparable(uninterrupted)


def test_split_then_merge_gives_the_trace_back() -> None:
    trace = first_generation(tracks=3)
    split = split_generation(trace, 0)
    assert len(split.base) == 1 and sorted(split.decided) == [0, 1, 2]
    assert [e.index for e in split.of_track(2)] == [1, 2, 3]  # numbered as the track saw them: start + iteration
    assert split.merged(3) == trace
    assert track_history(split, 1).experiments[-1].iteration == 2


def test_a_track_with_a_gap_is_a_damaged_trace() -> None:
    trace = first_generation()
    damaged = trace.with_experiments([e for e in trace.experiments if not (e.track == 1 and e.iteration == 1)])
    with pytest.raises(ResumeError, match="not a prefix"):
        split_generation(damaged, 0)
    with pytest.raises(ResumeError, match="no record of how generation 1 began"):
        split_generation(trace, 1)
    # a trace of an older version: generation 1 had begun, but nothing says how generation 0 ended
    later = begin_generation(trace, 1, SearchConfig(), ActiveSet())
    later = later.with_experiments([*later.experiments, later.experiments[-1].model_copy(
        update={"index": len(later), "generation": 1, "track": 0, "iteration": 0})])
    with pytest.raises(ResumeError, match="no record of how generation 0 ended.*start it afresh \\(move its run folder aside"):
        split_generation(later, 0)


def test_begin_generation_keeps_the_record_of_a_generation_that_had_begun() -> None:
    trace = first_generation()
    active = ActiveSet(mechanisms=[MECHANISM])
    started = begin_generation(trace, 1, SearchConfig(strategy="exploit"), active)
    record = started.generation_start(1)
    assert record is not None and record.start == len(trace) and record.active == active
    # on resume, after some of its experiments: the same start, the recorded config, not the one offered now
    grown = started.with_experiments([*started.experiments, trace.experiments[-1].model_copy(
        update={"index": len(trace), "generation": 1, "track": 0, "iteration": 0})])
    again = begin_generation(grown, 1, SearchConfig(strategy="explore"), ActiveSet())
    assert again.generation_start(1) == record
    assert generation_inputs(again, 1, SearchConfig(strategy="explore"), ActiveSet()) == (record.config, active)
    assert generation_inputs(again, 2, SearchConfig(guidance="g"), ActiveSet()) == (SearchConfig(guidance="g"), ActiveSet())
    # a start recorded before starts held their mechanisms gets them filled in
    old = again.with_generation(record.model_copy(update={"active": None}))
    assert begin_generation(old, 1, SearchConfig(), active).generation_start(1).active == active


def spec(**extra: Any) -> MetaRunSpec:
    return MetaRunSpec(meta_run_id="r", budget=Budget(mode="steps", value=10), generations=2, iterations=3, tracks=2,
                       **extra)


def test_check_resumable_refuses_another_objective_or_a_smaller_spec() -> None:
    trace = first_generation()
    check_resumable(trace, spec(), Objective())
    with pytest.raises(ResumeError, match="optimises"):
        check_resumable(trace, spec(), Objective(name="loss", goal="maximize"))
    with pytest.raises(ResumeError, match="outside this spec"):
        check_resumable(trace, spec().model_copy(update={"iterations": 2}), Objective())
    with pytest.raises(ResumeError, match="outside this spec"):
        check_resumable(trace, spec().model_copy(update={"tracks": 1}), Objective())


def test_generation_ends_hold_the_outer_decisions_and_their_cost() -> None:
    trace = first_generation()
    usage = LLMUsage(calls=2, prompt_tokens=10, cost_usd=0.25)
    stored = ActiveMechanism.from_source("new", "class N: pass\n", version="VID-1", origin="store")
    end = GenerationEnd(generation=0, config=SearchConfig(), active=ActiveSet(mechanisms=[MECHANISM]))
    trace = trace.with_end(end)
    assert trace.generation_end(0) == end and not end.done and trace.outer_llm() == LLMUsage()
    end = end.model_copy(update={"level15": ConfigDecision(config=SearchConfig(strategy="exploit"), source="llm",
                                                           llm=usage)})
    end = end.model_copy(update={"level2": MechanismDecision(verdict="accepted new@VID-1", accepted="new@VID-1",
                                                             llm=usage),
                                 "active": ActiveSet(mechanisms=[MECHANISM, stored]), "done": True})
    trace = trace.with_end(end)
    assert len(trace.generation_ends) == 1 and trace.generation_end(0).done
    assert trace.outer_llm().cost_usd == pytest.approx(0.5) and llm_usage(trace).cost_usd == pytest.approx(0.5)
    assert [m.label for m in trace.mechanism_versions()] == [MECHANISM.label, stored.label]
    again = Trace.model_validate_json(trace.model_dump_json())
    assert again == trace and again.generation_end(0).active.mechanisms[1].source == "class N: pass\n"


def test_limits_for_the_rest_add_to_what_the_run_spent() -> None:
    trace = first_generation().model_copy(update={"elapsed_s": 1800.0})
    trace = trace.with_end(GenerationEnd(generation=0, config=SearchConfig(),
                                         level15=ConfigDecision(config=SearchConfig(), source="llm",
                                                                llm=LLMUsage(cost_usd=0.4))))
    rest = limits_for_the_rest(trace, spec(max_hours=1.0), hours=2.0, cost_usd=1.0)
    assert rest.max_hours == pytest.approx(2.5) and rest.max_llm_cost_usd == pytest.approx(1.4)
    assert limits_for_the_rest(trace, spec(max_hours=1.0)) == spec(max_hours=1.0)
    # the deadline of a resumed session counts the time earlier sessions worked
    assert RunLimits.for_spec(rest, started=1000.0, elapsed_s=1800.0).deadline == pytest.approx(1000.0 + 2.5 * 3600 - 1800)


def test_the_trace_writer_writes_every_decision_of_every_track(tmp_path: Path) -> None:
    trace = first_generation()
    split = split_generation(trace, 0)
    folder = RunFolder(tmp_path, "w")
    seen: list[int] = []
    writer = TraceWriter(folder, split.base.model_copy(update={"elapsed_s": 100.0}),
                         on_write=lambda f, t: seen.append(len(t)))
    writer.open_tracks(split.base, {1: split.of_track(1)[:1]})
    assert writer.decided(0, split.of_track(0)[0]) == folder.trace_path
    writer.decided(1, split.of_track(1)[1])
    on_disk = folder.read_trace()
    assert [(e.track, e.iteration, e.index) for e in on_disk.decided] == [(0, 0, 1), (1, 0, 2), (1, 1, 3)]
    assert seen == [3, 4]  # the hook after each write, with the trace written
    assert on_disk.elapsed_s >= 100.0  # earlier sessions' time carried on
    writer.commit(trace)
    assert folder.read_trace().experiments == trace.experiments and seen[-1] == len(trace)
    with pytest.raises(RuntimeError, match="open_tracks"):
        writer.decided(0, split.of_track(0)[1])


def test_the_trace_writer_travels_with_a_flows_parameters_but_its_copy_never_writes(tmp_path: Path) -> None:
    """Prefect sends a flow's parameters, the writer included, along with a task to a Dask worker: the writer must
    pickle (its lock and its hook, which holds the resources, stay behind), and the copy must refuse to write."""
    import pickle
    import threading

    trace = first_generation()
    folder = RunFolder(tmp_path, "w")
    resources_like = threading.Lock()  # what the hook's closure holds: nothing a worker could use
    writer = TraceWriter(folder, trace, on_write=lambda f, t: resources_like.locked())
    copy = pickle.loads(pickle.dumps(writer))
    assert copy.trace == trace and copy.on_write is None
    with pytest.raises(RuntimeError, match="cannot write"):
        copy.commit(trace)
    assert not folder.trace_path.exists()
    assert writer.commit(trace) == folder.trace_path  # the original still writes
