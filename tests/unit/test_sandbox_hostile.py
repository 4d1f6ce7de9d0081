"""Hostile mechanisms: each layer of the sandbox is attacked on its own, and each attack is contained.

Static policy: every attack below is refused by it (checked in `attack`). Runtime layer (restricted
builtins, read-only module proxies holding only the policy's names): finding 1 of issue 15, run with
the policy skipped. OS layer: the attacks are loaded with the policy skipped (a test-only flag) and
escape the restricted builtins through `().__class__.__base__.__subclasses__()`, which yields the
real `__import__`, a freshly created `posix` module (so the in-process neutralising of `os` does not
help) and ctypes (raw system calls). What remains is the process, and it must hold for root and for
an ordinary user alike. CI runs as root, so the ordinary user is uid 12345: the worker starts as root,
imports, becomes 12345 (`become_uid`) and then runs exactly the non-root path. Each attack runs
against four configurations: the worker started as root (it becomes nobody), as uid 12345, as uid
12345 without namespaces (`isolate=False`: Landlock and seccomp alone), and as uid 12345 with
namespaces only (Landlock and seccomp off). After every attack the host carries on.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import textwrap
import time
from dataclasses import dataclass

import psutil
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

UID = 12345
NOBODY = 65534
FAKE_KEY = "sk-fake-host-key-0123456789"
is_root = os.geteuid() == 0
needs_root = pytest.mark.skipif(not is_root, reason="becoming another uid needs a worker started as root")

ESCAPE = '''
class Hostile:
    def real_import(self, name):
        for cls in ().__class__.__base__.__subclasses__():
            if cls.__name__ == "_wrap_close":
                return cls.__init__.__globals__["__builtins__"]["__import__"](name, fromlist=["_"])

    def fresh_posix(self):
        machinery = self.real_import("sys").modules["_frozen_importlib"]  # importlib itself is gone (issue 23)
        spec = machinery.ModuleSpec("posix", machinery.BuiltinImporter, origin="built-in")
        imp = self.real_import("_imp")
        module = imp.create_builtin(spec)
        imp.exec_builtin(module)
        return module

    def libc(self):
        # The worker drops ctypes once confined (issue 23), but CPython cannot unload the _ctypes extension:
        # its import cache rebuilds the module without a file, and that is enough for raw system calls.
        sys = self.real_import("sys")
        imp = self.real_import("_imp")
        folder = [path for path in sys.path if path.endswith("lib-dynload")][0]
        spec = sys.modules["_frozen_importlib"].ModuleSpec("_ctypes", None, origin=folder + "/_ctypes" + imp.extension_suffixes()[0])
        raw = imp.create_dynamic(spec)

        class Int(raw._SimpleCData):
            _type_ = "i"

        class Function(raw.CFuncPtr):
            _flags_ = raw.FUNCFLAG_CDECL | raw.FUNCFLAG_USE_ERRNO
            _restype_ = Int

        class Library:
            _handle = raw.dlopen(None, 2)

            def __getattr__(self, name):
                return Function((name, self))

        return raw, Library()

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


# -- the OS layer, for root and for an ordinary user ------------------------------------------------

CONFIGS = {
    "root": {},  # a worker started as root becomes nobody, then takes the ordinary-user path
    "uid12345": {"become_uid": UID},
    "uid12345-no-userns": {"become_uid": UID, "isolate": False},
    "uid12345-namespaces-only": {"become_uid": UID, "landlock": False, "seccomp": False},
}


@dataclass
class Target:
    """What an escaped mechanism would go for, owned by the uid the worker runs as."""

    uid: int
    home: str
    secret: str  # a 0600 file in the user's home
    notes: str  # a file the mechanism tries to delete
    victim: subprocess.Popen  # a process of the same uid with an API key in its environment
    listener: socket.socket
    port: int


@pytest.fixture(scope="module", params=list(CONFIGS), ids=list(CONFIGS))
def os_host(request):
    """A host per configuration, with the policy switchable off."""
    config = CONFIGS[request.param]
    if "become_uid" in config and not is_root:
        pytest.skip("becoming uid 12345 needs a worker started as root")
    with SandboxHost(SandboxLimits(**config), call_timeout_s=2.0, allow_unchecked=True) as sandbox:
        sandbox.ensure_running()
        yield sandbox


@pytest.fixture
def target(os_host, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_KEY)  # the host's own environment holds a key too
    uid = os_host.protections["uid"]
    home = tempfile.mkdtemp(prefix="bilevel-home-")  # under /tmp, so uid 12345 can reach it without a sandbox
    secret, notes = os.path.join(home, "secret.txt"), os.path.join(home, "notes.txt")
    for path, text in ((secret, FAKE_KEY), (notes, "keep me")):
        with open(path, "w") as handle:
            handle.write(text)
    if is_root:
        for path in (home, secret, notes):
            os.chown(path, uid, uid)
    os.chmod(secret, 0o600)
    victim = subprocess.Popen(["sleep", "60"], env={"OPENAI_API_KEY": FAKE_KEY},
                              **({"user": uid, "group": uid} if is_root else {}))
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    listener.settimeout(0.2)
    try:
        yield Target(uid, home, secret, notes, victim, listener, listener.getsockname()[1])
    finally:
        listener.close()
        victim.kill()
        victim.wait()
        shutil.rmtree(home, ignore_errors=True)
    assert_host_carries_on(os_host)


def assert_refused(host: SandboxHost, body: str) -> str:
    """The attack must fail with an OS error; returns the error text (which must not leak the secret)."""
    with pytest.raises(HookFailed, match="PermissionError|FileNotFoundError|OSError|BlockingIOError") as caught:
        attack(host, body)
    assert FAKE_KEY not in str(caught.value)
    return str(caught.value)


def test_the_escape_really_reaches_the_real_import(os_host):
    assert attack(os_host, "return {'posix': self.fresh_posix().getuid() >= 0}") == {"posix": True}


def test_the_worker_runs_unprivileged_with_every_protection(os_host):
    protections = os_host.protections
    assert protections["uid"] != 0 and protections["uid"] in (NOBODY, UID, os.getuid())
    assert protections["capabilities"] and protections["no_new_privs"]
    assert protections["rlimits"]["RLIMIT_NPROC"] == 0 and protections["rlimits"]["RLIMIT_FSIZE"] == 0
    namespaces = protections["user_namespace"]
    assert (os_host.missing_protections() == []) == namespaces
    if not namespaces:  # simulated kernel without user namespaces: the report says exactly that
        assert all("switched off" in item for item in os_host.missing_protections())


def test_a_private_file_in_the_home_cannot_be_read(os_host, target):
    assert_refused(os_host, f"return self.real_import('builtins').open({target.secret!r}).read()")


def test_a_file_outside_the_sandbox_cannot_be_deleted(os_host, target):
    assert_refused(os_host, f"self.fresh_posix().unlink({target.notes!r})")
    assert os.path.exists(target.notes)


def test_a_file_outside_the_sandbox_cannot_be_written(os_host, target):
    written = os.path.join(target.home, "written.txt")
    assert_refused(os_host, f"f = self.real_import('builtins').open({written!r}, 'w')\nf.write('x' * 100)\nf.flush()")
    assert not os.path.exists(written)


def test_no_file_can_be_created_in_tmp(os_host, target):
    created = f"/tmp/bilevel-hostile-{os.getpid()}-{target.port}"
    try:
        assert_refused(os_host, f"p = self.fresh_posix()\np.close(p.open({created!r}, p.O_CREAT | p.O_WRONLY, 0o644))")
        assert not os.path.exists(created)
    finally:
        if os.path.exists(created):
            os.remove(created)


def test_no_environment_of_another_process_can_be_read(os_host, target):
    for pid in (target.victim.pid, os.getpid(), 1):
        assert_refused(os_host, f"return self.real_import('builtins').open('/proc/{pid}/environ', 'rb').read().decode()")
    seen = attack(os_host, "return sorted(k.decode() for k in self.fresh_posix().environ)")
    assert not any("KEY" in name or "SECRET" in name for name in seen)  # type: ignore[union-attr]


def test_no_socket_reaches_a_listener_on_loopback(os_host, target):
    body = f"""
    ctypes, libc = self.libc()
    fd = libc.socket(2, 1, 0)
    address = bytes([2, 0, {target.port >> 8}, {target.port & 255}, 127, 0, 0, 1]) + bytes(8)
    return {{"fd": fd, "connect": libc.connect(fd, address, 16) if fd >= 0 else -1, "errno": ctypes.get_errno()}}
    """
    answer = attack(os_host, body)
    assert answer["connect"] == -1, answer  # type: ignore[index]
    if os_host.protections["seccomp"]:
        assert answer["fd"] == -1, answer  # type: ignore[index]  # no socket at all
    with pytest.raises(socket.timeout):
        target.listener.accept()


def test_no_way_back_to_privileges(os_host):
    """No new user namespace (a chrooted process may not create one, and seccomp denies it), no chroot (no
    capabilities), no setuid(0), no mount: the classic ways out of a chroot for a namespaced root."""
    body = """
    ctypes, libc = self.libc()
    return [libc.unshare(0x10000000), libc.chroot(b"/"), libc.setuid(0), libc.mount(b"none", b"/", b"tmpfs", 0, None)]
    """
    assert attack(os_host, body) == [-1, -1, -1, -1]


def test_no_process_outside_can_be_signalled(os_host, target):
    """Targeted signals to the victim and the host fail; kill(-1, 0) finds nobody to signal."""
    for pid in (target.victim.pid, os.getpid()):
        answer = attack(os_host, f"ctypes, libc = self.libc()\nreturn [libc.kill({pid}, 0), ctypes.get_errno()]")
        assert answer[0] == -1, (pid, answer)  # type: ignore[index]
    answer = attack(os_host, "ctypes, libc = self.libc()\nreturn [libc.kill(-1, 0), ctypes.get_errno()]")
    assert answer[0] == -1, answer  # type: ignore[index]
    assert target.victim.poll() is None


@needs_root
def test_kill_minus_one_kills_neither_a_process_of_the_same_user_nor_other_workers(target, os_host):
    if target.uid != UID:
        pytest.skip("kill(-1, 9) runs for real only as uid 12345, whose processes are all this test's")
    with SandboxHost(SandboxLimits(become_uid=UID)) as other:
        other.ensure_running()
        answer = attack(os_host, "ctypes, libc = self.libc()\nreturn [libc.kill(-1, 9), ctypes.get_errno()]")
        assert answer[0] == -1, answer  # type: ignore[index]
        time.sleep(0.1)  # a signal that got through would have landed by now
        assert target.victim.poll() is None
        other.ping()  # the other runtime's worker still answers
        assert other.generation == 1


def test_no_child_processes(os_host, target):
    marker = f"/tmp/bilevel-hostile-child-{os.getpid()}"
    assert_refused(os_host, f"self.fresh_posix().posix_spawn('/usr/bin/touch', ['touch', {marker!r}], {{}})")
    assert_refused(os_host, "self.fresh_posix().fork()")
    assert not os.path.exists(marker)


def test_our_packages_cannot_be_imported(os_host):
    for package in ("mechanisms", "search", "infra"):
        with pytest.raises(HookFailed, match="ModuleNotFoundError"):
            attack(os_host, f"return str(self.real_import({package!r}))")


def test_the_worker_has_its_own_namespaces_when_isolated(os_host):
    if not os_host.protections["user_namespace"]:
        pytest.skip("isolate=False")
    try:
        for kind in ("net", "pid_for_children", "user", "mnt"):
            assert os.readlink(f"/proc/{os_host.pid}/ns/{kind}") != os.readlink(f"/proc/self/ns/{kind}")
    except PermissionError:  # an ordinary user may not look into a non-dumpable process of another user namespace
        assert not is_root
    # seen from outside (/proc/PID/status is readable by anyone): the serving process is PID 1 of a nested namespace
    serving = psutil.Process(os_host.pid).children()
    with open(f"/proc/{serving[0].pid}/status") as status:
        nspid = next(line.split()[1:] for line in status if line.startswith("NSpid:"))
    assert len(nspid) == 2 and nspid[1] == "1", nspid
    # the serving process is PID 1 of its namespace and sees no /proc at all
    assert attack(os_host, "p = self.fresh_posix()\nreturn [p.getpid(), p.getppid(), p.access('/proc', 0)]") == [1, 0, False]


def test_the_worker_keeps_no_ctypes_and_no_confinement_module(os_host):
    """Issue 23: once confined, ctypes, the OS-layer module and importlib's loaders are gone from sys.modules and
    from every module's globals (the OS layer used ctypes, and numpy imports it)."""
    body = """
    b, sys = self.real_import("builtins"), self.real_import("sys")
    dropped = ("ctypes", "_ctypes", "_bilevel_sandbox_os", "importlib")
    core = [sys.modules["_frozen_importlib"], sys.modules["_frozen_importlib_external"]]  # `import` runs on these
    names = [name for name in sys.modules if name.split(".")[0] in dropped]
    held = [f"{name}.{key}" for name, module in b.list(sys.modules.items()) for key, value in b.list(b.vars(module).items())
            if b.isinstance(value, b.type(sys)) and value.__name__.split(".")[0] in dropped and value not in core]
    return {"modules": b.sorted(names), "globals": b.sorted(held)[:20]}
    """
    os_host.restart("a fresh worker: earlier attacks rebuilt _ctypes in theirs")
    assert attack(os_host, body) == {"modules": [], "globals": []}


