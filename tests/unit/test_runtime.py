"""The mechanism runtime: merged advice, screen and accept chains, liveness, quarantine, replay after restarts."""

from __future__ import annotations

import pytest

from mechanisms.active import ActiveMechanism, ActiveSet, open_runtime
from mechanisms.api import MAX_GUIDANCE_CHARS, PlanAdvice
from mechanisms.library import library_source
from mechanisms.replay import ReplaySource
from mechanisms.runtime import MechanismRef, MechanismRuntime, merge_advice
from mechanisms.sandbox import SandboxHost, SandboxLimits
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space

CTX = {"iteration": 7, "params": [{"name": "DEPTH"}, {"name": "MATRIX_LR"}, {"name": "WARMUP"}]}
CANDIDATES = [{"changes": {"DEPTH": 3}, "hypothesis": "", "config": {}}, {"changes": {"DEPTH": 5}, "hypothesis": "", "config": {}}]
RESULT = {"index": 7, "changes": {"DEPTH": 3}, "config": {}, "status": "ok", "val_bpb": 2.8, "kept": False, "default_kept": False}


def ref(name: str, body: str) -> MechanismRef:
    return MechanismRef(name=name, version=f"{name}-v1", source=f"class M:\n    name = {name!r}\n" + body)


def hook(signature: str, *lines: str) -> str:
    return f"    def {signature}:\n" + "".join(f"        {line}\n" for line in lines)


FOCUS_DEPTH = ref("focus_depth", hook("plan(self, ctx)", "return {'focus': ['DEPTH'], 'guidance': 'deeper', 'temperature': 0.5, 'n_candidates': 2}"))
FOCUS_LR = ref("focus_lr", hook("plan(self, ctx)", "return {'focus': ['MATRIX_LR', 'NOT_A_PARAM'], 'avoid': ['WARMUP'], 'n_candidates': 3, 'temperature': 1.0}"))
SILENT = ref("silent", hook("plan(self, ctx)", "return None") + hook("screen(self, ctx, candidates)", "return None") + hook("accept(self, ctx, result, default)", "return None"))
CHOOSE_SECOND = ref("choose_second", hook("screen(self, ctx, candidates)", "return {'choose': 1}"))
CHOOSE_FIRST = ref("choose_first", hook("screen(self, ctx, candidates)", "return {'choose': 0}"))
REJECT = ref("reject", hook("screen(self, ctx, candidates)", "return {'reject': True, 'reason': 'seen before'}"))
FLIP = ref("flip", hook("accept(self, ctx, result, default)", "return not default"))
COUNTER = ref(
    "counter",
    hook("__init__(self)", "self.seen = 0") + hook("plan(self, ctx)", "return {'guidance': f'seen {self.seen}'}") + hook("observe(self, ctx, result)", "self.seen += 1"),
)
RAISES = ref("raises", hook("plan(self, ctx)", "return {'focus': [ctx['missing']]}"))
GARBAGE = ref("garbage", hook("plan(self, ctx)", "return {'focus': 'DEPTH', 'colour': 'red'}"))
LOOPS = ref("loops", hook("plan(self, ctx)", "while True:", "    pass"))


@pytest.fixture(scope="module")
def host():
    """The sandbox settings every mechanism's own worker is started with."""
    with SandboxHost(call_timeout_s=1.0) as sandbox:
        yield sandbox


def runtime(host: SandboxHost, *refs: MechanismRef, timeout: float = 1.0) -> MechanismRuntime:
    return MechanismRuntime(list(refs), call_timeout_s=timeout, sandbox=host)


# -- merging advice (pure) -------------------------------------------------------------------------


def test_merge_advice_joins_unites_and_picks():
    merged = merge_advice(
        [
            PlanAdvice(guidance="a", focus=["DEPTH", "WARMUP"], n_candidates=2),
            PlanAdvice(guidance="b", focus=["DEPTH", "MATRIX_LR"], avoid=["WARMUP"], temperature=0.3, n_candidates=3),
            PlanAdvice(temperature=1.2),
        ]
    )
    assert merged.guidance == "a\nb"
    assert merged.focus == ["DEPTH", "MATRIX_LR"]  # WARMUP is avoided by one mechanism, so it is no focus
    assert merged.avoid == ["WARMUP"]
    assert (merged.n_candidates, merged.temperature) == (3, 0.3)


def test_merge_advice_shares_the_guidance_limit_fairly():
    merged = merge_advice([PlanAdvice(guidance="x" * MAX_GUIDANCE_CHARS), PlanAdvice(guidance="short")])
    assert len(merged.guidance) <= MAX_GUIDANCE_CHARS
    assert merged.guidance.endswith("\nshort")


