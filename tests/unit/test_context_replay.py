"""One context builder for the live loop and replay: a replayed hook sees byte for byte the ctx it saw live, with
tracks > 1 (renumbered when merged), restart windows, each generation's own search config, and per-decision seeds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from mechanisms.replay import ReplaySource, contexts
from mechanisms.synthetic_trace import tinygpt_space
from search.config import SearchConfig
from search.context import DecisionPoint, local_history
from search.hooks import NoHooks
from search.iteration import Candidate, ProposalBatch, ProposalRequest, merge_tracks, run_iteration
from search.random_proposal import random_value
from search.trace import GenerationStart, RunOutcome, Trace
from tests.unit.traces import ok

SPACE = tinygpt_space()
META_RUN, RUN_SEED = "replay-test", 5


class Recorder(NoHooks):
    """Records the JSON of every ctx the loop builds, by the experiment it decided."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None:
        self.seen.append(json.dumps(ctx, sort_keys=True))


def proposer(request: ProposalRequest) -> ProposalBatch:
    """A deterministic proposer that varies with the decision point."""
    import random

    rng = random.Random(request.point.hook_seed)
    for _ in range(50):
        spec = rng.choice(request.space.editable(request.point.config.frozen))
        try:
            changes = request.check({spec.name: random_value(spec, rng)})
        except ValueError:
            continue
        return ProposalBatch(candidates=[Candidate(changes=changes, hypothesis="rng")])
    return ProposalBatch()


def train(config: dict[str, Any], purpose: str, seed: int) -> RunOutcome:
    return ok(round(3.0 - 0.1 * config["DEPTH"] + 0.01 * len(json.dumps(config)) % 7, 4))


def live_generation(trace: Trace, generation: int, config: SearchConfig, *, tracks: int, iterations: int,
                    restart: bool, recorder: Recorder) -> Trace:
    """What flows/generation.py and flows/inner_loop.py do, minus Prefect: record the start, run each track on its
    own local trace, merge."""
    start = GenerationStart(generation=generation, start=len(trace), config=config,
                            visible_from=len(trace) if restart else 0)
    trace = trace.with_generation(start)
    results = []
    for track in range(tracks):
        local, state, experiments = trace, trace.state(), []
        for iteration in range(iterations):
            point = DecisionPoint(meta_run_id=META_RUN, run_seed=RUN_SEED, generation=generation, track=track,
                                  iteration=iteration, start=start.start, visible_from=start.visible_from, config=config)
            assert local_history(local, point) == local  # the live local trace is the history at this point
            experiment = run_iteration(local=local, state=state, space=SPACE, point=point, hooks=recorder,
                                       proposer=proposer, train=train)
            local, state = local.appended(experiment), state.after(experiment)
            experiments.append(experiment)
        results.append(experiments)
    return merge_tracks(trace, results)


@pytest.mark.parametrize("restart", [False, True])
def test_replayed_contexts_equal_the_live_ones(restart: bool) -> None:
    recorder = Recorder()
    baseline_config = SPACE.baseline_config()
    trace = Trace(experiments=[ok_baseline(baseline_config)])
    configs = [SearchConfig(), SearchConfig(frozen=("DEPTH",), strategy="explore"), SearchConfig(guidance="g")]
    for generation, config in enumerate(configs):
        trace = live_generation(trace, generation, config, tracks=3, iterations=2, restart=restart, recorder=recorder)
    # live, the recorder saw the decisions in track order within each generation: the merged trace's order
    replayed = [json.dumps(ctx, sort_keys=True) for _, ctx, _ in
                contexts(trace, SPACE, ReplaySource(meta_run_id=META_RUN, run_seed=RUN_SEED))]
    assert len(replayed) == len(recorder.seen) == 18
    assert replayed == recorder.seen
    # a track > 0 saw its own experiments numbered from the generation's start, not their merged indices
    track2 = json.loads(recorder.seen[5])  # generation 0, track 2, iteration 1
    assert track2["track"] == 2 and track2["iteration"] == 2 and track2["trace"][-1]["index"] == 1
    assert trace.experiments[5].track == 2 and trace.experiments[5].iteration == 0  # merged: index 5
    if restart:
        assert [v["index"] for v in json.loads(recorder.seen[-1])["trace"]][:1] == [0]
        later = json.loads(recorder.seen[-1])["trace"][1:]
        assert later and all(v["generation"] == 2 for v in later)


def ok_baseline(config: dict[str, Any]):
    from search.iteration import baseline_experiment

    return baseline_experiment(ok(3.0), config)


def test_replay_is_linear_in_the_trace_state_folds() -> None:
    """The replay folds each track's state once instead of rebuilding every prefix (no O(n^2) state_from_trace)."""
    recorder = Recorder()
    trace = Trace(experiments=[ok_baseline(SPACE.baseline_config())])
    trace = live_generation(trace, 0, SearchConfig(), tracks=1, iterations=6, restart=False, recorder=recorder)
    calls = {"n": 0}
    original = Trace.states

    def counting(self: Trace):
        calls["n"] += 1
        return original(self)

    Trace.states = counting  # type: ignore[method-assign]
    try:
        list(contexts(trace, SPACE, ReplaySource(meta_run_id=META_RUN, run_seed=RUN_SEED)))
    finally:
        Trace.states = original  # type: ignore[method-assign]
    assert calls["n"] == 1
