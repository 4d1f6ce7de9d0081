"""Reference mechanisms: listed from source text, each validates on a realistic trace and does its job."""

from __future__ import annotations

import ast

import pytest

from mechanisms.library import list_library, library_source
from mechanisms.replay import replay_steps
from mechanisms.runtime import MechanismRef, MechanismRuntime
from mechanisms.sandbox import SandboxHost
from mechanisms.validate import validate_mechanism
from tests.unit.mechanism_trace_fixtures import SEARCH_CONFIG, simulated_trace, tinygpt_specs

SPECS = tinygpt_specs()
STEPS = replay_steps(simulated_trace(60, seed=0), SPECS, SEARCH_CONFIG)
CTX = STEPS[0].ctx


@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0) as sandbox:
        yield sandbox


def runtime(host: SandboxHost, name: str) -> MechanismRuntime:
    return MechanismRuntime([MechanismRef(name=name, version="library", source=library_source(name))], host=host)


def view(changes: dict, config_overrides: dict | None = None, kept: bool = False) -> dict:
    config = {**CTX["current"]["config"], **changes, **(config_overrides or {})}
    return {"changes": changes, "hypothesis": "", "config": config, "kept": kept, "status": "ok", "val_bpb": 2.8}


def test_the_library_lists_names_descriptions_and_sources():
    entries = list_library()
    assert [e.name for e in entries] == ["tabu", "ucb_bandit", "one_factor"]
    for entry in entries:
        assert entry.description and "\n" not in entry.description
        assert ast.parse(entry.source)
        assert 20 <= len(entry.source.splitlines()) <= 70


def test_unknown_library_names_list_the_known_ones():
    with pytest.raises(KeyError, match="tabu"):
        library_source("annealing")


@pytest.mark.parametrize("name", ["tabu", "ucb_bandit", "one_factor"])
def test_each_reference_mechanism_passes_validation_on_a_realistic_trace(host, name):
    report = validate_mechanism(library_source(name), STEPS, name=name, host=host)
    assert report.ok, report.error
    assert report.liveness["decisions_changed"] > 0


def test_tabu_rejects_a_recent_configuration_and_prefers_a_fresh_one(host):
    with runtime(host, "tabu") as tabu:
        tried = view({"DEPTH": 3})
        tabu.observe(CTX, tried)
        fresh = view({"DEPTH": 5})
        repeat = view({"DEPTH": 3})
        assert tabu.screen(CTX, [repeat, fresh]).choose == 1
        verdict = tabu.screen(CTX, [repeat])
        assert verdict.reject and "recent" in verdict.reason
        assert tabu.screen(CTX, [fresh]) is None
        assert "DEPTH=3" in tabu.plan(CTX).guidance


def test_tabu_avoids_parameters_discarded_again_and_again(host):
    with runtime(host, "tabu") as tabu:
        for depth in (3, 5, 6):
            tabu.observe(CTX, view({"DEPTH": depth}))
        assert tabu.plan(CTX).avoid == ["DEPTH"]


def test_bandit_tries_every_parameter_once_then_returns_to_what_was_kept(host):
    editable = [p["name"] for p in CTX["params"] if p["name"] not in CTX["frozen"]]
    with runtime(host, "ucb_bandit") as bandit:
        for name in editable:
            assert bandit.plan(CTX).focus == [name]  # untried parameters first, in order
            bandit.observe(CTX, view({name: CTX["current"]["config"][name]}, kept=(name == "MATRIX_LR")))
        assert bandit.plan(CTX).focus == ["MATRIX_LR"]


def test_one_factor_focuses_on_the_least_explored_and_prefers_single_changes(host):
    with runtime(host, "one_factor") as design:
        advice = design.plan(CTX)
        assert advice.focus == ["DEPTH", "ASPECT_RATIO"] and advice.n_candidates == 2
        design.observe(CTX, view({"DEPTH": 3}))
        assert design.plan(CTX).focus == ["ASPECT_RATIO", "HEAD_DIM"]
        double = view({"DEPTH": 5, "HEAD_DIM": 16})
        depth = view({"DEPTH": 5})
        head = view({"HEAD_DIM": 16})
        assert design.screen(CTX, [double, depth, head]).choose == 2  # single factor, and the less explored one
        assert design.screen(CTX, [double]) is None
