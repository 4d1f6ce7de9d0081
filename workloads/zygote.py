"""The warm parent of training runs: imports the heavy modules once, then forks one fresh child per run.

Run as a script by workloads/warm_pool.py (`python zygote.py FD [--preload a,b] [--prime FILE]`), spoken to over
the Unix SEQPACKET socket FD: JSON requests, with the run's output descriptor attached. Standard library only,
until the preloads. Each child starts its own session (so the parent can kill its whole group), gets exactly the
run's environment, working directory, stdin from /dev/null and stdout/stderr on the given descriptor, and runs the
script as `python script.py` would. The zygote reaps the children and reports their exit codes; when the socket
closes (its owner exited) it kills every child group and exits.
"""

from __future__ import annotations

import atexit
import builtins
import importlib.machinery
import importlib.util
import json
import os
import select
import signal
import socket
import sys
import threading
import time
import traceback
import types
from typing import Any

MAX_MESSAGE = 1 << 20
PRIME_MODULE = "_bilevel_zygote_prime"


def send(sock: socket.socket, message: dict[str, Any]) -> None:
    sock.send(json.dumps(message).encode())


def thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:  # not Linux: only Python's own threads are visible
        return threading.active_count()


def preload(modules: list[str], prime: str | None) -> None:
    """Import `modules`, and execute `prime` (a file) as a throw-away module for its imports, then forget it."""
    for name in modules:
        importlib.import_module(name)
    if prime:
        spec = importlib.util.spec_from_file_location(PRIME_MODULE, prime)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[PRIME_MODULE] = module
        try:
            spec.loader.exec_module(module)
        finally:
            sys.modules.pop(PRIME_MODULE, None)
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        raise RuntimeError("the preloads initialised CUDA, which a forked child cannot use")


def initial_environment() -> dict[str, str] | None:
    """The environment this process was started with, before the interpreter (locale coercion) or an import
    changed os.environ; None where /proc does not show it."""
    try:
        with open("/proc/self/environ", "rb") as file:
            raw = file.read()
    except OSError:
        return None
    pairs = (item.split(b"=", 1) for item in raw.split(b"\0") if b"=" in item)
    return {os.fsdecode(key): os.fsdecode(value) for key, value in pairs}


def _exit_code(error: SystemExit) -> int:
    """What the interpreter does with `sys.exit(value)`: None is 0, an int is itself, anything else is printed, 1."""
    code = error.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    _flush(sys.stdout)
    print(code, file=sys.stderr)
    return 1


def _flush(stream: Any) -> None:
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _print_exception(error: BaseException, script: str) -> None:
    """The traceback `python script.py` would print: from the script's first frame (not this module's)."""
    _flush(sys.stdout)  # as the interpreter does: what the script printed comes before its traceback
    tb = error.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != script:
        tb = tb.tb_next
    traceback.print_exception(type(error), error, tb or error.__traceback__)


def run_as_main(script: str) -> None:
    """Execute `script` as the __main__ module, as `python script.py` does (its tracebacks start in the script)."""
    main = types.ModuleType("__main__")
    main.__file__ = script
    main.__loader__ = importlib.machinery.SourceFileLoader("__main__", script)
    main.__builtins__ = builtins
    sys.modules["__main__"] = main
    with open(script, "rb") as file:
        code = compile(file.read(), script, "exec", dont_inherit=True)
    exec(code, main.__dict__)


