"""Reference mechanisms: listed from source text, each validates on a realistic trace, and each acts through the
API v2 hooks (propose, screen, accept) with the trusted helpers."""

from __future__ import annotations

import ast

import pytest

from mechanisms.library import library_source, list_library
from mechanisms.replay import ReplaySource, replay_steps
from mechanisms.runtime import MechanismRef, MechanismRuntime
from mechanisms.sandbox import SandboxHost
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space
from mechanisms.validate import validate_mechanism

SPACE = tinygpt_space()
STEPS = replay_steps(simulated_trace(60, seed=0), SPACE, ReplaySource(fallback_config=SEARCH_CONFIG))
CTX = STEPS[0].ctx
NAMES = ["tabu", "ucb_bandit", "one_factor", "annealing", "novelty", "nearest_screen"]


@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0) as sandbox:
        yield sandbox


def runtime(host: SandboxHost, name: str) -> MechanismRuntime:
    return MechanismRuntime([MechanismRef(name=name, version="library", source=library_source(name))], sandbox=host)


def view(changes: dict, config_overrides: dict | None = None, kept: bool = False, value: float = 2.8) -> dict:
    config = {**CTX["current"]["config"], **changes, **(config_overrides or {})}
    return {"changes": changes, "hypothesis": "", "config": config, "kept": kept, "status": "ok", "value": value,
            "proposed_by": "llm"}


def test_the_library_lists_names_descriptions_and_sources():
    entries = list_library()
    assert [e.name for e in entries] == NAMES
    for entry in entries:
        assert entry.description and "\n" not in entry.description
        assert ast.parse(entry.source)
        assert 15 <= len(entry.source.splitlines()) <= 70


def test_unknown_library_names_list_the_known_ones():
    with pytest.raises(KeyError, match="tabu"):
        library_source("simplex")


@pytest.mark.parametrize("name", NAMES)
def test_each_reference_mechanism_passes_validation_on_a_realistic_trace(host, name):
    report = validate_mechanism(library_source(name), STEPS, name=name, host=host, space=SPACE)
    assert report.ok, report.error
    assert report.liveness["decisions_changed"] > 0


def test_one_factor_proposes_each_untried_parameter_alone_and_skips_the_llm(host):
    untried_ctx = {**CTX, "trace": CTX["trace"][:1]}  # only the baseline: nothing tried yet
    with runtime(host, "one_factor") as design:
        [answer] = design.propose(untried_ctx)
        assert answer.answer.skip_llm
        [candidate] = answer.answer.candidates
        editable = [p["name"] for p in CTX["params"] if p["name"] not in CTX["frozen"]]
        assert list(candidate.changes) == [editable[0]] and "never been tried" in candidate.reason
        everything_tried = {**CTX, "trace": [*CTX["trace"][:1], *(view({n: None}) for n in editable)]}
        assert design.propose(everything_tried) == []  # the design is done: the LLM takes over


def test_bandit_proposes_a_value_of_the_untried_arm_then_returns_to_what_was_kept(host):
    editable = [p["name"] for p in CTX["params"] if p["name"] not in CTX["frozen"]]
    with runtime(host, "ucb_bandit") as bandit:
        for name in editable:
            [answer] = bandit.propose(CTX)
            assert list(answer.answer.candidates[0].changes) == [name]  # untried arms first, in order
            bandit.observe(CTX, view({name: CTX["current"]["config"][name]}, kept=(name == "MATRIX_LR")))
        [answer] = bandit.propose(CTX)
        assert list(answer.answer.candidates[0].changes) == ["MATRIX_LR"]


def test_tabu_rejects_a_recent_configuration_and_prefers_a_fresh_one(host):
    with runtime(host, "tabu") as tabu:
        tabu.observe(CTX, view({"DEPTH": 3}))
        fresh, repeat = view({"DEPTH": 5}), view({"DEPTH": 3})
        assert tabu.screen(CTX, [repeat, fresh]).choose == 1
        verdict = tabu.screen(CTX, [repeat])
        assert verdict.reject and "recent" in verdict.reason
        assert tabu.screen(CTX, [fresh]) is None


def test_tabu_avoids_parameters_discarded_again_and_again(host):
    with runtime(host, "tabu") as tabu:
        for depth in (3, 5, 6):
            tabu.observe(CTX, view({"DEPTH": depth}))
        assert tabu.plan(CTX).avoid == ["DEPTH"]


def test_annealing_keeps_a_slightly_worse_run_early_and_never_a_much_worse_one(host):
    current = CTX["current"]["value"]
    slightly, much = view({"DEPTH": 3}, value=current + 0.001), view({"DEPTH": 3}, value=current + 5.0)
    with runtime(host, "annealing") as annealing:
        assert annealing.accept(CTX, {**slightly, "default_kept": False}, False) == (True, "annealing")
        assert annealing.accept(CTX, {**much, "default_kept": False}, False) == (False, None)
        assert annealing.accept(CTX, {**slightly, "default_kept": True}, True) == (True, None)


def test_novelty_trains_the_most_novel_candidate_and_rejects_near_repeats(host):
    tried = CTX["trace"][0]["config"]
    near = {"changes": {}, "hypothesis": "", "config": dict(tried), "proposed_by": "llm"}
    far = view({"DEPTH": 8, "MATRIX_LR": 0.3})
    with runtime(host, "novelty") as novelty:
        assert novelty.screen(CTX, [near, far]).choose == 1
        verdict = novelty.screen(CTX, [near])
        assert verdict.reject and "within 5%" in verdict.reason


def test_nearest_screen_asks_for_several_candidates_and_trains_the_one_nearest_the_best_results(host):
    ctx = STEPS[-1].ctx  # a trace with many measured results
    measured = [view for view in ctx["trace"] if view.get("value") is not None]
    best = min(measured, key=lambda view: view["value"])
    worst = max(measured, key=lambda view: view["value"])
    assert best["value"] < worst["value"]
    with runtime(host, "nearest_screen") as screen:
        assert screen.plan(ctx).n_candidates == 2  # each one an LLM call when the LLM proposes
        candidates = [view({}, worst["config"]), view({}, best["config"])]
        assert screen.screen(ctx, candidates).choose == 1  # a candidate on the best result's spot, not the worst's
        assert screen.screen(ctx, [candidates[1], candidates[0]]).choose == 0  # order does not matter
        assert screen.screen(ctx, candidates[:1]) is None  # one candidate: nothing to decide

