"""prefect.yaml deploys to a real local Prefect server, and the server schedules the nightly runs at 02:00 in the
chosen timezone."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from infra.prefect_server import local_prefect_server

pytestmark = pytest.mark.integration

PROJECT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory):
    home = tmp_path_factory.mktemp("prefect-server")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    with local_prefect_server(home, home / "server.log",
                              extra_env={"PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "2"}) as url:
        yield url, {**env, "PREFECT_HOME": str(home / "client"), "PREFECT_API_URL": url, "PREFECT_CLI_PROMPT": "false"}


def test_nightly_deployment_schedules_runs_at_two_in_the_timezone(prefect_server) -> None:
    url, env = prefect_server
    created = subprocess.run([sys.executable, "-m", "prefect", "work-pool", "create", "bilevel-process", "--type",
                              "process"], env=env, capture_output=True, text=True, timeout=120)
    assert created.returncode == 0, created.stdout + created.stderr
    deployed = subprocess.run([sys.executable, "-m", "bilevel.cli", "deploy", "--timezone", "Europe/Berlin"],
                              env=env, cwd=PROJECT, capture_output=True, text=True, timeout=300)
    assert deployed.returncode == 0, deployed.stdout[-3000:] + deployed.stderr[-3000:]

    deployments = {d["name"]: d for d in httpx.post(f"{url}/deployments/filter", json={}, timeout=10).json()}
    assert {"nightly", "ablation"} <= set(deployments)
    nightly = deployments["nightly"]
    assert nightly["entrypoint"] == "flows/nightly.py:nightly"
    assert nightly["work_pool_name"] == "bilevel-process"
    schedule = nightly["schedules"][0]["schedule"]
    assert schedule["cron"] == "0 2 * * *" and schedule["timezone"] == "Europe/Berlin"
    assert deployments["ablation"]["schedules"][0]["active"] is False

    deadline = time.monotonic() + 90
    runs: list[dict] = []
    while time.monotonic() < deadline and not runs:
        runs = httpx.post(f"{url}/flow_runs/filter", timeout=10, json={
            "deployments": {"id": {"any_": [nightly["id"]]}}, "flow_runs": {"state": {"type": {"any_": ["SCHEDULED"]}}},
        }).json()
        time.sleep(2)
    assert runs, "the server created no scheduled runs"
    berlin = [datetime.fromisoformat(r["expected_start_time"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin"))
              for r in runs]
    assert all((t.hour, t.minute) == (2, 0) for t in berlin)
    assert len({t.date() for t in berlin}) == len(berlin)  # one a night