def run_child(request: dict[str, Any], out_fd: int, sock: socket.socket, closing: list[int],
              added: dict[str, str]) -> None:
    """In the forked child: become the run's process (session, descriptors, environment), run the script, exit."""
    code = 1
    try:
        signal.set_wakeup_fd(-1)
        for sig in (signal.SIGCHLD, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sock.close()
        for fd in closing:
            os.close(fd)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.dup2(out_fd, 1)
        os.dup2(out_fd, 2)
        os.close(out_fd)
        cwd, argv0 = request["cwd"], request["script"]
        os.chdir(cwd)
        script = os.path.abspath(argv0)  # __file__ and tracebacks name it absolutely, as the interpreter does
        os.environ.clear()
        os.environ.update(request["env"])
        os.environ.update(added)  # what a fresh interpreter and the preloads would have set on top
        sys.argv = [argv0, *request.get("args", [])]
        sys.path.insert(0, os.path.dirname(script))  # as `python script.py` sets it
        try:
            run_as_main(script)
            code = 0
        except SystemExit as error:
            code = _exit_code(error)
        except BaseException as error:  # what the interpreter prints for an uncaught exception, then exit 1
            _print_exception(error, script)
            code = 1
        try:
            threading._shutdown()  # type: ignore[attr-defined]  # join non-daemon threads, as at interpreter exit
            atexit._run_exitfuncs()
        except BaseException:  # noqa: BLE001 - exit handlers must not turn a finished run into a hang
            traceback.print_exc()
        _flush(sys.stdout)
        _flush(sys.stderr)
    finally:
        os._exit(code)


class Zygote:
    """The fork loop: one request in, one child out; exit codes reported as children end."""

    def __init__(self, sock: socket.socket, added: dict[str, str]) -> None:
        self.sock = sock
        self.added = added
        self.children: dict[int, str] = {}
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)  # the wake-up byte is what matters
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # the owner decides when we stop (socket closed)

    def serve(self) -> None:
        try:
            while True:
                readable, _, _ = select.select([self.sock.fileno(), self.wake_r], [], [])
                if self.wake_r in readable:
                    os.read(self.wake_r, 4096)
                self.reap()
                if self.sock.fileno() in readable and not self.handle():
                    return
        finally:
            self.kill_all()

    def handle(self) -> bool:
        """Serve one request; False when the owner has gone (socket closed) or asked us to exit."""
        try:
            data, fds, _, _ = socket.recv_fds(self.sock, MAX_MESSAGE, 4)
        except OSError:
            return False
        if not data:
            return False
        request = json.loads(data)
        if request.get("op") == "exit":
            return False
        if request.get("op") != "run" or len(fds) != 1:
            for fd in fds:
                os.close(fd)
            send(self.sock, {"failed": request.get("id"), "error": "a run request needs one output descriptor"})
            return True
        self.fork(request, fds[0])
        return True

    def fork(self, request: dict[str, Any], out_fd: int) -> None:
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            pid = os.fork()
        except OSError as error:
            for fd in (out_fd, ready_r, ready_w):
                os.close(fd)
            send(self.sock, {"failed": request["id"], "error": f"fork failed: {error}"})
            return
        if pid == 0:
            os.setsid()  # its own session and group: the owner kills the whole group on timeout
            os.write(ready_w, b"1")
            run_child(request, out_fd, self.sock, [ready_r, ready_w, self.wake_r, self.wake_w], self.added)
        os.close(out_fd)
        os.close(ready_w)
        os.read(ready_r, 1)  # the group exists before the owner learns the pid (empty if the child died first)
        os.close(ready_r)
        self.children[pid] = request["id"]
        send(self.sock, {"started": request["id"], "pid": pid})

    def reap(self) -> None:
        while self.children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self.children.pop(pid, None)
            try:
                send(self.sock, {"exited": pid, "code": os.waitstatus_to_exitcode(status)})
            except OSError:  # the owner has gone: serve() ends at its next read
                pass

    def kill_all(self) -> None:
        for pid in list(self.children):
            try:
                os.killpg(pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                pass
        for pid in list(self.children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass


def main(argv: list[str]) -> None:
    fd = int(argv[0])
    modules: list[str] = []
    prime: str | None = None
    rest = argv[1:]
    while rest:
        flag, value, rest = rest[0], rest[1], rest[2:]
        if flag == "--preload":
            modules = [name for name in value.split(",") if name]
        elif flag == "--prime":
            prime = value
        else:
            raise SystemExit(f"unknown option {flag}")
    initial = initial_environment()
    sock = socket.socket(fileno=fd)
    started = time.perf_counter()
    try:
        preload(modules, prime)
    except BaseException as error:  # noqa: BLE001 - reported to the owner, which falls back to cold runs
        send(sock, {"ready": False, "error": f"{type(error).__name__}: {error}"[:2000]})
        raise SystemExit(1) from None
    if sys.path and sys.path[0] == os.path.dirname(os.path.abspath(__file__)):
        del sys.path[0]  # not this file's folder: a child puts its script's folder first
    added = {} if initial is None else {k: v for k, v in os.environ.items() if initial.get(k) != v}
    send(sock, {"ready": True, "pid": os.getpid(), "threads": thread_count(), "modules": modules, "added": added,
                "seconds": round(time.perf_counter() - started, 3)})
    Zygote(sock, added).serve()


if __name__ == "__main__":
    main(sys.argv[1:])
