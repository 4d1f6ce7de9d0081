"""Sandbox worker: runs untrusted mechanism classes in a confined process, answering JSON lines from the host.

Started by mechanisms/sandbox.py as a standalone file (`python -s -S -P -B sandbox_worker.py SETTINGS_JSON`)
with a scrubbed environment and an empty read-only temporary directory as cwd. It imports none of our
packages: the policy, the OS confinement, the bounded JSON decoder and the trusted modules (helpers.py)
are loaded by their paths, before lockdown.

Start-up order matters: everything a mechanism may use is imported first, then the worker confines
itself (mechanisms/sandbox_os.py: unprivileged uid, namespaces, chroot, PID 1 of its own PID namespace,
no capabilities, rlimits, no_new_privs, Landlock, seccomp) and only then reads the first request.
Doing this in the worker rather than in a Popen preexec_fn keeps the host safe to use from threads.

The runtime layer mirrors the static policy: the builtins are exactly policy.SAFE_BUILTINS, and each
allowlisted module is a read-only proxy holding exactly the names the policy allows for it.

Protocol, one JSON object per line. The worker speaks on private copies of its stdin/stdout: fd 0 is
/dev/null and fd 1 goes to stderr, so a mechanism that prints cannot corrupt the protocol.
    -> {"id": 1, "op": "load", "key": "k", "source": "...", "check_policy": true}
    <- {"id": 1, "ok": true, "value": {"name": "tabu", "class_name": "Tabu", "hooks": ["plan"]}}
    -> {"id": 2, "op": "call", "key": "k", "hook": "plan", "args": [ctx]}
    <- {"id": 2, "ok": true, "value": ...}   or   {"id": 2, "ok": false, "kind": "hook", "error": "..."}
    -> {"id": 3, "op": "drop", "key": "k"}      -> {"id": 4, "op": "ping"}
Every answer is checked with the host's own bounded decoder before it is sent (depth, NaN, duplicate
keys), so the host never has to refuse an honest worker's line.
"""

from __future__ import annotations

import builtins
import gc
import importlib
import importlib.util
import json
import os
import sys
import time
import traceback
import types

MAX_ERROR_CHARS = 600
MAX_PRINT_BYTES = 64 * 1024

# os/posix functions that act outside the process; replaced once the worker no longer needs them.
NEUTRALISED_OS_FUNCTIONS = (
    "system popen fork forkpty vfork execv execve execl execle execlp execlpe execvp execvpe spawnl spawnle "
    "spawnlp spawnlpe spawnv spawnve spawnvp spawnvpe posix_spawn posix_spawnp kill killpg open remove unlink "
    "rmdir mkdir makedirs rename replace chmod chown lchown symlink link truncate putenv unsetenv chdir chroot "
    "listdir scandir walk setuid setgid seteuid setegid setreuid setregid setgroups setsid"
).split()
REMOVED_MODULES = ("subprocess", "socket", "_socket", "ctypes", "_ctypes", "importlib.util", "_posixsubprocess", "multiprocessing")
# What the worker needs only to confine itself or to load files before that, never afterwards (issue 23):
# these modules and their submodules leave sys.modules and every module's globals. Not the import system
# itself (_frozen_importlib, which importlib._bootstrap names too): without it nothing could be imported.
CONFINEMENT_MODULES = ("ctypes", "_ctypes", "_bilevel_sandbox_os", "importlib")
# Of those, the ones whose own namespaces are emptied too: their classes and functions stay alive (ctypes
# caches them in _ctypes), and must no longer reach CDLL, dlopen or the OS layer's helpers.
EMPTIED_MODULES = ("ctypes", "_bilevel_sandbox_os")


class _Settings:
    def __init__(self, raw: dict) -> None:
        self.raw = raw
        self.max_response_bytes = int(raw.get("max_response_bytes", 256 * 1024))
        self.max_response_depth = int(raw.get("max_response_depth", 64))
        self.allow_unchecked = bool(raw.get("allow_unchecked", False))
        self.module_paths = [str(p) for p in raw.get("module_paths", [])]
        self.policy_path = str(raw["policy_path"])
        self.confinement_path = str(raw["confinement_path"])
        self.safe_json_path = str(raw["safe_json_path"])
        self.trusted_modules = {str(k): str(v) for k, v in dict(raw.get("trusted_modules", {})).items()}


