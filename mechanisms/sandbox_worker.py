"""Sandbox worker: runs untrusted mechanism classes in a locked-down process, answering JSON lines from the host.

Started by mechanisms/sandbox.py as a standalone file (`python -s -S -P -B sandbox_worker.py POLICY_PATH
SETTINGS_JSON`) with a scrubbed environment and an empty temporary directory as cwd. It imports none of
our packages: the policy module (standard library only) is loaded by its path, before lockdown.

Start-up order matters: everything a mechanism may import is imported first, then the worker locks
itself down (new network namespace, chroot into the empty cwd, resource limits, uid/gid nobody, no new
privileges) and only then reads the first request. Doing this in the worker
rather than in a Popen preexec_fn keeps the host safe to use from threads (preexec_fn may deadlock there).

Protocol, one JSON object per line. The worker speaks on private copies of its stdin/stdout: fd 0 is
/dev/null and fd 1 goes to stderr, so a mechanism that prints cannot corrupt the protocol.
    -> {"id": 1, "op": "load", "key": "k", "source": "...", "check_policy": true}
    <- {"id": 1, "ok": true, "value": {"name": "tabu", "class_name": "Tabu", "hooks": ["plan"]}}
    -> {"id": 2, "op": "call", "key": "k", "hook": "plan", "args": [ctx]}
    <- {"id": 2, "ok": true, "value": ...}   or   {"id": 2, "ok": false, "kind": "hook", "error": "..."}
    -> {"id": 3, "op": "drop", "key": "k"}      -> {"id": 4, "op": "ping"}
"""

from __future__ import annotations

import builtins
import ctypes
import importlib.util
import json
import os
import resource
import signal
import sys
import time
import traceback
import types

HOOKS = ("plan", "propose", "screen", "accept", "observe")
HOOK_ARITY = {"plan": 1, "propose": 1, "screen": 2, "accept": 3, "observe": 2}
NOBODY = 65534
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
PR_SET_NO_NEW_PRIVS = 38
MAX_ERROR_CHARS = 600
MAX_PRINT_BYTES = 64 * 1024

# Submodules a mechanism may reach through its allowlisted imports; every other module-typed
# attribute (random._os, dataclasses.sys, typing.sys, numpy.lib ...) is left out of the proxies.
ALLOWED_SUBMODULES = {"numpy": ("random", "linalg"), "collections": ("abc",)}

SAFE_BUILTIN_NAMES = (
    "abs all any ascii bin bool bytearray bytes callable chr classmethod complex dict divmod enumerate "
    "filter float format frozenset hasattr hash hex id int isinstance issubclass iter len list map max "
    "min next object oct ord pow property range repr reversed round set slice sorted staticmethod str "
    "sum super tuple zip True False None NotImplemented Ellipsis "
    "Exception ArithmeticError AssertionError AttributeError IndexError KeyError LookupError MemoryError "
    "NotImplementedError OverflowError RecursionError RuntimeError StopIteration TypeError ValueError "
    "ZeroDivisionError"
).split()

# os/posix functions that act outside the process; replaced once the worker no longer needs them.
NEUTRALISED_OS_FUNCTIONS = (
    "system popen fork forkpty vfork execv execve execl execle execlp execlpe execvp execvpe spawnl spawnle "
    "spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe posix_spawn posix_spawnp kill killpg open remove unlink "
    "rmdir mkdir makedirs rename replace chmod chown lchown symlink link truncate putenv unsetenv chdir chroot "
    "listdir scandir walk setuid setgid seteuid setegid setreuid setregid setgroups setsid"
).split()
REMOVED_MODULES = ("subprocess", "socket", "_socket", "ctypes", "_ctypes", "importlib.util", "_posixsubprocess", "multiprocessing")