def test_merge_of_nothing_is_empty():
    assert merge_advice([]).is_empty()


# -- hooks through the sandbox ---------------------------------------------------------------------


def test_plan_merges_active_mechanisms_and_counts_liveness(host):
    with runtime(host, FOCUS_DEPTH, FOCUS_LR, SILENT) as mechanisms:
        advice = mechanisms.plan(CTX)
        assert advice.focus == ["DEPTH", "MATRIX_LR"]  # NOT_A_PARAM is dropped: it is no parameter
        assert advice.avoid == ["WARMUP"]
        assert (advice.n_candidates, advice.temperature, advice.guidance) == (3, 0.5, "deeper")
        live = mechanisms.liveness()
        assert live["focus_depth"]["calls"]["plan"] == 1 and live["focus_depth"]["changed"]["plan"] == 1
        assert live["silent"]["calls"]["plan"] == 1 and live["silent"]["changed"]["plan"] == 0
        assert live["silent"]["decisions_changed"] == 0


def test_advice_naming_only_unknown_parameters_changes_nothing(host):
    unknown = ref("unknown", hook("plan(self, ctx)", "return {'focus': ['NOPE']}"))
    with runtime(host, unknown) as mechanisms:
        assert mechanisms.plan(CTX).is_empty()
        assert mechanisms.liveness()["unknown"]["changed"]["plan"] == 0


def test_frozen_parameters_are_no_focus(host):
    with runtime(host, FOCUS_DEPTH) as mechanisms:
        advice = mechanisms.plan({**CTX, "frozen": ["DEPTH"]})
        assert advice.focus == [] and advice.guidance == "deeper"


def test_screen_first_verdict_wins_and_later_mechanisms_are_not_asked(host):
    with runtime(host, SILENT, CHOOSE_SECOND, REJECT) as mechanisms:
        verdict = mechanisms.screen(CTX, CANDIDATES)
        assert verdict is not None and verdict.choose == 1
        live = mechanisms.liveness()
        assert live["choose_second"]["changed"]["screen"] == 1
        assert live["reject"]["calls"]["screen"] == 0


def test_screen_choosing_the_first_candidate_decides_but_changes_nothing(host):
    with runtime(host, CHOOSE_FIRST, REJECT) as mechanisms:
        verdict = mechanisms.screen(CTX, CANDIDATES)
        assert verdict is not None and verdict.choose == 0
        assert mechanisms.liveness()["choose_first"]["changed"]["screen"] == 0


def test_screen_rejection_is_a_changed_decision(host):
    with runtime(host, REJECT) as mechanisms:
        verdict = mechanisms.screen(CTX, CANDIDATES)
        assert verdict is not None and verdict.reject and verdict.reason == "seen before"
        assert mechanisms.liveness()["reject"]["changed"]["screen"] == 1


def test_screen_without_candidates_asks_nobody(host):
    with runtime(host, REJECT) as mechanisms:
        assert mechanisms.screen(CTX, []) is None
        assert mechanisms.liveness()["reject"]["calls"]["screen"] == 0


def test_screen_choosing_a_missing_candidate_is_garbage(host):
    out_of_range = ref("out_of_range", hook("screen(self, ctx, candidates)", "return {'choose': 5}"))
    with runtime(host, out_of_range) as mechanisms:
        assert mechanisms.screen(CTX, CANDIDATES) is None
        assert "screen returned {'choose': 5}: choose must be an int index in [0, 1]" in mechanisms.liveness()["out_of_range"]["reason"]


def test_accept_chain_reports_who_changed_the_decision(host):
    with runtime(host, SILENT, FLIP) as mechanisms:
        assert mechanisms.accept(CTX, RESULT, False) == (True, "flip")
        assert mechanisms.accept(CTX, RESULT, True) == (False, "flip")
        assert mechanisms.liveness()["flip"]["changed"]["accept"] == 2


def test_accept_flipped_back_to_the_default_names_nobody(host):
    flip_again = ref("flip_again", hook("accept(self, ctx, result, default)", "return not default"))
    with runtime(host, FLIP, flip_again) as mechanisms:
        assert mechanisms.accept(CTX, RESULT, False) == (False, None)
        live = mechanisms.liveness()
        assert live["flip"]["changed"]["accept"] == 1 and live["flip_again"]["changed"]["accept"] == 1


