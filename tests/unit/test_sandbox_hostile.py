"""Hostile mechanisms: each attack is refused by the static policy AND contained by the worker process.

To prove the second layer on its own, the attacks are loaded with the policy skipped (a test-only
flag) and escape the restricted builtins through `().__class__.__base__.__subclasses__()`, which
yields the real `__import__` and a freshly created `posix` module (so the in-process neutralising of
`os` does not help either). What remains is the process: uid nobody, chroot, no network namespace,
rlimits, scrubbed environment. After every attack the host carries on.
"""

from __future__ import annotations

import os
import signal
import socket
import textwrap
import time

import pytest

from mechanisms.policy import check_source
from mechanisms.sandbox import (
    BadAnswer,
    CallTimedOut,
    HookFailed,
    SandboxError,
    SandboxHost,
    SandboxLimits,
    WorkerCrashed,
)

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="uid nobody, chroot and the network namespace need root here")

ESCAPE = '''
class Hostile:
    def real_import(self, name):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                return cls.__init__.__globals__["__builtins__"]["__import__"](name, fromlist=["_"])

    def fresh_posix(self):
        machinery = self.real_import("importlib.machinery")
        spec = machinery.ModuleSpec("posix", machinery.BuiltinImporter, origin="built-in")
        imp = self.real_import("_imp")
        module = imp.create_builtin(spec)
        imp.exec_builtin(module)
        return module

    def libc(self):
        # the worker's own ctypes module (it used it to unshare): full access to libc's system calls
        ctypes = self.real_import("sys").modules["__main__"].ctypes
        return ctypes, ctypes.CDLL(None, use_errno=True)

    def plan(self, ctx):
{body}
'''


def hostile(body: str) -> str:
    return ESCAPE.format(body=textwrap.indent(textwrap.dedent(body).strip("\n"), " " * 8))


def attack(host: SandboxHost, body: str, **call) -> object:
    """Load the attack without the policy (after checking the policy refuses it), and run it."""
    source = hostile(body)
    assert not check_source(source).ok, "the static policy must refuse every attack too"
    host.load("hostile", source, check_policy=False)
    return host.call("hostile", "plan", [{}], **call)


def assert_host_carries_on(host: SandboxHost) -> None:
    host.load("fine", "class Fine:\n    def plan(self, ctx):\n        return {'guidance': 'ok'}\n")
    assert host.call("fine", "plan", [{}]) == {"guidance": "ok"}


@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0, allow_unchecked=True) as sandbox:
        yield sandbox


@pytest.fixture(scope="module")
def host_without_chroot():
    """The filesystem stays visible, so the other limits must stop file, socket and process access alone."""
    with SandboxHost(SandboxLimits(chroot=False), call_timeout_s=2.0, allow_unchecked=True) as sandbox:
        yield sandbox


def test_the_escape_really_reaches_the_real_import(host):
    assert attack(host, "return {'posix': self.fresh_posix().getuid() >= 0}") == {"posix": True}


def test_restricted_builtins_stop_open_without_an_escape(host):
    host.load("opener", "class A:\n    def plan(self, ctx):\n        return open('/etc/hostname').read()\n", check_policy=False)
    with pytest.raises(HookFailed, match="NameError: name 'open' is not defined"):
        host.call("opener", "plan", [{}])


@needs_root
def test_file_reads_find_nothing_inside_the_chroot(host):
    with pytest.raises(HookFailed, match="FileNotFoundError|PermissionError"):
        attack(host, "return self.real_import('builtins').open('/etc/hostname').read()")
    assert_host_carries_on(host)