class _Settings:
    def __init__(self, raw: dict) -> None:
        self.memory_mb = int(raw.get("memory_mb", 1024))
        self.cpu_s = int(raw.get("cpu_s", 600))
        self.max_open_files = int(raw.get("max_open_files", 16))
        self.max_response_bytes = int(raw.get("max_response_bytes", 256 * 1024))
        self.allow_unchecked = bool(raw.get("allow_unchecked", False))
        self.drop_privileges = bool(raw.get("drop_privileges", True))
        self.isolate_network = bool(raw.get("isolate_network", True))
        self.chroot = bool(raw.get("chroot", True))
        self.module_paths = [str(p) for p in raw.get("module_paths", [])]
        self.trusted_modules = {str(k): str(v) for k, v in (raw.get("trusted_modules") or {}).items()}


# -- modules and builtins a mechanism sees ---------------------------------------------------------


def _import_allowed_modules(allowed: frozenset, numpy_denied: frozenset) -> dict:
    """Import every allowlisted module now (nothing can be imported after chroot) and wrap each in a proxy."""
    proxies = {}
    for name in sorted(allowed):
        try:
            module = importlib.import_module(name)
            for sub in ALLOWED_SUBMODULES.get(name, ()):
                importlib.import_module(f"{name}.{sub}")
        except ImportError:
            continue  # e.g. numpy missing: importing it then fails with a clear ImportError
        denied = numpy_denied if name == "numpy" else frozenset()
        proxies[name] = _proxy(module, ALLOWED_SUBMODULES.get(name, ()), denied)
    return proxies


def _proxy(module: types.ModuleType, submodules: tuple, denied: frozenset) -> types.ModuleType:
    """A module object holding only the public, non-module attributes of `module` (plus allowed submodules)."""
    proxy = types.ModuleType(module.__name__)
    for attribute, value in vars(module).items():
        if attribute.startswith("_") or attribute in denied or isinstance(value, types.ModuleType):
            continue
        setattr(proxy, attribute, value)
    for sub in submodules:
        setattr(proxy, sub, _proxy(getattr(module, sub), (), denied))
    return proxy


def _restricted_importer(proxies: dict):
    def restricted_import(name, globals=None, locals=None, fromlist=(), level=0):
        if level:
            raise ImportError("relative imports are not allowed in mechanisms")
        parts = name.split(".")
        if parts[0] not in proxies:
            raise ImportError(f"import of {name!r} is not allowed; allowed modules: {', '.join(sorted(proxies))}")
        module = proxies[parts[0]]
        for part in parts[1:]:
            module = vars(module).get(part)
            if not isinstance(module, types.ModuleType):
                raise ImportError(f"import of {name!r} is not allowed")
        return module if fromlist else proxies[parts[0]]

    return restricted_import


def _bounded_print(stream):
    budget = {"left": MAX_PRINT_BYTES}

    def print_to_stderr(*values, sep=" ", end="\n", **_ignored):
        # Output goes to stderr (the host keeps a tail for diagnostics), never to the protocol.
        if budget["left"] <= 0:
            return
        text = (sep if isinstance(sep, str) else " ").join(str(v) for v in values) + (end if isinstance(end, str) else "\n")
        text = text[: budget["left"]]
        budget["left"] -= len(text)
        stream.write(text)
        stream.flush()

    return print_to_stderr


def _safe_builtins(proxies: dict) -> dict:
    safe = {name: getattr(builtins, name) for name in SAFE_BUILTIN_NAMES}
    safe["__build_class__"] = builtins.__build_class__  # the `class` statement needs it
    safe["__import__"] = _restricted_importer(proxies)
    safe["print"] = _bounded_print(sys.stderr)
    return safe


# -- lockdown -----------------------------------------------------------------------------------


