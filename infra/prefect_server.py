"""A local Prefect server (API, UI off, scheduler on) on 127.0.0.1, for schedules without a Prefect server.

Prefect's temporary server runs no scheduler, so `bilevel serve` starts this one when PREFECT_API_URL is unset.
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

READY_TIMEOUT_S = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def local_prefect_server(home: Path, log_file: Path, port: int | None = None,
                         extra_env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `prefect server start` bound to 127.0.0.1 with its database under `home`; yield its API URL;
    stop it (by PID) on exit."""
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"}
    env.update(PREFECT_HOME=str(home), PREFECT_SERVER_ANALYTICS_ENABLED="false", PREFECT_UI_ENABLED="false",
               **(extra_env or {}))
    home.mkdir(parents=True, exist_ok=True)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    with log_file.open("ab") as log:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    url = f"http://127.0.0.1:{port}/api"
    try:
        _wait_healthy(server, url, log_file)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=10)


def _wait_healthy(server: subprocess.Popen, url: str, log_file: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the Prefect server exited with code {server.returncode}; see {log_file}")
        try:
            # trust_env=False: a configured HTTP(S)_PROXY must not swallow requests to 127.0.0.1
            if httpx.get(f"{url}/health", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the Prefect server did not answer on {url} within {READY_TIMEOUT_S:.0f} s; see {log_file}")
