"""Warm training workers: per process, long-lived zygotes (workloads/zygote.py) with the heavy imports done, each
forking a fresh child per run. Started lazily, one per (interpreter, preloads, static environment), so a thread
runner shares one and every Dask or Ray worker process owns its own. A zygote that cannot start is reported once
and the caller runs cold."""

from __future__ import annotations

import atexit
import json
import os
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ZYGOTE_PATH = Path(__file__).resolve().parent / "zygote.py"
START_TIMEOUT_S = 300.0  # importing torch on a loaded 2-core machine can take tens of seconds
REPLY_TIMEOUT_S = 60.0  # from a request to the forked child's pid
MAX_MESSAGE = 1 << 20
MAX_ZYGOTES = 2  # per process: a changed static environment starts another; the oldest is closed


class WarmStartError(RuntimeError):
    """A zygote could not be started or could not fork a run (the caller runs the script cold)."""


@dataclass(frozen=True)
class WarmSpec:
    """What a zygote preloads: module names, and a file whose imports are run (then the module is forgotten)."""

    modules: tuple[str, ...] = ()
    prime: Path | None = None


class WarmChild:
    """A run forked by a zygote, with the part of Popen's interface the supervisor uses: pid, wait, poll."""

    def __init__(self, zygote: Zygote, pid: int) -> None:
        self.zygote = zygote
        self.pid = pid
        self.returncode: int | None = None
        self._done = threading.Event()

    def _exited(self, code: int) -> None:
        self.returncode = code
        self._done.set()

    def poll(self) -> int | None:
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._done.wait(timeout):
            raise subprocess.TimeoutExpired(str(self.pid), timeout or 0.0)
        assert self.returncode is not None
        return self.returncode


