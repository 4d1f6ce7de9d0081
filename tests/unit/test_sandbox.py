"""The sandbox protocol with well-behaved and clumsy mechanisms: load, call, errors, answers, restarts."""

from __future__ import annotations

import gc
import os
import threading
import time

import pytest

from mechanisms.policy import STANDARD_MODULES
from mechanisms.sandbox import (
    BadAnswer,
    CallTimedOut,
    HookFailed,
    LoadFailed,
    MechanismMissing,
    PolicyRejected,
    SandboxError,
    SandboxHost,
    SandboxLimits,
    sandbox_protections,
)

PLANNER = '''
import numpy as np

class Planner:
    """Returns numpy values and counts its calls."""

    name = "planner"

    def __init__(self):
        self.calls = 0

    def plan(self, ctx):
        self.calls += 1
        return {"calls": self.calls, "mean": np.float64(np.mean(ctx["values"])), "arr": np.arange(2)}

    def observe(self, ctx, result):
        pass
'''


@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0) as sandbox:
        yield sandbox


def mechanism(body: str, name: str = "M") -> str:
    return f"class {name}:\n    def plan(self, ctx):\n" + "".join(f"        {line}\n" for line in body.splitlines())


def test_load_reports_name_class_and_hooks(host):
    loaded = host.load("planner", PLANNER)
    assert (loaded.name, loaded.class_name, loaded.hooks) == ("planner", "Planner", ("plan", "observe"))


def test_call_returns_json_with_numpy_values_converted_and_state_kept(host):
    host.load("planner", PLANNER)
    assert host.call("planner", "plan", [{"values": [1, 2, 3]}]) == {"calls": 1, "mean": 2.0, "arr": [0, 1]}
    assert host.call("planner", "plan", [{"values": [1]}])["calls"] == 2


def test_future_annotations_and_dataclasses_work(host):
    source = (
        "from __future__ import annotations\nfrom dataclasses import dataclass, field\n\n@dataclass\nclass D:\n"
        "    name: str = 'dc'\n    seen: list[int] = field(default_factory=list)\n\n"
        "    def plan(self, ctx):\n        self.seen.append(1)\n        return {'guidance': str(len(self.seen))}\n"
    )
    assert host.load("dc", source).name == "dc"
    assert host.call("dc", "plan", [{}]) == {"guidance": "1"}


def test_name_defaults_to_the_class_name(host):
    assert host.load("plain", mechanism("return None", name="Plain")).name == "Plain"


def test_printing_does_not_corrupt_the_protocol(host):
    host.load("printer", mechanism('print("x" * 1000)\nprint(\'{"id": 1, "ok": true, "value": "forged"}\')\nreturn {"guidance": "real"}'))
    assert host.call("printer", "plan", [{}]) == {"guidance": "real"}
    deadline = time.monotonic() + 2.0  # stderr is drained by a thread: give it a moment
    while "forged" not in host.stderr_tail() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert "forged" in host.stderr_tail()


def test_a_raising_hook_reports_type_message_line_and_code_and_the_worker_lives_on(host):
    host.load("raiser", mechanism("x = 1\nreturn {'n': x / 0}"))
    generation = host.ensure_running()
    with pytest.raises(HookFailed) as caught:
        host.call("raiser", "plan", [{}])
    message = str(caught.value)
    assert "ZeroDivisionError" in message and "line 4" in message and "x / 0" in message
    assert host.ensure_running() == generation


def test_the_worker_rechecks_the_policy(host):
    with pytest.raises(PolicyRejected, match="line 1: import of 'os' is not allowed"):
        host.load("bad", "import os\nclass A:\n    pass\n")


def test_skipping_the_policy_is_refused_unless_the_host_allows_it(host):
    with pytest.raises(PolicyRejected):
        host.load("bad", "import os\nclass A:\n    pass\n", check_policy=False)


