"""Prefect servers on 127.0.0.1 that die with this process: the local one of `bilevel serve` (API and scheduler) and
the temporary one of `bilevel run`, `resume` and `ablate` (in place of Prefect's own, which outlives a killed CLI).

Both run under infra/supervise.py, so a SIGKILLed parent takes them, and the uvicorn inside them, along.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from infra.supervise import supervised

READY_TIMEOUT_S = 120.0
STOP_GRACE_S = 3.0  # uvicorn waits for open connections (a runner's long polls): SIGKILL after this
STOP_WAIT_S = STOP_GRACE_S + 5.0


def send_queued_logs() -> None:
    """Send the log lines Prefect's log worker still holds while the server answers (at most 5 s): once it is gone,
    the worker's last drain at exit prints "Error logging to API ... All connection attempts failed" after a run that
    went well. Nothing to do when no flow ran in this process."""
    handlers = sys.modules.get("prefect.logging.handlers")
    if handlers is None:
        return
    try:
        handlers.APILogHandler().flush()
    except Exception as error:  # the lines are the UI's copy of the console; the stop must go on
        print(f"warning: flow-run log lines not sent before the Prefect server stopped: {error}", file=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrefectServer:
    """One supervised Prefect server process: started, waited for, stopped (by PID)."""

    def __init__(self, argv: list[str], env: dict[str, str], port: int, log_file: Path) -> None:
        self.argv, self.env, self.port, self.log_file = argv, env, port, log_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def start(self) -> PrefectServer:
        """Start the process (without waiting for it to answer)."""
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("ab") as log:
            self.process = subprocess.Popen(supervised(self.argv, grace_s=STOP_GRACE_S), env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)
        return self

    def wait_healthy(self, timeout_s: float = READY_TIMEOUT_S) -> str:
        """Its API URL once /health answers; RuntimeError (one line) if it exits or stays silent."""
        assert self.process is not None, "start() first"
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Prefect server exited with code {self.process.returncode}; see {self.log_file}")
            try:
                # trust_env=False: a configured HTTP(S)_PROXY must not swallow requests to 127.0.0.1
                if httpx.get(f"{self.url}/health", timeout=2, trust_env=False).status_code == 200:
                    return self.url
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"the Prefect server did not answer on {self.url} within {timeout_s:.0f} s; see {self.log_file}")

    def stop(self) -> None:
        """Send the queued flow-run log lines, then SIGTERM the supervisor (it stops the server's whole group, SIGKILL
        after STOP_GRACE_S) and reap it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        send_queued_logs()
        process.terminate()
        try:
            process.wait(timeout=STOP_WAIT_S)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, 9)
            process.wait(timeout=STOP_WAIT_S)


def _server_env(home: Path, extra_env: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update({"PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_UI_ENABLED": "false",
                **(extra_env or {})})
    home.mkdir(parents=True, exist_ok=True)
    return env


def scheduling_server(home: Path, log_file: Path, port: int | None = None,
                      extra_env: dict[str, str] | None = None) -> PrefectServer:
    """`prefect server start` (API and scheduler, no UI) with its database under `home`."""
    port = port or free_port()
    argv = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)]
    return PrefectServer(argv, _server_env(home, extra_env), port, log_file)


def temporary_server(home: Path, log_file: Path, port: int) -> PrefectServer:
    """What Prefect starts itself when no server is configured (its API without the UI and the background services,
    database under `home`), but supervised."""
    argv = [sys.executable, "-m", "uvicorn", "--factory", "prefect.server.api.server:create_app", "--host", "127.0.0.1",
            "--port", str(port), "--log-level", "error", "--lifespan", "on"]
    env = _server_env(home, {"PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1", "PREFECT_UI_ENABLED": "0"})
    return PrefectServer(argv, env, port, log_file)


@contextlib.contextmanager
def running(server: PrefectServer) -> Iterator[str]:
    """Start `server` (unless started), yield its API URL once it answers, stop it on exit."""
    try:
        if server.process is None:
            server.start()
        yield server.wait_healthy()
    finally:
        server.stop()


@contextlib.contextmanager
def local_prefect_server(home: Path, log_file: Path, port: int | None = None,
                         extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `prefect server start` bound to 127.0.0.1 with its database under `home`; yield its API URL;
    stop it (by PID) on exit."""
    with running(scheduling_server(home, log_file, port, extra_env)) as url:
        yield url


def reserve_temporary_api() -> int | None:
    """Without PREFECT_API_URL, choose the port of a temporary server and point Prefect at it; call this before
    Prefect is imported (it reads the variable then). The port, or None when a server is configured."""
    if os.environ.get("PREFECT_API_URL"):
        return None
    port = free_port()
    os.environ["PREFECT_API_URL"] = f"http://127.0.0.1:{port}/api"
    return port


@contextlib.contextmanager
def supervised_prefect_api(home: Path, log_file: Path) -> Iterator[str | None]:
    """For a process that runs flows without the CLI (the benchmarks): without PREFECT_API_URL, a supervised temporary
    server for the block's duration (Prefect's own ephemeral one outlived a SIGTERMed benchmark: its uvicorn stayed
    up); yields its API URL, or None when a server is configured or Prefect was imported already (it read its
    settings then: a test process keeps the server it has)."""
    port = None if "prefect" in sys.modules else reserve_temporary_api()
    if port is None:
        yield None
        return
    try:
        with running(temporary_server(home, log_file, port)) as url:
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
