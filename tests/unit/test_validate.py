"""The validation pipeline (policy, import, smoke test on a real trace, liveness) and the replay it runs on."""

from __future__ import annotations

import json

import pytest

from mechanisms.library import library_source
from mechanisms.replay import ReplaySource, replay_history, replay_steps
from mechanisms.sandbox import SandboxHost, SandboxLimits
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space
from mechanisms.validate import STAGES, ValidationLimits, validate_mechanism
from search.params import same_value, validate_changes
from search.trace import RunOutcome, Trace

SPACE = tinygpt_space()
SPECS = list(SPACE.params)
TRACE = simulated_trace(30, seed=3)
SOURCE = ReplaySource(run_seed=11, fallback_config=SEARCH_CONFIG)
STEPS = replay_steps(TRACE, SPACE, SOURCE)


@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0) as sandbox:
        yield sandbox


def mechanism(*methods: str) -> str:
    return "class Candidate:\n    name = 'candidate'\n" + "".join(methods)


FOCUS = "    def plan(self, ctx):\n        return {'focus': [ctx['params'][0]['name']]}\n"


# -- replay -----------------------------------------------------------------------------------------


def test_replay_has_one_step_per_decided_experiment_with_the_ctx_before_it():
    assert len(STEPS) == len(TRACE) - 1
    for step, experiment in zip(STEPS, TRACE.experiments[1:]):
        assert step.ctx["iteration"] == experiment.index
        assert len(step.ctx["trace"]) == experiment.index
        assert step.result["index"] == experiment.index
        assert step.result["kept"] == experiment.kept
    json.dumps([(s.ctx, s.result, s.candidates) for s in STEPS], allow_nan=False)  # JSON-able, as the sandbox needs


def test_replay_candidates_are_the_real_change_then_valid_synthetic_moves():
    for step in STEPS:
        actual, *synthetic = step.candidates
        assert actual["changes"] == step.result["changes"]
        assert 1 <= len(synthetic) <= 2
        for candidate in synthetic:
            assert len(candidate["changes"]) == 1
            validate_changes(SPECS, candidate["changes"], SEARCH_CONFIG.frozen)  # raises if invalid or frozen
            assert not all(same_value(candidate["config"][k], v) for k, v in step.result["config"].items())


def test_replay_is_deterministic_and_history_matches_steps():
    again = replay_steps(TRACE, SPACE, SOURCE)
    assert [s.candidates for s in again] == [s.candidates for s in STEPS]
    assert replay_history(TRACE, SPACE, SOURCE) == [(s.ctx, s.result) for s in STEPS]


def test_replay_seeds_are_the_per_decision_seeds_of_the_inner_loop():
    other = replay_history(TRACE, SPACE, ReplaySource(meta_run_id="other", run_seed=11, fallback_config=SEARCH_CONFIG))
    seeds = [ctx["seed"] for ctx, _ in replay_history(TRACE, SPACE, SOURCE)]
    assert len(set(seeds)) == len(seeds) and seeds != [ctx["seed"] for ctx, _ in other]


def test_no_replay_without_a_measured_baseline():
    crashed = TRACE.experiments[0].model_copy(update={"outcome": RunOutcome(status="crash")})
    assert replay_steps(Trace(experiments=[crashed, *TRACE.experiments[1:]]), SPACE, SOURCE) == []


# -- validation stages ------------------------------------------------------------------------------


def test_a_reference_mechanism_passes_every_stage(host):
    report = validate_mechanism(library_source("tabu"), STEPS, name="tabu", host=host)
    assert report.ok, report.error
    assert [s.name for s in report.stages] == list(STAGES)
    assert all(s.ok and s.seconds >= 0 for s in report.stages)
    assert (report.class_name, report.name) == ("TabuSearch", "tabu")
    assert report.liveness["decisions_changed"] > 0
    assert report.stages[STAGES.index("smoke")].detail["steps"] == len(STEPS)
    json.loads(report.model_dump_json())


def test_policy_failure_stops_at_the_first_stage_with_lines(host):
    report = validate_mechanism("import os\n" + mechanism(FOCUS), STEPS, host=host)
    assert (report.ok, report.stage_failed) == (False, "policy")
    assert "line 1: import of 'os' is not allowed" in report.error
    assert len(report.stages) == 1 and report.stages[0].detail["violations"][0]["line"] == 1


def test_a_failing_constructor_fails_the_import_stage(host):
    source = mechanism("    def __init__(self):\n        self.table = {}['x']\n", FOCUS)
    report = validate_mechanism(source, STEPS, host=host)
    assert report.stage_failed == "import"
    assert "KeyError" in report.error and "line 4" in report.error


def test_a_class_without_hooks_fails_the_static_stage(host):
    report = validate_mechanism(mechanism("    def helper(self):\n        return 1\n"), STEPS, host=host)
    assert report.stage_failed == "static" and "defines none of the hooks" in report.error