# -- modules and builtins a mechanism sees ---------------------------------------------------------


class _ReadOnlyModule(types.ModuleType):
    """A module proxy that mechanisms cannot write to (they share it with the other mechanisms here)."""

    def __setattr__(self, name: str, value) -> None:
        raise AttributeError(f"module {self.__name__} is read-only in mechanisms")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"module {self.__name__} is read-only in mechanisms")


def _build_proxies(allowlist: dict, trusted: dict) -> dict:
    """Import every allowlisted module now (nothing can be imported after chroot) and wrap each in a proxy
    that holds exactly its allowlisted names."""
    proxies = {}
    for name in sorted(n for n in allowlist if "." not in n):
        try:
            module = trusted[name] if name in trusted else importlib.import_module(name)
        except ImportError:
            continue  # e.g. numpy missing: importing it then fails with a clear ImportError
        proxies[name] = _proxy(name, module, allowlist)
    return proxies


def _proxy(dotted: str, module: types.ModuleType, allowlist: dict) -> types.ModuleType:
    proxy = _ReadOnlyModule(dotted)
    for attribute in sorted(allowlist[dotted]):
        submodule = f"{dotted}.{attribute}"
        if submodule in allowlist:
            value = _proxy(submodule, importlib.import_module(submodule), allowlist)
        else:
            value = getattr(module, attribute, None)
            if value is None or isinstance(value, types.ModuleType):
                continue  # not in this version of the library (or a module): using it is an AttributeError
        types.ModuleType.__setattr__(proxy, attribute, value)
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


def _safe_builtins(names: frozenset, proxies: dict) -> dict:
    safe = {name: getattr(builtins, name) for name in names if name != "print"}
    safe["__build_class__"] = builtins.__build_class__  # the `class` statement needs it
    safe["__import__"] = _restricted_importer(proxies)
    safe["print"] = _bounded_print(sys.stderr)
    return safe


def _isolate_stdio() -> tuple[int, int]:
    """Move the protocol to private fds; fd 0 becomes /dev/null and fd 1 is joined to stderr."""
    protocol_in, protocol_out = os.dup(0), os.dup(1)
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)
    return protocol_in, protocol_out


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


def _drop_confinement_modules() -> None:
    """Forget ctypes, the OS-layer module and importlib's file loaders once confined, so code that gets past
    the runtime layer finds none of them in sys.modules or in a module's globals (numpy holds ctypes too).
    CPython cannot unload an extension: the `_ctypes` library stays mapped, and the import machinery can
    rebuild that module from its cache without a file. What stops raw system calls then is the OS layer."""
    dropped = {name: module for name, module in sys.modules.items() if name.split(".")[0] in CONFINEMENT_MODULES}
    kept = {id(module) for name, module in sys.modules.items() if name not in dropped}
    for name in dropped:
        del sys.modules[name]
    gone = {id(module) for module in dropped.values()} - kept
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None)
        if isinstance(namespace, dict):
            for key, value in list(namespace.items()):
                if id(value) in gone:
                    namespace[key] = None  # numpy reads `ctypes is None` as "no ctypes here"
    for name, module in dropped.items():
        if name.split(".")[0] in EMPTIED_MODULES and id(module) not in kept:
            vars(module).clear()
    gc.collect()  # ctypes classes and library handles live in reference cycles


# -- requests -------------------------------------------------------------------------------------


class _Mechanisms:
    """The loaded mechanism instances of this worker, by key."""

    def __init__(self, policy, allowlist: dict, proxies: dict, settings: _Settings) -> None:
        self.policy = policy
        self.allowlist = allowlist
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
            report = self.policy.check_source(source, allowlist=self.allowlist)
            if not report.ok:
                raise _Refused("policy", "the mechanism breaks the sandbox policy:\n" + report.summary())
            class_name = report.class_name
        self.loads += 1
        filename = f"<mechanism {self.loads}>"
        # A real (registered) module, because dataclasses looks the class's module up in sys.modules.
        module = types.ModuleType(f"mechanism_{self.loads}")
        module.__builtins__ = _safe_builtins(self.policy.SAFE_BUILTINS, self.proxies)
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
            hooks = [hook for hook in self.policy.HOOKS if callable(getattr(instance, hook, None))]
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
        arity = self.policy.HOOK_ARITY.get(hook) if isinstance(hook, str) else None
        if arity is None or not isinstance(args, list) or len(args) != arity:
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