class Zygote:
    """One warm parent process and the thread that reads its messages."""

    def __init__(self, python: str, env: Mapping[str, str], spec: WarmSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()
        self._replies: dict[str, dict[str, Any]] = {}
        self._reply_ready = threading.Condition(self._lock)
        self._children: dict[int, WarmChild] = {}
        self._early_exits: dict[int, int] = {}
        self._next_id = 0
        self.alive = True
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        argv = [python, str(ZYGOTE_PATH), str(theirs.fileno())]
        if spec.modules:
            argv += ["--preload", ",".join(spec.modules)]
        if spec.prime is not None:
            argv += ["--prime", str(spec.prime)]
        self._stderr = tempfile.TemporaryFile()
        started = time.perf_counter()
        try:
            self.process = subprocess.Popen(argv, env=dict(env), pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=self._stderr, start_new_session=True,
                                            cwd=tempfile.gettempdir())
        except OSError as error:
            ours.close()
            self._stderr.close()
            raise WarmStartError(f"the warm worker could not be started: {error}") from None
        finally:
            theirs.close()
        self.sock = ours
        try:
            self.sock.settimeout(START_TIMEOUT_S)
            data = self.sock.recv(MAX_MESSAGE)
        except OSError as error:
            self.close()
            raise WarmStartError(f"the warm worker did not start in {START_TIMEOUT_S:g} s: {error}") from None
        ready: dict[str, Any] = json.loads(data) if data else {"ready": False, "error": self._stderr_text()}
        if not ready.get("ready"):
            self.close()
            raise WarmStartError(f"the warm worker failed to start: {ready.get('error') or 'no message'}")
        if int(ready.get("threads", 1)) > 1:
            self.close()  # forking a multi-threaded parent can deadlock the child: run cold instead
            raise WarmStartError(f"the warm worker has {ready['threads']} threads after its imports; set "
                                 "OMP_NUM_THREADS=1 for warm runs")
        self.start_seconds = time.perf_counter() - started
        self.sock.settimeout(None)
        self._reader = threading.Thread(target=self._read, name="bilevel-zygote-reader", daemon=True)
        self._reader.start()

    def _stderr_text(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read()[-2000:].decode("utf-8", errors="replace").strip()

    def _read(self) -> None:
        while True:
            try:
                data = self.sock.recv(MAX_MESSAGE)
            except OSError:
                data = b""
            if not data:
                break
            message = json.loads(data)
            with self._lock:
                if "exited" in message:
                    child = self._children.pop(message["exited"], None)
                    if child is None:
                        self._early_exits[message["exited"]] = message["code"]
                    else:
                        child._exited(message["code"])
                else:
                    self._replies[str(message.get("started", message.get("failed")))] = message
                    self._reply_ready.notify_all()
        with self._lock:
            self.alive = False
            orphans = list(self._children.values())
            self._children.clear()
            self._reply_ready.notify_all()
        for child in orphans:  # the zygote died: its children are killed (as it would have) and count as killed
            try:
                os.killpg(child.pid, 9)
            except (ProcessLookupError, PermissionError):
                pass
            child._exited(-9)

    def spawn(self, script: Path, args: Sequence[str], *, cwd: Path, env: Mapping[str, str], out_fd: int) -> WarmChild:
        """Fork a child that runs `script` with exactly `env` in `cwd`, output to `out_fd`; WarmStartError if not."""
        with self._lock:
            if not self.alive:
                raise WarmStartError("the warm worker has exited")
            self._next_id += 1
            request_id = str(self._next_id)
        request = {"op": "run", "id": request_id, "script": str(script), "args": list(args), "cwd": str(cwd),
                   "env": dict(env)}
        try:
            socket.send_fds(self.sock, [json.dumps(request).encode()], [out_fd])
        except OSError as error:
            raise WarmStartError(f"the warm worker did not take the run: {error}") from None
        deadline = time.monotonic() + REPLY_TIMEOUT_S
        with self._lock:
            while request_id not in self._replies:
                remaining = deadline - time.monotonic()
                if not self.alive or remaining <= 0:
                    raise WarmStartError("the warm worker did not fork the run")
                self._reply_ready.wait(remaining)
            reply = self._replies.pop(request_id)
            if "pid" not in reply:
                raise WarmStartError(f"the warm worker could not fork the run: {reply.get('error')}")
            child = WarmChild(self, reply["pid"])
            if child.pid in self._early_exits:
                child._exited(self._early_exits.pop(child.pid))
            else:
                self._children[child.pid] = child
        return child

    def close(self) -> None:
        """Stop the zygote (it kills its children first) and wait for it."""
        self.alive = False
        try:
            # shutdown, not only close: it wakes our reader thread and shows the zygote the end of the socket
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.close()


_pool_lock = threading.Lock()
_zygotes: dict[tuple[Any, ...], Zygote] = {}
_failed: dict[tuple[Any, ...], str] = {}


def _key(python: str, env: Mapping[str, str], spec: WarmSpec) -> tuple[Any, ...]:
    return (python, spec, tuple(sorted(env.items())))


def zygote_for(python: str, env: Mapping[str, str], spec: WarmSpec) -> Zygote:
    """This process's zygote for (python, env, spec), started on first use; WarmStartError when it cannot start
    (remembered: the same zygote is not retried in this process, so a broken setup costs one attempt)."""
    key = _key(python, env, spec)
    with _pool_lock:
        zygote = _zygotes.get(key)
        if zygote is not None and zygote.alive:
            return zygote
        if key in _failed:
            raise WarmStartError(_failed[key])
        if zygote is not None:
            _zygotes.pop(key).close()  # it died: start a new one
        try:
            zygote = Zygote(python, env, spec)
        except WarmStartError as error:
            _failed[key] = str(error)
            raise
        while len(_zygotes) >= MAX_ZYGOTES:
            _zygotes.pop(next(iter(_zygotes))).close()
        _zygotes[key] = zygote
        return zygote


def close_all() -> None:
    """Stop every zygote of this process (also at exit)."""
    with _pool_lock:
        zygotes = list(_zygotes.values())
        _zygotes.clear()
        _failed.clear()
    for zygote in zygotes:
        zygote.close()


atexit.register(close_all)