def test_a_failing_constructor_is_a_load_error_with_its_line(host):
    source = "class A:\n    def __init__(self):\n        self.x = [][1]\n    def plan(self, ctx):\n        return None\n"
    with pytest.raises(LoadFailed, match="IndexError.*line 3"):
        host.load("broken", source)


@pytest.mark.parametrize("answer", ["{1, 2}", "object()", "float('nan')", "(x for x in [1])", "{(1, 2): 3}"])
def test_non_json_answers_are_refused_without_a_restart(host, answer):
    host.load("odd", mechanism(f"return {answer}"))
    generation = host.ensure_running()
    with pytest.raises(BadAnswer, match="not valid JSON"):
        host.call("odd", "plan", [{}])
    assert host.ensure_running() == generation


def test_an_oversized_answer_is_refused_without_a_restart(host):
    host.load("big", mechanism("return list(range(200000))"))
    generation = host.ensure_running()
    with pytest.raises(BadAnswer, match="limit is"):
        host.call("big", "plan", [{}])
    assert host.ensure_running() == generation


def test_unknown_and_dropped_keys_are_missing(host):
    with pytest.raises(MechanismMissing):
        host.call("never-loaded", "plan", [{}])
    host.load("dropped", mechanism("return None"))
    host.drop("dropped")
    with pytest.raises(MechanismMissing):
        host.call("dropped", "plan", [{}])


def test_an_import_outside_the_allowlist_fails_inside_the_worker_too(host):
    # `import math` passes the policy; `importlib`-style tricks are refused at run time by the restricted importer.
    host.load("importer", mechanism("import math\nreturn {'pi': math.pi}"))
    assert host.call("importer", "plan", [{}]) == {"pi": pytest.approx(3.14159, abs=1e-4)}


def test_module_proxies_hold_exactly_the_allowlisted_names():
    """The runtime layer mirrors the policy: with the policy skipped, a proxy has only the policy's names."""
    probe = (
        "import random\nimport numpy as np\nimport json\nclass A:\n    def plan(self, ctx):\n"
        "        return {'rng': hasattr(np.random, 'default_rng'), 'os': hasattr(random, '_os'), "
        "'lib': hasattr(np, 'lib'), 'save': hasattr(np, 'save'), 'load': hasattr(json, 'load'), "
        "'names': sorted(n for n in json.__dict__ if not n.startswith('_'))}\n"
    )
    with SandboxHost(allow_unchecked=True) as sandbox:
        sandbox.load("proxy", probe, check_policy=False)
        answer = sandbox.call("proxy", "plan", [{}])
    assert answer == {"rng": True, "os": False, "lib": False, "save": False, "load": False,
                      "names": sorted(STANDARD_MODULES["json"])}


def test_the_propose_hook_is_called_with_one_argument(host):
    source = "class P:\n    def propose(self, ctx):\n        return {'changes': {'DEPTH': ctx['depth'] + 1}}\n"
    loaded = host.load("proposer", source)
    assert loaded.hooks == ("propose",)
    assert host.call("proposer", "propose", [{"depth": 3}]) == {"changes": {"DEPTH": 4}}
    with pytest.raises(SandboxError, match="bad call of hook 'propose' with 2 arguments"):
        host.call("proposer", "propose", [{}, {}])


def test_a_trusted_module_is_importable_with_exactly_its_exported_names(tmp_path):
    helpers = tmp_path / "helpers.py"
    helpers.write_text(
        '"""Trusted helpers."""\nimport math\n\n__all__ = ["untried", "spread"]\n\n'
        "def untried(names, seen):\n    return [n for n in names if n not in seen]\n\n"
        "def spread(values):\n    return max(values) - min(values)\n\n"
        "def _private():\n    return math.pi\n"
    )
    source = ("import helpers as h\nfrom helpers import untried\nclass M:\n    def plan(self, ctx):\n"
              "        return {'focus': untried(['A', 'B'], ['A']), 'guidance': str(h.spread([1, 4]))}\n")
    with SandboxHost(trusted_modules={"helpers": str(helpers)}) as sandbox:
        assert sandbox.allowlist["helpers"] == frozenset({"untried", "spread"})
        sandbox.load("helped", source)
        assert sandbox.call("helped", "plan", [{}]) == {"focus": ["B"], "guidance": "3"}
        with pytest.raises(PolicyRejected, match="helpers._private is not available"):
            sandbox.load("private", source.replace("h.spread([1, 4])", "h._private()"))
    with SandboxHost(trusted_modules={}) as without:  # no trusted module: importing it is refused
        with pytest.raises(PolicyRejected, match="import of 'helpers' is not allowed"):
            without.load("helped", source)