def test_a_hook_that_raises_on_some_experiment_fails_the_smoke_test(host):
    observe = "    def observe(self, ctx, result):\n        if ctx['iteration'] == 5:\n            raise ValueError('bad luck')\n"
    report = validate_mechanism(mechanism(FOCUS, observe), STEPS, host=host)
    assert report.stage_failed == "smoke"
    assert "ValueError: bad luck" in report.error and "iteration 5" in report.error and "line 7" in report.error


def test_accept_sees_the_result_the_live_loop_gives_it_without_kept(host):
    # The live loop calls accept before "kept" exists (search/iteration.py); a replay that showed the recorded
    # "kept" let a mechanism pass validation and then be quarantined live. The key is built so the static check
    # cannot see it.
    accept = "    def accept(self, ctx, result, default):\n        return bool(result['ke' + 'pt'])\n"
    report = validate_mechanism(mechanism(FOCUS, accept), STEPS, host=host)
    assert report.stage_failed == "smoke" and "KeyError: 'kept'" in report.error
    default = "    def accept(self, ctx, result, default):\n        return bool(result['default_' + 'kept'])\n"
    assert validate_mechanism(mechanism(FOCUS, default), STEPS, host=host).stage_failed != "smoke"


def test_an_answer_outside_the_api_fails_the_smoke_test(host):
    screen = "    def screen(self, ctx, candidates):\n        return {'choose': len(candidates)}\n"
    report = validate_mechanism(mechanism(screen), STEPS, host=host)
    assert report.stage_failed == "smoke" and "screen returned {'choose': 3}: choose must be an int index in [0, 2]" in report.error


def test_a_slow_hook_fails_the_smoke_test(host):
    slow = "    def plan(self, ctx):\n        total = 0\n        for i in range(300000):\n            total += i\n        return {'focus': ['DEPTH']}\n"
    report = validate_mechanism(mechanism(slow), STEPS[:3], host=host, limits=ValidationLimits(slow_call_s=0.001))
    assert report.stage_failed == "smoke" and "plan took up to" in report.error


def test_an_endless_hook_fails_the_smoke_test_by_timeout(host):
    endless = "    def plan(self, ctx):\n        while True:\n            pass\n"
    report = validate_mechanism(mechanism(endless), STEPS[:2], host=host, limits=ValidationLimits(call_timeout_s=0.3))
    assert report.stage_failed == "smoke" and "did not answer within 0.3 s" in report.error


def test_an_inert_mechanism_is_not_activated(host):
    inert = "    def plan(self, ctx):\n        return None\n    def screen(self, ctx, candidates):\n        return {'choose': 0}\n"
    report = validate_mechanism(mechanism(inert), STEPS, host=host)
    assert report.stage_failed == "liveness" and "inert" in report.error
    assert report.liveness["calls"]["plan"] == len(STEPS)


def test_a_trace_without_experiments_cannot_show_liveness(host):
    report = validate_mechanism(mechanism(FOCUS), [], host=host)
    assert report.stage_failed == "liveness" and "no experiments" in report.error


def test_validation_without_a_host_uses_and_closes_its_own():
    report = validate_mechanism(mechanism(FOCUS), STEPS[:3])
    assert report.ok, report.error


# -- issue 15 -----------------------------------------------------------------------------------------


def test_a_mechanism_answering_a_list_nested_985_deep_fails_validation_without_raising(host):
    deep = "    def plan(self, ctx):\n        value = []\n        for _ in range(985):\n            value = [value]\n        return value\n"
    report = validate_mechanism(mechanism(deep), STEPS[:3], host=host)
    assert (report.ok, report.stage_failed) == (False, "smoke")
    assert "nested deeper than 64 levels" in report.error


def test_a_weak_sandbox_fails_the_import_stage_unless_allowed():
    with SandboxHost(SandboxLimits(isolate=False), call_timeout_s=1.0) as weak:
        refused = validate_mechanism(mechanism(FOCUS), STEPS[:3], host=weak)
        assert refused.stage_failed == "import" and "sandbox is incomplete" in refused.error
        assert "BILEVEL_SANDBOX_ALLOW_WEAK=1" in refused.error
        allowed = validate_mechanism(mechanism(FOCUS), STEPS[:3], host=weak, allow_weak_sandbox=True)
        assert allowed.ok, allowed.error


def test_a_sandbox_that_cannot_start_fails_a_stage_and_does_not_raise():
    broken = SandboxHost(python="/nonexistent/python")
    report = validate_mechanism(mechanism(FOCUS), STEPS[:3], host=broken)
    assert report.stage_failed == "import" and "sandbox is unavailable" in report.error


def test_the_policy_stage_uses_the_hosts_trusted_modules(tmp_path):
    helpers = tmp_path / "helpers.py"
    helpers.write_text("__all__ = ['first']\n\ndef first(names):\n    return names[:1]\n")
    source = ("from helpers import first\nclass Candidate:\n    def plan(self, ctx):\n"
              "        return {'focus': first([p['name'] for p in ctx['params']])}\n")
    with SandboxHost(trusted_modules={"helpers": str(helpers)}, call_timeout_s=1.0) as with_helpers:
        report = validate_mechanism(source, STEPS[:3], host=with_helpers)
        assert report.ok, report.error