def _isolate_stdio() -> tuple[int, int]:
    """Move the protocol to private fds; fd 0 becomes /dev/null and fd 1 is joined to stderr."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return protocol_in, protocol_out


def _lock_down(settings: _Settings) -> dict:
    """Apply every process-level protection the platform allows; report which ones hold."""
    held: dict = {"uid": os.getuid()}
    is_root = os.geteuid() == 0
    libc = ctypes.CDLL(None, use_errno=True)
    unshare = getattr(libc, "unshare", None)  # Linux only
    prctl = getattr(libc, "prctl", None)
    held["network_isolated"] = False
    if settings.isolate_network and unshare is not None:
        # root may unshare the network alone; others need a user namespace, where the kernel allows it
        flags = CLONE_NEWNET if is_root else CLONE_NEWUSER | CLONE_NEWNET
        held["network_isolated"] = unshare(flags) == 0
        if not held["network_isolated"]:
            held["network_error"] = os.strerror(ctypes.get_errno())
        # in a new user namespace without a uid map we show up as uid 65534, but nothing was dropped
        held["user_namespace"] = held["network_isolated"] and not is_root
    held["chroot"] = False
    if settings.chroot and is_root:
        try:
            os.chroot(".")
            os.chdir("/")
            held["chroot"] = True
        except OSError as error:  # e.g. a container without CAP_SYS_CHROOT: carry on, reported
            held["chroot_error"] = str(error)
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past RLIMIT_FSIZE fails with EFBIG instead of killing us
    held["rlimits"] = _set_rlimits(settings)
    if settings.drop_privileges and is_root:
        try:
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
        except OSError as error:
            held["drop_privileges_error"] = str(error)
    held["uid"] = os.getuid()
    held["no_new_privs"] = prctl is not None and prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
    # No PR_SET_PDEATHSIG: it fires when the *thread* that started us exits, and the host may run in
    # short-lived task threads. An idle worker exits on EOF when the host dies; a busy one meets RLIMIT_CPU.
    return held


def _set_rlimits(settings: _Settings) -> dict:
    wanted = {
        "RLIMIT_AS": settings.memory_mb * 1024 * 1024,
        "RLIMIT_CPU": settings.cpu_s,
        "RLIMIT_NOFILE": settings.max_open_files,
        "RLIMIT_FSIZE": 0,
        "RLIMIT_CORE": 0,
        "RLIMIT_NPROC": 0,  # no child processes (counts per uid: effective once we are nobody, never for root)
    }
    applied = {}
    for name, soft in wanted.items():
        # CPU: SIGXCPU at the soft limit, SIGKILL a little later.
        hard = soft + 5 if name == "RLIMIT_CPU" else soft
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
            applied[name] = soft
        except (ValueError, OSError) as error:
            applied[name] = f"not applied: {error}"
    return applied


def _neutralise_process_access() -> None:
    """Remove what a mechanism could use to act outside the process, should it ever reach `os` itself."""

    def unavailable(*_args, **_kwargs):
        raise PermissionError("not available in the mechanism sandbox")

    os.environ.clear()  # the host passes a scrubbed environment already; this empties even that
    posix = sys.modules.get("posix")
    for module in (os, posix):
        for name in NEUTRALISED_OS_FUNCTIONS:
            if module is not None and hasattr(module, name):
                setattr(module, name, unavailable)
    for name in REMOVED_MODULES:
        sys.modules.pop(name, None)


# -- requests -------------------------------------------------------------------------------------


class _Mechanisms:
    """The loaded mechanism instances of this worker, by key."""

    def __init__(self, policy, proxies: dict, settings: _Settings) -> None:
        self.policy = policy
        self.proxies = proxies
        self.settings = settings
        self.instances: dict = {}
        self.sources: dict = {}
        self.modules: dict = {}
        self.loads = 0

    def load(self, key: str, source: str, check_policy: bool) -> dict:
        if not isinstance(key, str) or not isinstance(source, str):
            raise _Refused("request", "load needs a string key and source")
        class_name = None
        if check_policy or not self.settings.allow_unchecked:
            report = self.policy.check_source(source)
            if not report.ok:
                raise _Refused("policy", "the mechanism breaks the sandbox policy:\n" + report.summary())
            class_name = report.class_name
        self.loads += 1
        filename = f"<mechanism {self.loads}>"
        # A real (registered) module, because dataclasses looks the class's module up in sys.modules.
        module = types.ModuleType(f"mechanism_{self.loads}")
        module.__builtins__ = _safe_builtins(self.proxies)
        sys.modules[module.__name__] = module
        namespace = module.__dict__
        lines = source.splitlines()
        try:
            exec(compile(source, filename, "exec"), namespace)  # noqa: S102 - the sandbox exists to run this
            cls = namespace.get(class_name) if class_name else _first_class(namespace)
            if not isinstance(cls, type):
                raise _Refused("load", "no class found in the mechanism source")
            instance = cls()
            # attribute reads may run mechanism code too (properties), so they stay inside the guard
            hooks = [hook for hook in HOOKS if callable(getattr(instance, hook, None))]
            name = getattr(instance, "name", None)
        except _Refused:
            sys.modules.pop(module.__name__, None)
            raise
        except BaseException as error:  # noqa: BLE001 - untrusted code may raise anything, SystemExit included
            sys.modules.pop(module.__name__, None)
            raise _Refused("load", "loading the class failed: " + _describe(error, filename, lines)) from None
        self.drop(key)
        self.instances[key] = instance
        self.sources[key] = (filename, lines)
        self.modules[key] = module.__name__
        return {
            "name": name[:64] if isinstance(name, str) else cls.__name__[:64],
            "class_name": cls.__name__[:64],
            "hooks": hooks,
        }

    def call(self, key: str, hook: str, args: list):
        instance = self.instances.get(key)
        if instance is None:
            raise _Refused("missing", f"no mechanism loaded under key {key!r}")
        if hook not in HOOKS or not isinstance(args, list) or len(args) != HOOK_ARITY[hook]:
            raise _Refused("request", f"bad call of hook {hook!r} with {len(args) if isinstance(args, list) else '?'} arguments")
        filename, lines = self.sources[key]
        try:
            method = getattr(instance, hook, None)  # may run mechanism code (a property)
            if not callable(method):
                raise _Refused("request", f"the mechanism does not define {hook}")
            return method(*args)
        except _Refused:
            raise
        except BaseException as error:  # noqa: BLE001 - untrusted code may raise anything
            raise _Refused("hook", f"{hook} raised " + _describe(error, filename, lines)) from None

    def drop(self, key: str) -> None:
        self.instances.pop(key, None)
        self.sources.pop(key, None)
        sys.modules.pop(self.modules.pop(key, ""), None)


class _Refused(Exception):
    """A request that failed in an expected way; `kind` tells the host which layer refused it."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def _first_class(namespace: dict):
    name = namespace.get("__name__")
    for value in namespace.values():
        if isinstance(value, type) and getattr(value, "__module__", None) == name:
            return value
    return None


