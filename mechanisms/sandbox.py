"""Host side of the mechanism sandbox: one locked-down worker process, JSON lines on pipes, timeouts and restarts.

The worker (mechanisms/sandbox_worker.py) runs untrusted mechanism classes. This side starts it with
a scrubbed environment in an empty temporary directory, bounds every request in time and every
answer in size, and replaces the worker when it hangs, dies or misbehaves. A restart loses every
loaded mechanism: `generation` counts worker starts, so a caller (the runtime) knows when to reload
and replay. Errors are SandboxError subclasses whose message is fit to show to a user or an LLM.

Defence in depth (tests/unit/test_sandbox_hostile.py attacks each layer on its own):
  static policy (mechanisms/policy.py)   one class, per-module name allowlists, no dunders/reflection/I/O,
                                         modules used only as `module.NAME`, no format fields reaching attributes
  restricted builtins and module proxies exactly the policy's allowlists, read-only
  OS (mechanisms/sandbox_os.py)          the same for root and ordinary users: unprivileged uid; user, mount,
                                         PID, network, IPC, UTS namespaces; chroot into an empty read-only
                                         dir; PID 1 of its own PID namespace; no capabilities; rlimits
                                         AS/CPU/NOFILE/FSIZE=0/CORE=0/NPROC=0; no_new_privs; Landlock (no
                                         files, no TCP, no signals out) and seccomp where offered;
                                         scrubbed environment, no site-packages
  host                                   wall-clock timeout per request, answers bounded in size and depth
                                         (search/safe_json), strict protocol, restart
Where the OS layer is incomplete (no user namespaces), `missing_protections` says what is missing and
the runtime activates no generated mechanism unless allowed explicitly (BILEVEL_SANDBOX_ALLOW_WEAK=1).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

from mechanisms.policy import HOOK_ARITY, build_allowlist, trusted_module_paths
from search.safe_json import loads_bounded

logger = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).with_name("sandbox_worker.py")
POLICY_PATH = Path(__file__).with_name("policy.py")
CONFINEMENT_PATH = Path(__file__).with_name("sandbox_os.py")
SAFE_JSON_PATH = Path(__file__).resolve().parents[1] / "search" / "safe_json.py"
ALLOW_WEAK_SETTING = "BILEVEL_SANDBOX_ALLOW_WEAK=1"
# What must hold for the sandbox to count as complete (Landlock and seccomp come on top where offered).
REQUIRED_PROTECTIONS = {
    "user_namespace": "user namespace",
    "mount_namespace": "mount namespace",
    "pid_namespace": "PID namespace",
    "network_namespace": "network namespace",
    "ipc_namespace": "IPC namespace",
    "uts_namespace": "UTS namespace",
    "chroot": "chroot into an empty directory",
    "capabilities": "no capabilities",
    "no_new_privs": "no_new_privs",
}
OPTIONAL_PROTECTIONS = {"landlock": "Landlock", "seccomp": "seccomp"}
RLIMITS = ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NOFILE", "RLIMIT_FSIZE", "RLIMIT_CORE", "RLIMIT_NPROC")
RESPONSE_KEYS = frozenset({"id", "ok", "value", "kind", "error", "cpu"})
STDERR_TAIL_BYTES = 16 * 1024
READ_CHUNK = 64 * 1024
CPU_RESTART_FRACTION = 0.8
# The worker gets these variables and nothing else: no credentials can reach it.
WORKER_ENV_KEEP = ("PATH", "LANG", "LC_ALL", "TZ")
WORKER_ENV_FIXED = {
    "PYTHONHASHSEED": "0",  # string hashing (set order) is the same in every worker, so replays repeat
    "PYTHONDONTWRITEBYTECODE": "1",
    "OPENBLAS_NUM_THREADS": "1",
    "OMP_NUM_THREADS": "1",
    "MKL_NUM_THREADS": "1",
    "OMP_WAIT_POLICY": "PASSIVE",
}


@dataclass(frozen=True)
class SandboxLimits:
    """Limits of the worker process and of each request."""

    memory_mb: int = 1024  # RLIMIT_AS; the worker needs ~100 MB of address space with numpy loaded
    cpu_s: int = 600  # RLIMIT_CPU over the worker's life; the host restarts it at 80% first
    max_open_files: int = 16
    max_response_bytes: int = 256 * 1024
    start_timeout_s: float = 20.0
    load_timeout_s: float = 5.0
    max_response_depth: int = 64  # nesting of arrays/objects in one answer (the host decodes without recursion risk)
    isolate: bool = True  # namespaces + chroot + PID 1; False simulates a kernel without user namespaces
    landlock: bool = True  # where the kernel offers it
    seccomp: bool = True  # where libseccomp is installed
    become_uid: int | None = None  # test knob, honoured only when started as root: this uid instead of nobody
    become_gid: int | None = None


class SandboxError(RuntimeError):
    """A request to the sandbox failed; `kind` says which layer stopped it."""

    kind = "sandbox"


class PolicyRejected(SandboxError):
    """The source breaks the static policy (checked again inside the worker)."""

    kind = "policy"


class LoadFailed(SandboxError):
    """The source passed the policy but executing it or instantiating its class failed."""

    kind = "load"


class HookFailed(SandboxError):
    """The hook raised; the worker is fine."""

    kind = "hook"


class BadAnswer(SandboxError):
    """The hook answered something that is not JSON, or too large."""

    kind = "answer"


class CallTimedOut(SandboxError):
    """The request ran past its deadline; the worker was killed and replaced."""

    kind = "timeout"


class WorkerCrashed(SandboxError):
    """The worker died during the request (or broke the protocol); it was replaced."""

    kind = "crash"


class MechanismMissing(SandboxError):
    """No mechanism is loaded under that key in the current worker (e.g. after a restart)."""

    kind = "missing"


class SandboxUnavailable(SandboxError):
    """The worker could not be started at all."""

    kind = "start"


_ERRORS_BY_KIND: dict[str, type[SandboxError]] = {
    "policy": PolicyRejected,
    "load": LoadFailed,
    "hook": HookFailed,
    "answer": BadAnswer,
    "missing": MechanismMissing,
    "request": SandboxError,
}


@dataclass(frozen=True)
class LoadedMechanism:
    """What the worker found in a loaded source."""

    key: str
    name: str
    class_name: str
    hooks: tuple[str, ...]


class _Deadline(Exception):
    pass


class _Gone(Exception):
    pass


class _Oversized(Exception):
    pass


class _Forged(Exception):
    pass


def _protocol_problem(response: Any, request_id: int) -> str | None:
    """Why `response` is not a well-formed answer to request `request_id`, or None."""
    if not isinstance(response, dict):
        return "not a JSON object"
    if response.get("id") != request_id or isinstance(response.get("id"), bool):
        return f"answer to request {response.get('id')!r}, expected {request_id}"
    if set(response) - RESPONSE_KEYS:
        return "unknown fields " + ", ".join(sorted(str(k) for k in set(response) - RESPONSE_KEYS)[:5])
    cpu = response.get("cpu")
    if isinstance(cpu, bool) or not isinstance(cpu, (int, float)) or not 0 <= cpu < 1e9:
        return "no valid cpu field"
    if not isinstance(response.get("ok"), bool):
        return "no valid ok field"
    if not response["ok"] and not (isinstance(response.get("kind"), str) and isinstance(response.get("error"), str)):
        return "a failure without kind and error"
    return None


class _Worker:
    """One worker process: its pipes, its temporary directory and a bounded tail of its stderr."""

    def __init__(self, limits: SandboxLimits, python: str, allow_unchecked: bool, trusted_modules: dict[str, str]) -> None:
        self.directory = tempfile.mkdtemp(prefix="bilevel-sandbox-")
        # Empty and read-only for everyone: the worker chroots into it, as whatever uid it runs as.
        os.chmod(self.directory, 0o555)
        settings: dict[str, Any] = {key: value for key, value in asdict(limits).items() if not key.endswith("timeout_s")}
        settings.update(
            allow_unchecked=allow_unchecked,
            module_paths=_third_party_paths(),
            policy_path=str(POLICY_PATH),
            confinement_path=str(CONFINEMENT_PATH),
            safe_json_path=str(SAFE_JSON_PATH),
            trusted_modules=dict(trusted_modules),
        )
        env = {key: os.environ[key] for key in WORKER_ENV_KEEP if key in os.environ}
        env.update(WORKER_ENV_FIXED)
        # -S: no site-packages (so none of our packages, nor .pth hooks); the directories of allowlisted
        # third-party modules are passed explicitly. Not -I: it would ignore PYTHONHASHSEED.
        command = [python, "-s", "-S", "-P", "-B", str(WORKER_PATH), json.dumps(settings)]
        try:
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                cwd=self.directory,
                env=env,
                close_fds=True,
                start_new_session=True,  # its own process group, killed as a whole
            )
        except OSError as error:
            shutil.rmtree(self.directory, ignore_errors=True)
            raise SandboxUnavailable(f"cannot start the sandbox worker with {python}: {error}") from error
        assert self.process.stdin and self.process.stdout and self.process.stderr
        self.stdin_fd = self.process.stdin.fileno()
        self.stdout_fd = self.process.stdout.fileno()
        os.set_blocking(self.stdin_fd, False)
        self.pending = bytearray()
        self.stderr = _StderrTail()
        # The drain thread must not reference this object, so that dropping it runs the finalizer.
        self.drain = threading.Thread(
            target=self.stderr.drain, args=(self.process.stderr.fileno(),), name=f"sandbox-stderr-{self.process.pid}", daemon=True
        )
        self.drain.start()
        # The serving process of a PID namespace is the keeper's child, in its own session (so not in the
        # group killed below) and killed with the keeper only while its parent-death signal stays set.
        # It is killed by PID on close, so nothing outlives the worker even after an escape (issue 23).
        self.descendants: list[psutil.Process] = []
        self.finalizer = weakref.finalize(self, _terminate, self.process, self.directory, self.drain, self.descendants)

    def note_descendants(self) -> None:
        """Remember the worker's processes (the serving PID-namespace init), to kill them by PID on stop."""
        try:
            self.descendants.extend(psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass  # it died already: the next request finds out and says why
        except psutil.Error as error:
            logger.warning("cannot list the processes of sandbox worker %s: %s", self.process.pid, error)

    def tail(self, chars: int = 1500) -> str:
        return self.stderr.last(chars)

    def send(self, data: bytes, deadline: float) -> None:
        view = memoryview(data)
        while view:
            if not _wait_for(self.stdin_fd, select.POLLOUT, deadline):
                raise _Deadline
            try:
                view = view[os.write(self.stdin_fd, view) :]
            except BlockingIOError:
                continue
            except (BrokenPipeError, OSError) as error:
                raise _Gone from error

    def has_unread_output(self) -> bool:
        """Whether the worker wrote protocol bytes nobody asked for (an honest worker never does)."""
        if self.pending:
            return True
        poller = select.poll()
        poller.register(self.stdout_fd, select.POLLIN)
        return any(event & select.POLLIN for _fd, event in poller.poll(0))

    def receive(self, deadline: float, limit: int) -> bytes:
        while b"\n" not in self.pending:
            if not _wait_for(self.stdout_fd, select.POLLIN, deadline):
                raise _Deadline
            chunk = os.read(self.stdout_fd, READ_CHUNK)
            if not chunk:
                raise _Gone
            self.pending += chunk
            if len(self.pending) > limit:
                raise _Oversized
        line, _, rest = bytes(self.pending).partition(b"\n")
        self.pending = bytearray(rest)
        return line

    def alive(self) -> bool:
        return self.process.poll() is None

    def exit_description(self) -> str:
        code = self.process.poll()
        if code is None:
            return "still running"
        if code < 0:
            try:
                return f"killed by {signal.Signals(-code).name}"
            except ValueError:
                return f"killed by signal {-code}"
        return f"exit status {code}"

    def stop(self) -> None:
        self.finalizer()


class _StderrTail:
    """The last bytes a worker wrote to stderr. Always drained, so a mechanism that prints a lot cannot
    block the worker on a full pipe."""

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.lock = threading.Lock()

    def drain(self, fd: int) -> None:
        while True:
            try:
                chunk = os.read(fd, READ_CHUNK)
            except OSError:
                return
            if not chunk:
                return
            with self.lock:
                self.buffer += chunk
                del self.buffer[:-STDERR_TAIL_BYTES]

    def last(self, chars: int) -> str:
        with self.lock:
            return bytes(self.buffer[-chars:]).decode("utf-8", "replace")


def _third_party_paths() -> list[str]:
    """Directories holding the allowlisted third-party modules (numpy), found without importing them."""
    spec = importlib.util.find_spec("numpy")
    if spec is None or not spec.submodule_search_locations:
        return []
    return [str(Path(next(iter(spec.submodule_search_locations))).parent)]


def missing_protections(protections: dict[str, Any]) -> list[str]:
    """What the worker's OS layer lacks, each with the reason it gave; empty when the sandbox is complete."""
    errors = protections.get("errors") if isinstance(protections.get("errors"), dict) else {}
    by_reason: dict[str, list[str]] = {}  # the namespaces usually fail together, for one reason
    for key, label in REQUIRED_PROTECTIONS.items():
        if protections.get(key) is not True:
            reason = errors.get(key) or (errors.get("namespaces") if key.endswith("namespace") or key == "chroot" else None)
            by_reason.setdefault(str(reason or ""), []).append(label)
    missing = [", ".join(labels) + (f" ({reason})" if reason else "") for reason, labels in by_reason.items()]
    rlimits = protections.get("rlimits") if isinstance(protections.get("rlimits"), dict) else {}
    for name in RLIMITS:
        if name not in rlimits:
            missing.append(f"{name} ({errors.get(name, 'not applied')})")
    if protections.get("uid") == 0:
        missing.append(f"an unprivileged uid ({errors.get('uid', 'still root')})")
    return missing


def describe_protections(protections: dict[str, Any]) -> str:
    """One line: each protection on or off (for logs and `bilevel doctor`)."""
    parts = []
    for key, label in {**REQUIRED_PROTECTIONS, **OPTIONAL_PROTECTIONS}.items():
        held = protections.get(key) is True
        parts.append(f"{label} {'on' if held else 'off'}" + (f" (ABI {protections.get('landlock_abi')})" if held and key == "landlock" else ""))
    rlimits = protections.get("rlimits") if isinstance(protections.get("rlimits"), dict) else {}
    parts.append("rlimits " + ("on" if all(name in rlimits for name in RLIMITS) else "partly off"))
    parts.append(f"uid {protections.get('uid')}")
    return ", ".join(parts)


def _log_protections(protections: dict[str, Any]) -> None:
    """Say once which process-level protections hold on this platform, and warn about the missing ones."""
    logger.info("mechanism sandbox protections: %s", describe_protections(protections))
    missing = missing_protections(protections)
    if missing:
        logger.warning("the mechanism sandbox is incomplete here, missing: %s. Generated mechanisms are not activated "
                       "unless %s is set", "; ".join(missing), ALLOW_WEAK_SETTING)
    errors = protections.get("errors") if isinstance(protections.get("errors"), dict) else {}
    for key, label in OPTIONAL_PROTECTIONS.items():
        if protections.get(key) is not True:
            logger.info("mechanism sandbox: %s is off (%s)", label, errors.get(key, "unknown reason"))


def _wait_for(fd: int, event: int, deadline: float) -> bool:
    """Wait until `fd` is ready for `event` (or closed) before `deadline`. poll, not select: fds may exceed 1024."""
    poller = select.poll()
    poller.register(fd, event)
    remaining = deadline - time.monotonic()
    return remaining > 0 and bool(poller.poll(remaining * 1000))


def _terminate(process: subprocess.Popen, directory: str, drain: threading.Thread, descendants: list[psutil.Process]) -> None:
    """Kill the worker's processes by PID and its process group, reap it, let the stderr drain see EOF, close the
    pipes, remove the directory."""
    if process.poll() is None:
        try:  # and whatever it started since (only possible where the OS layer is incomplete)
            descendants = [*descendants, *psutil.Process(process.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            pass  # the keeper died between the two calls: its recorded children are killed below
    for child in descendants:
        try:
            child.kill()  # psutil refuses if the PID was reused; killing a PID namespace's init empties it
        except psutil.NoSuchProcess:
            pass  # gone already
        except psutil.AccessDenied as error:
            logger.error("cannot kill sandbox process %s: %s", child.pid, error)
    if descendants:
        try:
            process.wait(timeout=1.0)  # the keeper reaps its child and exits on its own
        except subprocess.TimeoutExpired:
            pass
    if process.poll() is None:
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            process.kill()
    try:
        process.wait(timeout=5.0)
    except subprocess.TimeoutExpired:
        logger.error("sandbox worker %s did not die after SIGKILL", process.pid)
    # The worker was the only writer of its stderr, so the drain thread now reads EOF; joining it
    # before closing the pipe keeps it from ever reading a closed (and possibly reused) descriptor.
    if drain is not threading.current_thread():
        drain.join(timeout=2.0)
    for stream in (process.stdin, process.stdout, process.stderr):
        if stream is not None:
            try:
                stream.close()
            except OSError as error:
                logger.debug("closing a sandbox pipe: %s", error)
    shutil.rmtree(directory, ignore_errors=True)


class SandboxHost:
    """One sandbox worker: load mechanism sources, call their hooks, drop them. The runtime gives each mechanism
    a host of its own (`sibling`); several keys in one host share one interpreter and can reach each other's state.

    Thread-safe (one request at a time). The worker starts on first use and again after a timeout,
    a crash or a protocol error; `generation` counts those starts.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        *,
        call_timeout_s: float = 2.0,
        python: str | None = None,
        allow_unchecked: bool = False,
        trusted_modules: dict[str, str] | None = None,
    ) -> None:
        """`allow_unchecked` lets `load(..., check_policy=False)` skip the policy: for hostile tests only.
        `trusted_modules` (import name -> file) default to the ones next to mechanisms/policy.py (helpers.py)."""
        self.limits = limits or SandboxLimits()
        self.call_timeout_s = call_timeout_s
        self.python = python or sys.executable
        self.allow_unchecked = allow_unchecked
        self.trusted_modules = {k: str(v) for k, v in (trusted_module_paths() if trusted_modules is None else trusted_modules).items()}
        self.allowlist = build_allowlist(self.trusted_modules)  # what the policy allows here (host and worker alike)
        self._worker: _Worker | None = None
        self._lock = threading.RLock()
        self._next_id = 0
        self._generation = 0
        self._protections: dict[str, Any] = {}
        self._closed = False

    # -- public ------------------------------------------------------------------------------

    def sibling(self) -> SandboxHost:
        """A new host with this one's settings and a worker of its own (started on first use). The runtime gives
        each mechanism its own: mechanisms in one process could patch the classes and module state they share."""
        return SandboxHost(self.limits, call_timeout_s=self.call_timeout_s, python=self.python,
                           allow_unchecked=self.allow_unchecked, trusted_modules=self.trusted_modules)

    @property
    def generation(self) -> int:
        """Worker starts so far; when it changes, every loaded mechanism is gone."""
        return self._generation

    def ensure_running(self) -> int:
        """Start the worker if it is not running; returns the generation that will serve the next request."""
        with self._lock:
            self._ensure_started()
            return self._generation

    @property
    def protections(self) -> dict[str, Any]:
        """What the current worker reported about its lockdown (uid, network, chroot, rlimits)."""
        with self._lock:
            self._ensure_started()
            return dict(self._protections)

    def missing_protections(self) -> list[str]:
        """What the current worker's OS layer lacks (empty when complete); starts the worker if needed."""
        return missing_protections(self.protections)

    @property
    def running(self) -> bool:
        """Whether a worker is up now (False after a restart-worthy failure, until the next request)."""
        worker = self._worker
        return worker is not None and worker.alive()

    @property
    def pid(self) -> int | None:
        return self._worker.process.pid if self._worker else None

    def load(self, key: str, source: str, *, timeout_s: float | None = None, check_policy: bool = True) -> LoadedMechanism:
        """Execute `source` in the worker and instantiate its class under `key` (replacing what was there)."""
        value = self._request(
            {"op": "load", "key": key, "source": source, "check_policy": check_policy},
            timeout_s or self.limits.load_timeout_s,
        )
        hooks = value.get("hooks") if isinstance(value, dict) else None
        if (not isinstance(hooks, list) or not all(h in HOOK_ARITY for h in hooks)
                or not isinstance(value.get("name"), str) or not isinstance(value.get("class_name"), str)):
            with self._lock:
                self._replace_worker("malformed answer to load")
            raise WorkerCrashed("the sandbox worker answered a load with something unexpected; it was restarted")
        return LoadedMechanism(key=key, name=value["name"][:64], class_name=value["class_name"][:64], hooks=tuple(hooks))

    def call(self, key: str, hook: str, args: list[Any], *, timeout_s: float | None = None) -> Any:
        """Call `hook(*args)` of the mechanism loaded under `key`; returns its JSON answer."""
        if hook not in HOOK_ARITY:
            raise SandboxError(f"unknown hook {hook!r}; the hooks are {', '.join(HOOK_ARITY)}")
        return self._request({"op": "call", "key": key, "hook": hook, "args": args}, timeout_s or self.call_timeout_s)

    def drop(self, key: str) -> None:
        with self._lock:
            if self._worker is not None and self._worker.alive():
                self._request({"op": "drop", "key": key}, self.limits.load_timeout_s)

    def ping(self) -> None:
        self._request({"op": "ping"}, self.limits.load_timeout_s)

    def restart(self, reason: str) -> None:
        """Replace the worker (every loaded mechanism is lost)."""
        with self._lock:
            logger.warning("restarting the mechanism sandbox: %s", reason)
            self._stop_worker()
            self._ensure_started()

    def stderr_tail(self, chars: int = 1500) -> str:
        """The last output the worker wrote to stderr (prints of mechanisms end up there too)."""
        worker = self._worker
        return worker.tail(chars) if worker else ""

    def close(self) -> None:
        with self._lock:
            self._closed = True
            self._stop_worker()

    def __enter__(self) -> SandboxHost:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _ensure_started(self) -> _Worker:
        if self._closed:
            raise SandboxUnavailable("the sandbox was closed")
        if self._worker is not None and self._worker.alive():
            return self._worker
        if self._worker is not None:
            logger.warning("the mechanism sandbox worker died while idle (%s); starting a new one", self._worker.exit_description())
            self._stop_worker()
        worker = _Worker(self.limits, self.python, self.allow_unchecked, self.trusted_modules)
        deadline = time.monotonic() + self.limits.start_timeout_s
        try:
            hello = loads_bounded(worker.receive(deadline, self.limits.max_response_bytes),
                                  self.limits.max_response_bytes, self.limits.max_response_depth)
            protections = hello["value"]["protections"]
            if not isinstance(protections, dict):
                raise TypeError("protections")
        except (_Deadline, _Gone, _Oversized, ValueError, KeyError, TypeError, OSError) as error:
            worker.stop()
            raise SandboxUnavailable(
                f"the sandbox worker did not start ({type(error).__name__.strip('_')}, {worker.exit_description()}): {worker.tail(800)}"
            ) from None
        worker.note_descendants()
        self._worker = worker
        self._generation += 1
        self._protections = dict(protections)
        if self._generation == 1:
            _log_protections(self._protections)
        return worker

    def _stop_worker(self) -> None:
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _request(self, payload: dict[str, Any], timeout_s: float) -> Any:
        with self._lock:
            worker = self._ensure_started()
            self._next_id += 1
            payload["id"] = self._next_id
            # allow_nan: a measured NaN is our data, not the mechanism's; the worker's answers are strict.
            data = json.dumps(payload, separators=(",", ":")).encode("utf-8") + b"\n"
            deadline = time.monotonic() + timeout_s
            what = f"{payload.get('op')} {payload.get('hook', '')}".strip()
            try:
                if worker.has_unread_output():
                    raise _Forged
                worker.send(data, deadline)
                line = worker.receive(deadline, self.limits.max_response_bytes + 1024)
            except _Forged:
                self._replace_worker(f"output outside a request before {what}")
                raise WorkerCrashed(f"the sandbox worker wrote protocol output nobody asked for (before {what}); it was restarted") from None
            except _Deadline:
                self._replace_worker(f"{what} ran past {timeout_s:g} s")
                raise CallTimedOut(f"{what} did not answer within {timeout_s:g} s (endless loop or too slow); the sandbox was restarted") from None
            except (_Gone, OSError):
                tail = worker.tail(600)
                description = self._wait_exit(worker)
                self._replace_worker(f"worker died during {what}")
                raise WorkerCrashed(f"the sandbox worker died during {what} ({description}); last output: {tail[-400:] or 'none'}") from None
            except _Oversized:
                self._replace_worker(f"oversized answer to {what}")
                raise BadAnswer(f"the answer to {what} exceeded {self.limits.max_response_bytes} bytes; the sandbox was restarted") from None
            response = self._parse_response(worker, line, payload["id"], what)
            if response["cpu"] > CPU_RESTART_FRACTION * self.limits.cpu_s:
                self._replace_worker("its CPU-time budget is nearly used")
            if response["ok"]:
                return response.get("value")
            error_class = _ERRORS_BY_KIND.get(response["kind"], SandboxError)
            raise error_class(response["error"][:2000])

    def _parse_response(self, worker: _Worker, line: bytes, request_id: int, what: str) -> dict[str, Any]:
        """The response, checked strictly: a line an honest worker would never send is a crash (the worker,
        or a mechanism that escaped into it, is replaced)."""
        problem = None
        try:
            response = loads_bounded(line, self.limits.max_response_bytes + 1024, self.limits.max_response_depth)
        except ValueError as error:
            response, problem = None, str(error)
        if problem is None:
            problem = _protocol_problem(response, request_id)
        if problem is None and worker.pending:
            problem = "more than one line for one request"
        if problem is not None:
            self._replace_worker(f"protocol error on {what}: {problem}")
            raise WorkerCrashed(f"the sandbox worker broke the protocol during {what} ({problem[:200]}); it was restarted")
        return response  # type: ignore[return-value]

    def _wait_exit(self, worker: _Worker) -> str:
        try:
            worker.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "closed its pipe"
        return worker.exit_description()

    def _replace_worker(self, reason: str) -> None:
        """Kill the current worker now; the next request starts a fresh one (a new generation)."""
        logger.warning("mechanism sandbox worker replaced: %s", reason)
        self._stop_worker()


def sandbox_protections(limits: SandboxLimits | None = None) -> dict[str, Any]:
    """Start a worker, and report which protections hold here and what is missing (for `bilevel doctor`).
    Raises SandboxUnavailable if no worker can start."""
    with SandboxHost(limits) as host:
        protections = host.protections
    return {"protections": protections, "missing": missing_protections(protections),
            "summary": describe_protections(protections)}