PDEATHSIG_CLEARED = """
raw, libc = self.libc()
libc.prctl(1, 0, 0, 0, 0)  # PR_SET_PDEATHSIG 0: the keeper's death no longer takes this process with it
"""


@pytest.mark.parametrize("config", list(CONFIGS), ids=list(CONFIGS))
def test_no_sandbox_process_outlives_its_host_even_after_an_escape(config):
    """Issue 23: an escaped mechanism cleared its parent-death signal and kept running (an endless hook, or an
    atexit handler when the host closes the pipe): it stayed as an orphan with parent PID 1. Checked by PID."""
    if "become_uid" in CONFIGS[config] and not is_root:
        pytest.skip("becoming uid 12345 needs a worker started as root")
    spin = "while True:\n    pass"
    with SandboxHost(SandboxLimits(**CONFIGS[config]), call_timeout_s=1.0, allow_unchecked=True) as sandbox:
        seen = []
        for body in (PDEATHSIG_CLEARED + spin, PDEATHSIG_CLEARED + f"self.real_import('atexit').register(lambda: exec({spin!r}))"):
            sandbox.ensure_running()
            keeper = psutil.Process(sandbox.pid)
            seen += [keeper, *keeper.children(recursive=True)]
            if body.endswith("pass"):
                with pytest.raises(CallTimedOut):  # the host replaces the worker: the first kill path
                    attack(sandbox, body)
            else:
                assert attack(sandbox, body) is None  # closing the host below is the second
        assert_host_carries_on(sandbox)
        seen += psutil.Process(sandbox.pid).children(recursive=True)
    left = [(p.pid, p.ppid(), p.status()) for p in seen if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    for process in seen:  # leave nothing behind even when the assertion fails
        if process.is_running():
            process.kill()
    assert left == []


# -- the runtime layer alone: restricted builtins and module proxies (finding 1, policy skipped) --------

@pytest.fixture(scope="module")
def host():
    with SandboxHost(call_timeout_s=1.0, allow_unchecked=True) as sandbox:
        yield sandbox


RUNTIME_LAYER = {
    # finding 1: functools.update_wrapper(f, json.loads, updated=("__globals__",)) copied json's globals
    "update_wrapper": ("import functools\nreturn {'x': str(functools.update_wrapper)}", "ImportError.*functools"),
    "update_wrapper_via_json": ("import json\nreturn {'x': str(json.codecs)}", "AttributeError.*codecs"),
    # finding 1: typing.get_type_hints evaluated string annotations with the real builtins
    "get_type_hints": ("import typing\nreturn {'x': str(typing.get_type_hints)}", "AttributeError.*get_type_hints"),
    # finding 1: np = numpy; np.save(...) passed the static check
    "numpy_alias_save": ("import numpy\nnp = numpy\nnp.save('/tmp/x.npy', np.zeros(2))", "AttributeError.*save"),
    "numpy_lib": ("import numpy\nreturn str(numpy.lib)", "AttributeError.*lib"),
    "random_os": ("import random\nreturn str(random._os)", "AttributeError.*_os"),
    "module_write": ("import math\nmath.sqrt = len", "AttributeError.*read-only"),
    "open": ("return open('/etc/hostname').read()", "NameError: name 'open' is not defined"),
    "getattr": ("return getattr(self, 'plan')", "NameError: name 'getattr' is not defined"),
    "import_os": ("import os", "ImportError.*'os' is not allowed"),
}


@pytest.mark.parametrize("name", list(RUNTIME_LAYER))
def test_the_runtime_layer_stops_it_without_the_policy(host, name):
    body, expected = RUNTIME_LAYER[name]
    source = "class A:\n    def plan(self, ctx):\n" + textwrap.indent(body, " " * 8) + "\n"
    assert not check_source(source).ok  # the static policy refuses each of these as well
    host.load(name, source, check_policy=False)
    with pytest.raises(HookFailed, match=expected):
        host.call(name, "plan", [{}])


# -- resources, answers and the protocol ----------------------------------------------------------


def test_infinite_loop_times_out_and_the_host_restarts(host):
    source = "class Loop:\n    def plan(self, ctx):\n        while True:\n            pass\n"
    assert check_source(source).ok  # the policy cannot see this one: only the process limits stop it
    host.load("loop", source)
    generation = host.ensure_running()
    with pytest.raises(CallTimedOut, match=r"within 0\.3 s"):  # the call's own deadline, not a longer limit
        host.call("loop", "plan", [{}], timeout_s=0.3)
    assert not host.running  # the looping worker was killed at that deadline, not left to spin
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


@pytest.mark.parametrize("depth", [65, 985, 5000])
def test_deeply_nested_answers_are_refused_without_a_restart(host, depth):
    """Finding 3: a list nested 985 deep was encoded by the worker and crashed the host's decoder."""
    source = (f"class Nest:\n    def plan(self, ctx):\n        value = []\n        for _ in range({depth}):\n"
              "            value = [value]\n        return value\n")
    assert check_source(source).ok
    host.load("nest", source)
    generation = host.ensure_running()
    with pytest.raises(BadAnswer, match="nested deeper than 64 levels|not valid JSON"):
        host.call("nest", "plan", [{}])
    assert host.ensure_running() == generation


def test_an_answer_with_duplicate_keys_is_refused(host):
    host.load("dup", "class Dup:\n    def plan(self, ctx):\n        return {1: 'a', '1': 'b'}\n")
    with pytest.raises(BadAnswer, match="repeats the key '1'"):
        host.call("dup", "plan", [{}])


def test_writing_to_file_descriptor_1_does_not_reach_the_protocol(host):
    assert attack(host, "self.fresh_posix().write(1, b'{\"id\": 0}\\n')\nreturn 'done'") == "done"


FORGE = """
p = self.fresh_posix()
for fd in range(3, 16):
    try:
        p.write(fd, {line!r})
    except Exception:
        pass
return 'done'
"""


@pytest.mark.parametrize(
    "line",
    [
        b"garbage\n",
        # finding 6: a well-formed line with a bad cpu field made the host raise ValueError to the caller
        b'{"id": %d, "ok": true, "value": null, "cpu": "x"}\n',
        b'{"id": %d, "ok": false, "kind": ["hook"], "error": 3, "cpu": 0}\n',
        b'{"id": %d, "ok": "yes", "value": null, "cpu": 0}\n',
        b'{"id": %d, "ok": true, "value": null, "cpu": 0, "extra": 1}\n',
        b'[' * 5000 + b']' * 5000 + b'\n',
    ],
    ids=["garbage", "bad-cpu", "bad-failure", "bad-ok", "extra-field", "deep"],
)
def test_forged_protocol_lines_are_a_crash_and_the_host_restarts(host, line):
    generation = host.ensure_running()
    request_id = host._next_id + 2  # noqa: SLF001 - the id the forged line answers: the load is +1, the call +2
    forged = line % request_id if b"%d" in line else line
    with pytest.raises(WorkerCrashed, match="protocol|nobody asked"):
        attack(host, FORGE.format(line=forged))
    assert host.ensure_running() == generation + 1
    assert_host_carries_on(host)


def test_a_forged_line_for_a_later_request_is_caught_before_that_request(host):
    """Extra lines waiting in the pipe when the next request goes out are a crash, not a stale answer."""
    body = FORGE.format(line=b'{"id": %d, "ok": true, "value": {"guidance": "forged"}, "cpu": 0}\n' % (host._next_id + 3))  # noqa: SLF001
    generation = host.ensure_running()
    with pytest.raises(WorkerCrashed):
        attack(host, body)
        host.call("hostile", "plan", [{}])  # the forged answer would be read here
    assert host.ensure_running() == generation + 1
    assert_host_carries_on(host)


def test_a_forged_answer_to_a_load_is_a_crash(host):
    """The constructor runs during the load: a line it forges is read as the load's answer, and refused."""
    forged = b'{"id": %d, "ok": true, "value": {"name": 1, "hooks": 7}, "cpu": 0}\n' % (host._next_id + 1)  # noqa: SLF001
    source = hostile("return None").replace("class Hostile:\n", "class Hostile:\n    def __init__(self):\n"
                                           + textwrap.indent(FORGE.format(line=forged).replace("return 'done'", ""), " " * 8)
                                           + "\n", 1)
    generation = host.ensure_running()
    with pytest.raises(WorkerCrashed, match="answered a load with something unexpected|protocol"):
        host.load("forger", source, check_policy=False)
    assert host.ensure_running() == generation + 1
    assert_host_carries_on(host)


def test_a_worker_killed_from_outside_is_replaced(host):
    host.load("victim", "class V:\n    def plan(self, ctx):\n        return None\n")
    generation = host.ensure_running()
    os.kill(host.pid, signal.SIGKILL)  # type: ignore[arg-type]
    deadline = time.monotonic() + 30  # under load the kill takes a while to land; no fixed sleep
    while host.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not host.running
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