def _safe_text(value) -> str:
    try:
        text = str(value)
    except BaseException:  # noqa: BLE001 - a hostile __str__ must not take the worker down
        text = "<unprintable>"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def _describe(error: BaseException, filename: str, lines: list) -> str:
    """`Type: message (line N, in method: code)`: what an LLM needs to repair the mechanism."""
    text = f"{type(error).__name__}: {_safe_text(error)}"
    frames = [f for f in traceback.StackSummary.extract(traceback.walk_tb(error.__traceback__), lookup_lines=False) if f.filename == filename]
    if frames and frames[-1].lineno:
        frame = frames[-1]
        code = lines[frame.lineno - 1].strip()[:160] if 0 < frame.lineno <= len(lines) else ""
        text += f" (line {frame.lineno}, in {frame.name}: {code})"
    return text


def _json_default(value):
    # Mechanisms often compute with numpy; its scalars and small arrays are answered as plain JSON.
    numpy = sys.modules.get("numpy")
    if numpy is not None and isinstance(value, numpy.generic):
        return value.item()
    if numpy is not None and isinstance(value, numpy.ndarray):
        return value.tolist()
    raise TypeError(f"a {type(value).__name__} is not JSON (return dicts, lists, strings, numbers, booleans or None)")


def _encode(message: dict, limit: int) -> bytes:
    try:
        text = json.dumps(message, allow_nan=False, default=_json_default, separators=(",", ":"))
    except Exception as error:  # noqa: BLE001 - encoding may run mechanism code (dict subclasses); any failure is a bad answer
        text = json.dumps({"id": message.get("id"), "ok": False, "kind": "answer", "error": f"the answer is not valid JSON: {_safe_text(error)}"})
    if len(text) > limit:
        text = json.dumps({"id": message.get("id"), "ok": False, "kind": "answer", "error": f"the answer is {len(text)} bytes; the limit is {limit}"})
    return text.encode("ascii") + b"\n"