@needs_root
def test_file_reads_of_private_files_are_denied_without_chroot(host_without_chroot, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("sk-secret")
    secret.chmod(0o600)
    with pytest.raises(HookFailed, match="PermissionError"):
        attack(host_without_chroot, f"return self.real_import('builtins').open({str(secret)!r}).read()")
    assert_host_carries_on(host_without_chroot)


@needs_root
def test_file_writes_write_nothing(host_without_chroot):
    target = f"/tmp/bilevel-hostile-{os.getpid()}.txt"  # /tmp is world-writable: only RLIMIT_FSIZE stops this
    try:
        with pytest.raises(HookFailed, match="File too large|PermissionError|OSError"):
            attack(host_without_chroot, f"f = self.real_import('builtins').open({target!r}, 'w')\nf.write('x' * 100)\nf.flush()")
        assert not os.path.exists(target) or os.path.getsize(target) == 0
    finally:
        if os.path.exists(target):
            os.remove(target)
    assert_host_carries_on(host_without_chroot)


@needs_root
def test_the_worker_has_its_own_network_namespace(host):
    host.ensure_running()
    assert os.readlink(f"/proc/{host.pid}/ns/net") != os.readlink("/proc/self/ns/net")


@needs_root
def test_sockets_cannot_reach_the_host_network_even_through_libc(host):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listener.settimeout(0.2)
        port = listener.getsockname()[1]
        body = f"""
        ctypes, libc = self.libc()
        fd = libc.socket(2, 1, 0)
        address = ctypes.create_string_buffer(bytes([2, 0, {port >> 8}, {port & 255}, 127, 0, 0, 1]) + bytes(8), 16)
        return {{"fd": fd, "connect": libc.connect(fd, address, 16), "errno": ctypes.get_errno()}}
        """
        answer = attack(host, body)
        assert answer["connect"] == -1, answer  # type: ignore[index]
        with pytest.raises(socket.timeout):
            listener.accept()
    assert_host_carries_on(host)


@needs_root
def test_no_child_processes(host_without_chroot):
    marker = f"/tmp/bilevel-hostile-child-{os.getpid()}"
    with pytest.raises(HookFailed, match="BlockingIOError|Resource temporarily unavailable"):
        attack(host_without_chroot, f"self.fresh_posix().posix_spawn('/usr/bin/touch', ['touch', {marker!r}], {{}})")
    with pytest.raises(HookFailed, match="BlockingIOError|Resource temporarily unavailable"):
        attack(host_without_chroot, "self.fresh_posix().fork()")
    assert not os.path.exists(marker)
    assert_host_carries_on(host_without_chroot)


@needs_root
def test_the_parent_process_cannot_be_signalled(host):
    with pytest.raises(HookFailed, match="PermissionError"):
        attack(host, "p = self.fresh_posix()\np.kill(p.getppid(), 9)")
    assert_host_carries_on(host)


def test_api_keys_never_reach_the_worker(monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-secret")
    monkeypatch.setenv("BILEVEL_S3_SECRET_KEY", "s3-test-secret")
    with SandboxHost(allow_unchecked=True) as sandbox:
        sandbox.ensure_running()
        with open(f"/proc/{sandbox.pid}/environ", "rb") as handle:
            environment = handle.read()
        assert b"secret" not in environment and b"API_KEY" not in environment
        seen = attack(sandbox, "return sorted(k.decode() for k in self.fresh_posix().environ)")
        assert not any("KEY" in name or "SECRET" in name for name in seen)  # type: ignore[union-attr]


def test_our_packages_cannot_be_imported(host):
    for package in ("mechanisms", "search", "infra"):
        with pytest.raises(HookFailed, match="ModuleNotFoundError"):
            attack(host, f"return str(self.real_import({package!r}))")


def test_infinite_loop_times_out_and_the_host_restarts(host):
    source = "class Loop:\n    def plan(self, ctx):\n        while True:\n            pass\n"
    assert check_source(source).ok  # the policy cannot see this one: only the process limits stop it
    host.load("loop", source)
    generation = host.ensure_running()
    started = time.monotonic()
    with pytest.raises(CallTimedOut):
        host.call("loop", "plan", [{}], timeout_s=0.3)
    assert time.monotonic() - started < 2.0
    assert host.ensure_running() == generation + 1
    assert_host_carries_on(host)


def test_memory_bomb_is_a_memory_error_and_the_worker_lives(host):
    source = "class Bomb:\n    def plan(self, ctx):\n        return len('x' * (8 * 1024 ** 3))\n"
    assert check_source(source).ok  # allowed code: RLIMIT_AS contains it
    host.load("bomb", source)
    generation = host.ensure_running()
    with pytest.raises(HookFailed, match="MemoryError"):
        host.call("bomb", "plan", [{}])
    assert host.ensure_running() == generation
    assert_host_carries_on(host)


def test_raising_system_exit_or_keyboard_interrupt_is_just_a_hook_error(host):
    for name in ("SystemExit", "KeyboardInterrupt"):
        with pytest.raises(HookFailed, match=name):
            attack(host, f"raise self.real_import('builtins').{name}()")
    assert_host_carries_on(host)


def test_deep_recursion_is_a_hook_error(host):
    source = "class Deep:\n    def plan(self, ctx):\n        return self.plan(ctx)\n"
    host.load("deep", source)
    with pytest.raises(HookFailed, match="RecursionError"):
        host.call("deep", "plan", [{}])


def test_huge_answers_are_refused(host):
    host.load("huge", "class Huge:\n    def plan(self, ctx):\n        return {'guidance': 'x' * (10 ** 7)}\n")
    with pytest.raises(BadAnswer):
        host.call("huge", "plan", [{}])
    assert_host_carries_on(host)


def test_writing_to_file_descriptor_1_does_not_reach_the_protocol(host):
    assert attack(host, "self.fresh_posix().write(1, b'{\"id\": 0}\\n')\nreturn 'done'") == "done"


def test_forging_protocol_lines_is_detected_and_the_host_restarts(host):
    body = """
    p = self.fresh_posix()
    for fd in range(3, 16):
        try:
            p.write(fd, b'garbage\\n')
        except Exception:
            pass
    return 'done'
    """
    generation = host.ensure_running()
    try:
        attack(host, body)
    except WorkerCrashed as crashed:
        assert "protocol" in str(crashed)
        assert host.ensure_running() == generation + 1
    assert_host_carries_on(host)


def test_a_worker_killed_from_outside_is_replaced(host):
    host.load("victim", "class V:\n    def plan(self, ctx):\n        return None\n")
    generation = host.ensure_running()
    os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]
    time.sleep(0.05)
    with pytest.raises(SandboxError):  # the loaded mechanism is gone with the worker
        host.call("victim", "plan", [{}])
    assert host.ensure_running() > generation
    assert_host_carries_on(host)


@pytest.mark.integration
def test_cpu_time_limit_kills_a_busy_worker_when_the_wall_clock_is_generous():
    with SandboxHost(SandboxLimits(cpu_s=1), call_timeout_s=20.0) as sandbox:
        sandbox.load("spin", "class Spin:\n    def plan(self, ctx):\n        while True:\n            pass\n")
        with pytest.raises(WorkerCrashed, match="SIGXCPU|SIGKILL"):
            sandbox.call("spin", "plan", [{}])
        assert_host_carries_on(sandbox)
