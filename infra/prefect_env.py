"""Prefect's environment, derived from settings: its home, persisted results and quiet logs under state_dir.

Prefect reads its settings when it is imported, so `apply_prefect_environment` runs before any flow module
is imported (the CLI does it first thing). Values the user set explicitly are left alone.
"""

from __future__ import annotations

import os

from infra.settings import Settings


def apply_prefect_environment(settings: Settings) -> None:
    """Point Prefect at the project's state directory and make resumable runs the default."""
    home = settings.prefect_home
    home.mkdir(parents=True, exist_ok=True)
    defaults = {
        "PREFECT_HOME": str(home),
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "results"),
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        # A temporary server starts in 7-16 s here, longer when several processes start at once.
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": os.environ.get("PREFECT_LOGGING_LEVEL", "WARNING"),
        "PREFECT_LOGGING_LOG_PRINTS": "false",
    }
    for key, value in defaults.items():
        os.environ.setdefault(key, value)
