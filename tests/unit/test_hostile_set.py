"""The held-out hostile mechanisms (tests/hostile/*.py), as root and as uid 12345: each is refused by
validation, and, run straight in the sandbox with the static policy switched off, contained by the OS
layer: no secret in any answer, error or log, nothing written outside the sandbox, no process signalled,
nothing received by a listener on loopback (see tests/hostile/README.md for the conventions)."""

from __future__ import annotations

import errno
import glob
import os
import shutil
import socket
import subprocess
from pathlib import Path

import pytest

from mechanisms.replay import ReplaySource, replay_steps
from mechanisms.sandbox import SandboxError, SandboxHost, SandboxLimits
from mechanisms.synthetic_trace import SEARCH_CONFIG, simulated_trace, tinygpt_space
from mechanisms.validate import ValidationLimits, validate_mechanism

HOSTILE_DIR = Path(__file__).resolve().parents[1] / "hostile"
FILES = sorted(HOSTILE_DIR.glob("*.py"))
SECRET = "sk-canary-secret-7f3a"
CANARY_DIR = "/tmp/bilevel-hostile-canary"
CANARY = f"{CANARY_DIR}/secret.txt"
PORT = 47813
UID = 12345
STEPS = replay_steps(simulated_trace(8, seed=5), tinygpt_space(), ReplaySource(run_seed=2, fallback_config=SEARCH_CONFIG))
LIMITS = ValidationLimits(call_timeout_s=0.5)
# Allowed code that misbehaves passes the policy and fails the smoke test; everything else is refused by the policy.
SMOKE = {"exhaust_cpu", "exhaust_memory", "answer_nested", "answer_nan", "answer_huge"}
USERS = {"root": {}, "uid12345": {"become_uid": UID}}


def test_the_held_out_set_covers_every_kind_of_attack():
    names = {path.stem for path in FILES}
    assert len(names) >= 12
    for prefix in ("escape_", "secrets_", "files_", "network_", "signals_", "exhaust_", "protocol_", "answer_"):
        assert any(name.startswith(prefix) for name in names), prefix


@pytest.fixture(scope="module", params=list(USERS), ids=list(USERS))
def user(request):
    if USERS[request.param] and os.geteuid() != 0:
        pytest.skip("becoming uid 12345 needs a worker started as root")
    return request.param


@pytest.fixture(scope="module")
def hosts(user):
    limits = SandboxLimits(**USERS[user])
    with SandboxHost(limits, call_timeout_s=0.5) as checked, SandboxHost(limits, call_timeout_s=0.5, allow_unchecked=True) as raw:
        yield checked, raw


@pytest.fixture
def stage(hosts, monkeypatch):
    """The secrets and the bystanders, owned by the uid the worker runs as; checked after each attack."""
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    uid = hosts[0].protections["uid"]
    shutil.rmtree(CANARY_DIR, ignore_errors=True)
    os.makedirs(CANARY_DIR)
    with open(CANARY, "w") as handle:
        handle.write(SECRET)
    if os.geteuid() == 0:
        for path in (CANARY_DIR, CANARY):
            os.chown(path, uid, uid)
    os.chmod(CANARY_DIR, 0o700)
    os.chmod(CANARY, 0o600)
    victim = subprocess.Popen(["sleep", "60"], env={"OPENAI_API_KEY": SECRET},
                              **({"user": uid, "group": uid} if os.geteuid() == 0 else {}))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", PORT))
    listener.listen(4)
    listener.setblocking(False)
    try:
        yield
        with pytest.raises(BlockingIOError):
            listener.accept()  # nothing connected
        assert victim.poll() is None, "the bystander process was killed"
        with open(CANARY) as handle:
            assert handle.read() == SECRET
        assert os.stat(CANARY_DIR).st_mode & 0o777 == 0o700
        written = [path for path in glob.glob("/tmp/bilevel-hostile-*") if path != CANARY_DIR]
        assert written == [], f"written outside the sandbox: {written}"
    finally:
        listener.close()
        victim.kill()
        victim.wait()
        for path in glob.glob("/tmp/bilevel-hostile-*"):
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_validation_refuses_it(hosts, stage, path):
    checked, _raw = hosts
    report = validate_mechanism(path.read_text(), STEPS, name=path.stem, host=checked, limits=LIMITS)
    assert not report.ok
    assert report.stage_failed == ("smoke" if path.stem in SMOKE else "policy"), report.error
    assert SECRET not in report.model_dump_json() and SECRET not in checked.stderr_tail(10_000)


@pytest.mark.parametrize("path", FILES, ids=[path.stem for path in FILES])
def test_without_the_policy_the_os_layer_contains_it(hosts, stage, path):
    _checked, raw = hosts
    if path.stem.startswith("signals_") and raw.missing_protections() and not (
            raw.protections["landlock"] and raw.protections["seccomp"]):
        pytest.skip("kill(-1, 9) is run for real only where namespaces or Landlock and seccomp contain it")
    seen = []
    try:
        loaded = raw.load(path.stem, path.read_text(), check_policy=False)
    except SandboxError as error:
        seen.append(str(error))
    else:
        step = STEPS[0]
        arguments = {"plan": [step.ctx], "propose": [step.ctx], "screen": [step.ctx, step.candidates],
                     "accept": [step.ctx, step.result, False], "observe": [step.ctx, step.result]}
        for hook in loaded.hooks:
            try:
                seen.append(repr(raw.call(path.stem, hook, arguments[hook])))
            except SandboxError as error:  # refused, timed out, crashed: contained, and the host carries on
                seen.append(f"{type(error).__name__}: {error}")
    seen.append(raw.stderr_tail(10_000))
    assert not any(SECRET in text for text in seen), seen
    assert not any("sk-exfiltrated" in text for text in seen)
    raw.load("fine", "class Fine:\n    def plan(self, ctx):\n        return {'guidance': 'ok'}\n")
    assert raw.call("fine", "plan", [{}]) == {"guidance": "ok"}


def test_the_listener_port_is_free_for_the_network_attack():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", PORT))
        except OSError as error:  # pragma: no cover - the fixture would fail the same way, with this message first
            pytest.fail(f"port {PORT} on 127.0.0.1 is taken ({errno.errorcode.get(error.errno)}); the network attack needs it")