class _Encoder:
    """Encodes answers, refusing (as a bad answer) anything the host's bounded decoder would refuse."""

    def __init__(self, safe_json, limit: int, depth: int) -> None:
        self.safe_json = safe_json
        self.limit = limit
        self.depth = depth

    def encode(self, message: dict) -> bytes:
        try:
            text = json.dumps(message, allow_nan=False, default=_json_default, separators=(",", ":"))
        except BaseException as error:  # noqa: BLE001 - encoding may run mechanism code (dict subclasses) or recurse
            return self._refused(message, f"the answer is not valid JSON: {_safe_text(error)}")
        if len(text) > self.limit:
            return self._refused(message, f"the answer is {len(text)} bytes; the limit is {self.limit}")
        try:
            self.safe_json.loads_bounded(text, self.limit, self.depth)
        except ValueError as error:
            return self._refused(message, f"the answer was refused: {_safe_text(error)}")
        return text.encode("ascii") + b"\n"

    @staticmethod
    def _refused(message: dict, error: str) -> bytes:
        refusal = {"id": message.get("id"), "ok": False, "kind": "answer", "error": error, "cpu": message.get("cpu", 0.0)}
        return json.dumps(refusal).encode("ascii") + b"\n"


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


def serve(protocol_in: int, protocol_out: int, mechanisms: _Mechanisms, encoder: _Encoder, hello: dict) -> None:
    reader = os.fdopen(protocol_in, "rb")
    write = os.write  # kept before os is neutralised

    def send(message: dict) -> None:
        view = memoryview(encoder.encode(message))
        while view:
            view = view[write(protocol_out, view) :]

    send({"id": 0, "ok": True, "value": hello, "cpu": 0.0})
    while True:
        line = reader.readline()
        if not line:
            return  # the host closed the pipe: shut down
        try:
            request = json.loads(line)
            request_id = request.get("id")
        except (ValueError, AttributeError):
            send({"id": None, "ok": False, "kind": "request", "error": "the request is not a JSON object", "cpu": 0.0})
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


def _load_file(name: str, path: str) -> types.ModuleType:
    """Import one of our standard-library-only files by path (our packages are not importable here)."""
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses looks the module up while building its classes
    spec.loader.exec_module(module)
    return module


def main(argv: list) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: sandbox_worker.py SETTINGS_JSON")
    settings = _Settings(json.loads(argv[1]))
    sys.path.extend(settings.module_paths)  # started without site-packages: only numpy's directory is added
    policy = _load_file("_bilevel_mechanism_policy", settings.policy_path)
    confinement = _load_file("_bilevel_sandbox_os", settings.confinement_path)
    safe_json = _load_file("_bilevel_safe_json", settings.safe_json_path)
    trusted = {name: _load_file(f"_bilevel_trusted_{name}", path) for name, path in settings.trusted_modules.items()}
    allowlist = policy.build_allowlist(settings.trusted_modules)
    proxies = _build_proxies(allowlist, trusted)
    protocol_in, protocol_out = _isolate_stdio()
    protections = confinement.confine(confinement.Options(settings.raw), keeper_closes=(protocol_in, protocol_out))
    import random

    # The global RNGs start the same in every worker, so replays repeat. Seeded after confine: it forks, and
    # `random` reseeds itself from urandom in a forked child.
    random.seed(0)
    if "numpy" in proxies:
        proxies["numpy"].random.seed(0)
    del confinement
    _drop_confinement_modules()
    _neutralise_process_access()
    mechanisms = _Mechanisms(policy, allowlist, proxies, settings)
    encoder = _Encoder(safe_json, settings.max_response_bytes, settings.max_response_depth)
    serve(protocol_in, protocol_out, mechanisms, encoder, {"pid": os.getpid(), "protections": protections})


if __name__ == "__main__":
    main(sys.argv)