def _handle(request: dict, mechanisms: _Mechanisms) -> dict:
    op = request.get("op")
    if op == "call":
        return {"ok": True, "value": mechanisms.call(request.get("key"), request.get("hook"), request.get("args"))}
    if op == "load":
        return {"ok": True, "value": mechanisms.load(request.get("key"), request.get("source"), bool(request.get("check_policy", True)))}
    if op == "drop":
        mechanisms.drop(request.get("key"))
        return {"ok": True, "value": None}
    if op == "ping":
        return {"ok": True, "value": "pong"}
    raise _Refused("request", f"unknown op {op!r}")


def serve(protocol_in: int, protocol_out: int, mechanisms: _Mechanisms, hello: dict) -> None:
    reader = os.fdopen(protocol_in, "rb")
    write = os.write  # kept before os is neutralised

    def send(message: dict) -> None:
        data = _encode(message, mechanisms.settings.max_response_bytes)
        view = memoryview(data)
        while view:
            view = view[write(protocol_out, view) :]

    send({"id": 0, "ok": True, "value": hello})
    while True:
        line = reader.readline()
        if not line:
            return  # the host closed the pipe: shut down
        try:
            request = json.loads(line)
            request_id = request.get("id")
        except (ValueError, AttributeError):
            send({"id": None, "ok": False, "kind": "request", "error": "the request is not a JSON object"})
            continue
        try:
            response = _handle(request, mechanisms)
        except _Refused as refused:
            response = {"ok": False, "kind": refused.kind, "error": str(refused)}
        except MemoryError:
            response = {"ok": False, "kind": "hook", "error": "MemoryError: the mechanism ran out of memory"}
        except Exception as error:  # noqa: BLE001 - a bad request must not end the worker
            response = {"ok": False, "kind": "request", "error": f"the worker could not serve the request: {_safe_text(error)}"}
        response["id"] = request_id
        response["cpu"] = round(time.process_time(), 3)  # lets the host restart us before RLIMIT_CPU does
        send(response)


def _load_trusted_modules(paths: dict) -> dict:
    """Our own pure helper modules (mechanisms/helpers.py), loaded by path; mechanisms see only their __all__."""
    proxies = {}
    for name, path in paths.items():
        spec = importlib.util.spec_from_file_location(f"_bilevel_trusted_{name}", path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        proxy = types.ModuleType(name)
        for attribute in getattr(module, "__all__", ()):
            setattr(proxy, attribute, getattr(module, attribute))
        proxies[name] = proxy
    return proxies


def _load_policy(path: str):
    spec = importlib.util.spec_from_file_location("_bilevel_mechanism_policy", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load the policy module from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while building the policy's classes
    spec.loader.exec_module(module)
    return module


def main(argv: list) -> None:
    if len(argv) != 3:
        raise SystemExit("usage: sandbox_worker.py POLICY_PATH SETTINGS_JSON")
    settings = _Settings(json.loads(argv[2]))
    sys.path.extend(settings.module_paths)  # started without site-packages: only numpy's directory is added
    policy = _load_policy(argv[1])
    proxies = _import_allowed_modules(policy.ALLOWED_IMPORTS, policy.FORBIDDEN_NUMPY_ATTRIBUTES)
    proxies.update(_load_trusted_modules(settings.trusted_modules))
    import random

    random.seed(0)  # the shared global RNG starts the same in every worker, so replays repeat
    if "numpy" in proxies:
        proxies["numpy"].random.seed(0)
    protocol_in, protocol_out = _isolate_stdio()
    protections = _lock_down(settings)
    _neutralise_process_access()
    mechanisms = _Mechanisms(policy, proxies, settings)
    serve(protocol_in, protocol_out, mechanisms, {"pid": os.getpid(), "protections": protections})


if __name__ == "__main__":
    main(sys.argv)
