"""Issue 23, finding 2: one mechanism cannot change another. Each runs in its own sandbox worker, so a patch of a
shared class or of module-level state (reachable through the allowed modules) stays in the attacker's process,
and goes with it when the attacker is quarantined or dropped. Checked in the live runtime and in validation."""

from __future__ import annotations

import os

import pytest

from mechanisms.library import library_source
from mechanisms.replay import ReplaySource, replay_steps
from mechanisms.runtime import MechanismRef, MechanismRuntime
from mechanisms.sandbox import SandboxHost
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space
from mechanisms.validate import ValidationLimits, validate_mechanism

CTX = {"iteration": 3, "seed": 11, "current": {"value": 2.0}, "objective": {"goal": "minimize"}}
WORSE = {"index": 3, "value": 2.5, "status": "ok"}  # worse by 0.5: annealing at T=0.05 keeps it with p = e^-10


def mechanism(name: str, imports: str, plan_lines: list[str]) -> MechanismRef:
    body = "".join(f"        {line}\n" for line in plan_lines)
    return MechanismRef(name=name, version="v1", source=f"{imports}\nclass M:\n    name = {name!r}\n    def plan(self, ctx):\n{body}")


# (what the attacker runs in its plan hook, what the victim reports from the same shared object)
ATTACKS = {
    "random.Random method": (["cls = random.Random", "cls.random = lambda self: 0.0"],
                             ["return {'guidance': str(random.Random(7).random())}"]),
    "random global state": (["random.seed(1)"], ["return {'guidance': str(random.random())}"]),
    "numpy global RNG": (["np.random.seed(1)"], ["return {'guidance': str(np.random.rand())}"]),
    "collections.Counter method": (["cls = collections.Counter", "cls.most_common = lambda self, n=None: [('x', 99)]"],
                                   ["return {'guidance': str(collections.Counter('aab').most_common(1))}"]),
    "statistics.NormalDist method": (["cls = statistics.NormalDist", "cls.cdf = lambda self, x: 0.123"],
                                     ["return {'guidance': str(statistics.NormalDist(0.0, 1.0).cdf(1.0))}"]),
    "json exception class": (["cls = json.JSONDecodeError", "cls.lineno = 'patched'"],
                             ["return {'guidance': str(hasattr(json.JSONDecodeError, 'lineno'))}"]),
}
IMPORTS = "import collections\nimport json\nimport random\nimport statistics\nimport numpy as np\n"


def _victim_guidance(attack_lines: list[str] | None, victim_lines: list[str], *, attacker_raises: bool = False) -> list[str]:
    refs = []
    if attack_lines is not None:
        refs.append(mechanism("attacker", IMPORTS, [*attack_lines, "return ctx['missing']" if attacker_raises else "return None"]))
    refs.append(mechanism("victim", IMPORTS, victim_lines))
    with MechanismRuntime(refs, call_timeout_s=5.0) as runtime:
        return [runtime.plan(CTX).guidance for _ in range(3)]


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_a_patch_of_shared_state_does_not_reach_another_mechanism(attack):
    attack_lines, victim_lines = ATTACKS[attack]
    alone = _victim_guidance(None, victim_lines)
    assert _victim_guidance(attack_lines, victim_lines) == alone


def test_a_quarantined_attackers_patch_does_not_stay_for_the_others():
    attack_lines, victim_lines = ATTACKS["random.Random method"]
    alone = _victim_guidance(None, victim_lines)
    # the attacker patches, then raises: it is quarantined on its first call, before the victim is asked
    assert _victim_guidance(attack_lines, victim_lines, attacker_raises=True) == alone


def _annealing_decisions(*extra: MechanismRef) -> list[tuple[bool, str | None]]:
    annealing = MechanismRef(name="annealing", version="library", source=library_source("annealing"), trusted=True)
    with MechanismRuntime([*extra, annealing], call_timeout_s=5.0) as runtime:
        decisions = []
        for seed in range(5):
            runtime.plan(CTX)  # the attacker acts here
            decisions.append(runtime.accept({**CTX, "seed": seed}, WORSE, False))
        return decisions


def test_the_annealing_library_mechanism_keeps_its_decisions_next_to_an_attacker():
    attacker = mechanism("attacker", "import random\n", ["cls = random.Random", "cls.random = lambda self: 0.0", "return None"])
    alone = _annealing_decisions()
    assert alone == [(False, None)] * 5  # a result worse by 0.5 is (almost) never kept
    assert _annealing_decisions(attacker) == alone


def test_each_mechanism_runs_in_its_own_worker_and_a_quarantined_one_is_gone():
    attacker = mechanism("attacker", IMPORTS, ["return ctx['missing']"])
    victim = mechanism("victim", IMPORTS, ["return {'guidance': 'fine'}"])
    with MechanismRuntime([attacker, victim], call_timeout_s=5.0) as runtime:
        pids = runtime.worker_pids()
        assert pids["attacker"] is not None and pids["victim"] is not None and pids["attacker"] != pids["victim"]
        attacker_pid = pids["attacker"]
        assert runtime.plan(CTX).guidance == "fine"
        assert runtime.liveness()["attacker"]["quarantined"]
        assert runtime.worker_pids()["attacker"] is None
        assert not _running(attacker_pid)
        victim_pid = runtime.worker_pids()["victim"]
    assert not _running(victim_pid)


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie is dead too, just not yet reaped
        return stat.read().rsplit(")", 1)[1].split()[0] != "Z"


# -- validation: the replay of a trace gets the same isolation ------------------------------------------------

VICTIM_ACCEPT = """import random

class Victim:
    name = "victim"

    def accept(self, ctx, result, default):
        return random.Random(ctx["seed"]).random() < 0.05 or None
"""
ATTACKER_ACCEPT = """import random

class Attacker:
    name = "attacker"

    def accept(self, ctx, result, default):
        cls = random.Random
        cls.random = lambda self: 0.0
        return not default
"""


def test_validating_an_attacker_first_does_not_change_the_next_validation_on_the_same_host():
    steps = replay_steps(simulated_trace(12, seed=2), tinygpt_space(), ReplaySource(fallback_config=SEARCH_CONFIG))
    limits = ValidationLimits(call_timeout_s=5.0, slow_call_s=5.0)
    with SandboxHost(call_timeout_s=5.0) as fresh:
        alone = validate_mechanism(VICTIM_ACCEPT, steps, host=fresh, limits=limits).liveness["changed"]
    with SandboxHost(call_timeout_s=5.0) as shared:
        validate_mechanism(ATTACKER_ACCEPT, steps, host=shared, limits=limits)
        after = validate_mechanism(VICTIM_ACCEPT, steps, host=shared, limits=limits).liveness["changed"]
    assert after == alone