def test_observe_is_called_but_never_a_changed_decision(host):
    with runtime(host, COUNTER) as mechanisms:
        mechanisms.observe(CTX, RESULT)
        assert mechanisms.plan(CTX).guidance == "seen 1"
        live = mechanisms.liveness()["counter"]
        assert live["calls"]["observe"] == 1 and "observe" not in live["changed"]


# -- quarantine and recovery -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "expected"),
    [(RAISES, "KeyError: 'missing'"), (GARBAGE, "plan returned an invalid dict")],
)
def test_a_misbehaving_mechanism_is_quarantined_and_the_others_carry_on(host, bad, expected):
    with runtime(host, bad, FOCUS_DEPTH) as mechanisms:
        advice = mechanisms.plan(CTX)
        assert advice.focus == ["DEPTH"]
        assert [r.name for r in mechanisms.active] == ["focus_depth"]
        reason = mechanisms.liveness()[bad.name]["reason"]
        assert expected in reason and "iteration 7" in reason
        assert mechanisms.plan(CTX).focus == ["DEPTH"]
        assert mechanisms.liveness()[bad.name]["calls"]["plan"] == 1  # never called again


def test_a_timeout_quarantines_only_that_mechanism_and_the_others_keep_their_worker_and_state(host):
    with runtime(host, COUNTER, LOOPS, timeout=0.3) as mechanisms:
        for _ in range(3):
            mechanisms.observe(CTX, RESULT)
        counter_pid = mechanisms.worker_pids()["counter"]
        advice = mechanisms.plan(CTX)  # LOOPS times out: its own worker is killed, COUNTER's is untouched
        assert mechanisms.liveness()["loops"]["quarantined"]
        assert "did not answer within 0.3 s" in mechanisms.liveness()["loops"]["reason"]
        assert advice.guidance == "seen 3"
        assert mechanisms.plan(CTX).guidance == "seen 3"
        assert mechanisms.worker_pids() == {"counter": counter_pid, "loops": None}
        assert mechanisms.liveness()["counter"]["replayed"] == 0


def test_a_worker_that_dies_is_replaced_and_the_state_replayed(host):
    with runtime(host, COUNTER) as mechanisms:
        for _ in range(3):
            mechanisms.observe(CTX, RESULT)
        pid = mechanisms.worker_pids()["counter"]
        assert pid is not None
        mechanisms._slots[0].host._worker.stop()  # noqa: SLF001 - as if it crashed while idle
        assert mechanisms.plan(CTX).guidance == "seen 3"
        assert mechanisms.worker_pids()["counter"] not in (None, pid)
        assert mechanisms.liveness()["counter"]["replayed"] == 3


def test_rebuild_starts_from_fresh_state_and_replays_history(host):
    with runtime(host, COUNTER) as mechanisms:
        mechanisms.observe(CTX, RESULT)
        pid = mechanisms.worker_pids()["counter"]
        mechanisms.rebuild([(CTX, RESULT)] * 5)
        assert mechanisms.worker_pids()["counter"] not in (None, pid)  # a fresh interpreter, not just a fresh instance
        assert mechanisms.plan(CTX).guidance == "seen 5"
        assert mechanisms.liveness()["counter"]["calls"]["observe"] == 1  # replays are counted apart
        assert mechanisms.liveness()["counter"]["replayed"] == 5


def test_a_source_that_breaks_the_policy_is_quarantined_at_load(host):
    bad = MechanismRef(name="bad", version="v", source="import os\nclass A:\n    def plan(self, ctx):\n        return None\n")
    with runtime(host, bad, FOCUS_DEPTH) as mechanisms:
        assert [r.name for r in mechanisms.active] == ["focus_depth"]
        assert "import of 'os' is not allowed" in mechanisms.liveness()["bad"]["reason"]


def test_a_class_without_hooks_is_quarantined(host):
    hookless = MechanismRef(name="hookless", version="v", source="class A:\n    def helper(self):\n        return 1\n")
    with runtime(host, hookless) as mechanisms:
        assert mechanisms.active == []
        assert "defines none of the hooks" in mechanisms.liveness()["hookless"]["reason"]
        assert mechanisms.plan(CTX).is_empty()


def test_duplicate_names_are_refused(host):
    with pytest.raises(ValueError, match="unique"):
        runtime(host, FOCUS_DEPTH, FOCUS_DEPTH)


