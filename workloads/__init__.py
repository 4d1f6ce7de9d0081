"""Workloads the inner loop can optimise; `get_workload` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from infra.settings import Settings
    from workloads.base import Workload


def get_workload(settings: Settings) -> Workload:
    """The workload named in settings."""
    if settings.workload == "tinygpt":
        from workloads.tinygpt.workload import TinyGPT

        return TinyGPT.from_settings(settings)
    raise ValueError(f"unknown workload {settings.workload!r}; available: tinygpt")
