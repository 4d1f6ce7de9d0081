"""A benchmark that runs flows without the CLI gets a supervised temporary Prefect server
(infra.prefect_server.supervised_prefect_api): it answers while the benchmark runs, and a SIGTERMed or SIGKILLed
benchmark takes it along (Prefect's own ephemeral server, which the benchmarks used before, outlived them)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.integration.stopping import REPO, descendants, still_alive

pytestmark = pytest.mark.integration

HOLDER = """
import sys, time
from pathlib import Path
from infra.prefect_server import supervised_prefect_api
home = Path(sys.argv[1])
with supervised_prefect_api(home, home / "server.log") as url:
    print(url, flush=True)
    time.sleep(600)
"""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL])
def test_a_stopped_benchmark_leaves_no_prefect_server(tmp_path: Path, sig: int) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env["PYTHONPATH"] = str(REPO)
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(tmp_path)], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, cwd=REPO)
    try:
        url = holder.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), holder.stderr.read()
        assert httpx.get(f"{url}/health", timeout=10).status_code == 200
        tree = descendants(holder.pid)
        assert any("uvicorn" in " ".join(p.cmdline()) for p in tree), [p.cmdline() for p in tree]
        holder.send_signal(sig)
        holder.wait(timeout=30)
        assert still_alive(tree) == []
        with pytest.raises(httpx.TransportError):
            httpx.get(f"{url}/health", timeout=2)
    finally:
        if holder.poll() is None:
            holder.kill()