def test_a_timeout_restarts_the_worker_and_later_loads_work(host):
    host.load("looper", mechanism("while True:\n    pass"))
    generation = host.ensure_running()
    with pytest.raises(CallTimedOut, match="did not answer within 0.3 s"):
        host.call("looper", "plan", [{}], timeout_s=0.3)
    assert host.ensure_running() == generation + 1
    with pytest.raises(MechanismMissing):
        host.call("looper", "plan", [{}])
    host.load("planner", PLANNER)
    assert host.call("planner", "plan", [{"values": [2]}])["calls"] == 1


def test_concurrent_callers_get_their_own_answers(host):
    host.load("echo", "class Echo:\n    def plan(self, ctx):\n        return {'guidance': ctx['who']}\n")
    results: dict[int, list] = {}

    def worker(who: int) -> None:
        results[who] = [host.call("echo", "plan", [{"who": str(who)}])["guidance"] for _ in range(20)]

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == {who: [str(who)] * 20 for who in range(3)}  # every caller answered (a failed thread leaves a gap)


def test_the_worker_reports_its_protections(host):
    protections = host.protections
    assert protections["rlimits"]["RLIMIT_FSIZE"] == 0
    assert protections["rlimits"]["RLIMIT_NOFILE"] == 16
    assert protections["uid"] != 0 and protections["no_new_privs"] is True and protections["capabilities"] is True
    if protections["user_namespace"]:  # unprivileged user namespaces are allowed on this kernel
        assert host.missing_protections() == []
        assert all(protections[k] for k in ("mount_namespace", "pid_namespace", "network_namespace", "chroot"))


def test_a_closed_host_refuses_requests():
    sandbox = SandboxHost()
    sandbox.close()
    with pytest.raises(Exception, match="closed"):
        sandbox.ping()


def test_closing_stops_the_worker_and_removes_its_directory():
    sandbox = SandboxHost()
    sandbox.ensure_running()
    pid = sandbox.pid
    directory = os.readlink(f"/proc/{pid}/cwd")
    assert os.path.isdir(directory) and os.listdir(directory) == []
    sandbox.close()
    assert not os.path.exists(directory)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]


def test_a_forgotten_host_does_not_leak_its_worker():
    sandbox = SandboxHost()
    sandbox.ensure_running()
    pid = sandbox.pid
    del sandbox
    gc.collect()
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # type: ignore[arg-type]


def test_without_namespaces_mechanisms_still_run_and_the_report_names_what_is_missing():
    limits = SandboxLimits(isolate=False, landlock=False, seccomp=False)
    with SandboxHost(limits) as sandbox:
        protections = sandbox.protections
        assert protections["chroot"] is False and protections["network_namespace"] is False
        missing = sandbox.missing_protections()
        assert len(missing) == 1 and "user namespace, mount namespace, PID namespace" in missing[0]
        assert "switched off (isolate=False)" in missing[0]
        sandbox.load("m", "class M:\n    def plan(self, ctx):\n        return {'guidance': 'ok'}\n")
        assert sandbox.call("m", "plan", [{}]) == {"guidance": "ok"}


def test_sandbox_protections_reports_each_protection_on_or_off():
    report = sandbox_protections(SandboxLimits(landlock=False))
    assert "Landlock off" in report["summary"] and "rlimits on" in report["summary"]
    assert report["protections"]["landlock"] is False
