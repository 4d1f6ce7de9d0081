"""Shared test setup: every test runs with its own state directory and no user configuration leaking in."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import pytest

# Telemetry off and no network lookups, before any library is imported by a test module.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
# Prefect reads its home when first imported: one throw-away home (temporary server DB, persisted results)
# for the whole test session, never the developer's.
_PREFECT_HOME = tempfile.mkdtemp(prefix="bilevel-test-prefect-")
os.environ["PREFECT_HOME"] = _PREFECT_HOME
os.environ["PREFECT_LOCAL_STORAGE_PATH"] = os.path.join(_PREFECT_HOME, "results")
os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING")


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No BILEVEL_* variables from the developer's shell, and no bilevel.toml from the working directory."""
    for key in list(os.environ):
        if key.startswith("BILEVEL_"):
            monkeypatch.delenv(key, raising=False)
    monkeypatch.chdir(tmp_path_factory.mktemp("cwd"))


@pytest.fixture(scope="module")
def harness():
    """The tinygpt harness module, imported the way train.py imports it (from its own folder)."""
    pytest.importorskip("torch")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "workloads" / "tinygpt"))
    import harness as module

    yield module
    sys.path.pop(0)
