"""Host side of the mechanism sandbox: one locked-down worker process, JSON lines on pipes, timeouts and restarts.

The worker (mechanisms/sandbox_worker.py) runs untrusted mechanism classes. This side starts it with
a scrubbed environment in an empty temporary directory, bounds every request in time and every
answer in size, and replaces the worker when it hangs, dies or misbehaves. A restart loses every
loaded mechanism: `generation` counts worker starts, so a caller (the runtime) knows when to reload
and replay. Errors are SandboxError subclasses whose message is fit to show to a user or an LLM.

Defence in depth (tests/unit/test_sandbox_hostile.py attacks each layer on its own):
  static policy (mechanisms/policy.py)   one class, import allowlist, no dunders/reflection/I/O
  restricted builtins and module proxies no open/exec/getattr..., no private or module attributes
  process (Linux, as root)               uid nobody, chroot into an empty dir, own network namespace,
                                         RLIMIT_AS/CPU/NOFILE/FSIZE=0/CORE=0/NPROC=0, no new privileges,
                                         scrubbed environment, no site-packages
  host                                   wall-clock timeout per request, bounded answers, restart
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

logger = logging.getLogger(__name__)

WORKER_PATH = Path(__file__).with_name("sandbox_worker.py")
POLICY_PATH = Path(__file__).with_name("policy.py")
# Trusted modules a mechanism may import inside the sandbox, loaded by the worker from these files.
TRUSTED_MODULES = {"helpers": Path(__file__).with_name("helpers.py")}
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
    drop_privileges: bool = True  # to uid/gid nobody when started as root
    isolate_network: bool = True  # a new, empty network namespace where the kernel allows it
    chroot: bool = True  # into the empty working directory, when started as root


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


class _Worker:
    """One worker process: its pipes, its temporary directory and a bounded tail of its stderr."""

    def __init__(self, limits: SandboxLimits, python: str, allow_unchecked: bool) -> None:
        self.directory = tempfile.mkdtemp(prefix="bilevel-sandbox-")
        settings = {key: value for key, value in asdict(limits).items() if not key.endswith("timeout_s")}
        settings["allow_unchecked"] = allow_unchecked
        settings["module_paths"] = _third_party_paths()
        settings["trusted_modules"] = {name: str(path) for name, path in TRUSTED_MODULES.items()}
        env = {key: os.environ[key] for key in WORKER_ENV_KEEP if key in os.environ}
        env.update(WORKER_ENV_FIXED)
        # -S: no site-packages (so none of our packages, nor .pth hooks); the directories of allowlisted
        # third-party modules are passed explicitly. Not -I: it would ignore PYTHONHASHSEED.
        command = [python, "-s", "-S", "-P", "-B", str(WORKER_PATH), str(POLICY_PATH), json.dumps(settings)]
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
        self.finalizer = weakref.finalize(self, _terminate, self.process, self.directory, self.drain)

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


def _log_protections(protections: dict[str, Any]) -> None:
    """Say once which process-level protections hold on this platform, and warn about the missing ones."""
    logger.info("mechanism sandbox protections: %s", protections)
    missing = []
    if not protections.get("network_isolated"):
        missing.append(f"network access ({protections.get('network_error', 'no network namespace')})")
    if protections.get("uid") == 0:
        missing.append("running as root (could not drop to nobody)")
    if missing:
        logger.warning("the mechanism sandbox is weaker here: %s; the static policy still applies", "; ".join(missing))


def _wait_for(fd: int, event: int, deadline: float) -> bool:
    """Wait until `fd` is ready for `event` (or closed) before `deadline`. poll, not select: fds may exceed 1024."""
    poller = select.poll()
    poller.register(fd, event)
    remaining = deadline - time.monotonic()
    return remaining > 0 and bool(poller.poll(remaining * 1000))


def _terminate(process: subprocess.Popen, directory: str, drain: threading.Thread) -> None:
    """Kill the worker's process group, reap it, let the stderr drain see EOF, close the pipes, remove the directory."""
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
    """One sandbox worker for one inner loop: load mechanism sources, call their hooks, drop them.

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
    ) -> None:
        """`allow_unchecked` lets `load(..., check_policy=False)` skip the policy: for hostile tests only."""
        self.limits = limits or SandboxLimits()
        self.call_timeout_s = call_timeout_s
        self.python = python or sys.executable
        self.allow_unchecked = allow_unchecked
        self._worker: _Worker | None = None
        self._lock = threading.RLock()
        self._next_id = 0
        self._generation = 0
        self._protections: dict[str, Any] = {}
        self._closed = False

    # -- public ------------------------------------------------------------------------------

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
        if not isinstance(value, dict):
            raise WorkerCrashed("the sandbox worker answered a load with something unexpected")
        return LoadedMechanism(
            key=key,
            name=str(value.get("name", "")),
            class_name=str(value.get("class_name", "")),
            hooks=tuple(h for h in value.get("hooks", ()) if isinstance(h, str)),
        )

    def call(self, key: str, hook: str, args: list[Any], *, timeout_s: float | None = None) -> Any:
        """Call `hook(*args)` of the mechanism loaded under `key`; returns its JSON answer."""
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
        worker = _Worker(self.limits, self.python, self.allow_unchecked)
        deadline = time.monotonic() + self.limits.start_timeout_s
        try:
            hello = json.loads(worker.receive(deadline, self.limits.max_response_bytes))
        except (_Deadline, _Gone, _Oversized, ValueError) as error:
            worker.stop()
            raise SandboxUnavailable(
                f"the sandbox worker did not start ({type(error).__name__.strip('_')}, {worker.exit_description()}): {worker.tail(800)}"
            ) from None
        self._worker = worker
        self._generation += 1
        self._protections = dict(hello.get("value", {}).get("protections", {}))
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
                worker.send(data, deadline)
                line = worker.receive(deadline, self.limits.max_response_bytes + 1024)
            except _Deadline:
                self._replace_worker(f"{what} ran past {timeout_s:g} s")
                raise CallTimedOut(f"{what} did not answer within {timeout_s:g} s (endless loop or too slow); the sandbox was restarted") from None
            except _Gone:
                tail = worker.tail(600)
                description = self._wait_exit(worker)
                self._replace_worker(f"worker died during {what}")
                raise WorkerCrashed(f"the sandbox worker died during {what} ({description}); last output: {tail[-400:] or 'none'}") from None
            except _Oversized:
                self._replace_worker(f"oversized answer to {what}")
                raise BadAnswer(f"the answer to {what} exceeded {self.limits.max_response_bytes} bytes; the sandbox was restarted") from None
            response = self._parse_response(line, payload["id"], what)
            if float(response.get("cpu") or 0.0) > CPU_RESTART_FRACTION * self.limits.cpu_s:
                self._replace_worker("its CPU-time budget is nearly used")
            if response.get("ok"):
                return response.get("value")
            error_class = _ERRORS_BY_KIND.get(str(response.get("kind")), SandboxError)
            raise error_class(str(response.get("error", "unknown error"))[:2000])

    def _parse_response(self, line: bytes, request_id: int, what: str) -> dict[str, Any]:
        try:
            response = json.loads(line)
        except ValueError:
            response = None
        if not isinstance(response, dict) or response.get("id") != request_id:
            self._replace_worker(f"protocol error on {what}")
            raise WorkerCrashed(f"the sandbox worker broke the protocol during {what}; it was restarted")
        return response

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