def test_take_activity_reports_each_experiment_then_resets(host):
    with runtime(host, FOCUS_DEPTH, RAISES, SILENT) as mechanisms:
        mechanisms.plan(CTX)
        mechanisms.screen(CTX, CANDIDATES)
        first = {a.name: a for a in mechanisms.take_activity()}
        assert first["focus_depth"].calls == {"plan": 1} and first["focus_depth"].changed == ["plan"]
        assert first["focus_depth"].version == "focus_depth-v1"
        assert first["raises"].quarantined and "KeyError" in first["raises"].note
        assert first["silent"].calls == {"plan": 1, "screen": 1} and first["silent"].changed == []
        second = {a.name: a for a in mechanisms.take_activity()}
        assert set(second) == {"focus_depth", "silent"}  # quarantined earlier: not part of later experiments
        assert second["focus_depth"].calls == {}


def test_two_runtimes_with_the_same_settings_do_not_collide(host):
    with runtime(host, COUNTER) as first, runtime(host, COUNTER) as second:
        first.observe(CTX, RESULT)
        assert first.plan(CTX).guidance == "seen 1"
        assert second.plan(CTX).guidance == "seen 0"
        assert first.worker_pids()["counter"] != second.worker_pids()["counter"]
    assert host.pid is None  # the settings' own host never starts a worker


def test_a_runtime_closes_every_worker_it_started():
    mechanisms = MechanismRuntime([FOCUS_DEPTH, COUNTER])
    assert mechanisms.plan(CTX).focus == ["DEPTH"]
    pids = mechanisms.worker_pids()
    assert None not in pids.values() and len(set(pids.values())) == 2
    mechanisms.close()
    assert mechanisms.worker_pids() == {"focus_depth": None, "counter": None}


def test_a_runtime_without_mechanisms_starts_no_worker():
    mechanisms = MechanismRuntime([])
    assert mechanisms.plan(CTX).is_empty()
    assert mechanisms.screen(CTX, CANDIDATES) is None
    assert mechanisms.accept(CTX, RESULT, True) == (True, None)
    assert mechanisms.worker_pids() == {}
    assert mechanisms._sandbox.pid is None  # noqa: SLF001
    mechanisms.close()


# -- issue 15: nothing a mechanism answers reaches the inner loop; incomplete sandboxes run no generated code ----

DEEP = ref("deep", hook("plan(self, ctx)", "value = []", "for _ in range(985):", "    value = [value]", "return {'guidance': str(len(value)), 'focus': value}"))


def test_an_answer_nested_985_deep_quarantines_the_mechanism_in_a_live_runtime(host):
    with runtime(host, DEEP, FOCUS_DEPTH) as mechanisms:
        assert mechanisms.plan(CTX).focus == ["DEPTH"]  # no RecursionError reaches the caller
        assert mechanisms.liveness()["deep"]["quarantined"]
        assert "nested deeper than 64 levels" in mechanisms.liveness()["deep"]["reason"]


@pytest.fixture(scope="module")
def weak_host():
    """A sandbox without namespaces (as on a kernel that refuses unprivileged user namespaces)."""
    with SandboxHost(SandboxLimits(isolate=False), call_timeout_s=1.0) as sandbox:
        yield sandbox


def test_generated_mechanisms_are_not_activated_where_the_sandbox_is_incomplete(weak_host):
    with runtime(weak_host, FOCUS_DEPTH) as mechanisms:
        assert mechanisms.active == []
        reason = mechanisms.liveness()["focus_depth"]["reason"]
        assert "sandbox is incomplete" in reason and "user namespace" in reason and "BILEVEL_SANDBOX_ALLOW_WEAK=1" in reason
        assert mechanisms.plan(CTX).is_empty()


def test_an_explicit_setting_runs_them_anyway(weak_host):
    with MechanismRuntime([FOCUS_DEPTH], call_timeout_s=1.0, sandbox=weak_host, allow_weak_sandbox=True) as mechanisms:
        assert mechanisms.plan(CTX).focus == ["DEPTH"]


def test_library_mechanisms_run_where_the_sandbox_is_incomplete(weak_host):
    trusted = MechanismRef(name="tabu", version="library", source=library_source("tabu"), trusted=True)
    with runtime(weak_host, trusted, FOCUS_DEPTH) as mechanisms:
        assert [r.name for r in mechanisms.active] == ["tabu"]


def test_open_runtime_trusts_only_the_library():
    active = ActiveSet(mechanisms=[ActiveMechanism.from_source("tabu", library_source("tabu"), version="library", origin="library"),
                                   ActiveMechanism.from_source("gen", FOCUS_DEPTH.source, origin="run/g1")])
    mechanisms = open_runtime(active, simulated_trace(3, seed=1), tinygpt_space(), ReplaySource(fallback_config=SEARCH_CONFIG))
    assert mechanisms is not None
    try:
        assert [(slot.ref.name, slot.ref.trusted) for slot in mechanisms._slots] == [("tabu", True), ("gen", False)]  # noqa: SLF001
        assert mechanisms.allow_weak_sandbox is False
    finally:
        mechanisms.close()


# -- issue 23, finding 4: a time budget per mechanism and generation ---------------------------------------------


class TickingClock:
    """A clock that advances one second at every reading: each timed load or hook call costs exactly 1 s."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def test_a_mechanism_past_its_time_budget_is_quarantined_with_the_reason_in_the_trace(host):
    with MechanismRuntime([FOCUS_DEPTH, CHOOSE_SECOND], call_timeout_s=1.0, sandbox=host, time_budget_s=2.5,
                          clock=TickingClock()) as mechanisms:
        assert mechanisms.plan(CTX).focus == ["DEPTH"]  # load 1 s + plan 1 s: within 2.5 s
        mechanisms.take_activity()
        assert mechanisms.plan(CTX).is_empty()  # 3 s: over the budget, its answer is dropped
        live = mechanisms.liveness()["focus_depth"]
        assert live["quarantined"] and live["spent_s"] == 3.0
        assert "too slow" in live["reason"] and "over its budget of 2.5 s" in live["reason"]
        assert "BILEVEL_MECHANISM_TIME_BUDGET_S" in live["reason"]
        activity = {a.name: a for a in mechanisms.take_activity()}
        assert activity["focus_depth"].quarantined and "too slow" in activity["focus_depth"].note
        # the budget is per mechanism: the other one spent only its load
        assert mechanisms.liveness()["choose_second"]["spent_s"] == 1.0
        assert mechanisms.screen(CTX, CANDIDATES).choose == 1
        assert mechanisms.worker_pids()["focus_depth"] is None


def test_the_replay_counts_against_the_budget(host):
    with MechanismRuntime([COUNTER], call_timeout_s=1.0, sandbox=host, time_budget_s=3.5, clock=TickingClock(),
                          history=[(CTX, RESULT)] * 5) as mechanisms:
        live = mechanisms.liveness()["counter"]
        assert live["quarantined"] and live["replayed"] == 3  # load 1 s, then 3 replayed observes reach 4 s
        assert "too slow" in live["reason"] and "last: observe" in live["reason"]


def test_a_hook_slower_than_a_tiny_budget_is_quarantined_on_the_real_clock(host):
    slow = ref("slow", hook("plan(self, ctx)", "total = 0", "for i in range(3000000):", "    total += i",
                            "return {'guidance': str(total)}"))
    with MechanismRuntime([slow, FOCUS_LR], call_timeout_s=60.0, sandbox=host, time_budget_s=0.001) as mechanisms:
        mechanisms.plan(CTX)
        assert mechanisms.liveness()["slow"]["quarantined"]
        assert "over its budget of 0.001 s" in mechanisms.liveness()["slow"]["reason"]


def test_without_a_budget_nothing_is_quarantined_for_time(host):
    with MechanismRuntime([FOCUS_DEPTH], call_timeout_s=1.0, sandbox=host, clock=TickingClock()) as mechanisms:
        for _ in range(50):
            assert mechanisms.plan(CTX).focus == ["DEPTH"]
        assert mechanisms.liveness()["focus_depth"]["spent_s"] == 51.0


def test_a_budget_must_be_positive(host):
    with pytest.raises(ValueError, match="positive"):
        MechanismRuntime([FOCUS_DEPTH], sandbox=host, time_budget_s=0)


def test_open_runtime_passes_the_budget_and_the_setting_has_a_default(monkeypatch):
    from infra.settings import Settings

    monkeypatch.delenv("BILEVEL_MECHANISM_TIME_BUDGET_S", raising=False)
    default = Settings().mechanism_time_budget_s
    assert default > 0
    monkeypatch.setenv("BILEVEL_MECHANISM_TIME_BUDGET_S", "7.5")
    assert Settings().mechanism_time_budget_s == 7.5
    active = ActiveSet(mechanisms=[ActiveMechanism.from_source("tabu", library_source("tabu"), version="library", origin="library")])
    mechanisms = open_runtime(active, simulated_trace(3, seed=1), tinygpt_space(), ReplaySource(fallback_config=SEARCH_CONFIG),
                              time_budget_s=7.5)
    assert mechanisms is not None
    try:
        assert mechanisms.time_budget_s == 7.5
        assert mechanisms.liveness()["tabu"]["spent_s"] > 0
    finally:
        mechanisms.close()
