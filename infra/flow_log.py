"""Meta-run events as lines of the Prefect flow run's log, so the Prefect UI shows them (the console has its own display)."""

from __future__ import annotations

import logging
from typing import Any

from search.progress_line import event_line

_logger: logging.Logger | None = None


def _api_logger() -> logging.Logger:
    """A logger that sends to the Prefect API only: Prefect's own run loggers also print to the console."""
    global _logger
    if _logger is None:
        from prefect.logging.handlers import APILogHandler

        logger = logging.getLogger("bilevel.flow_runs")
        logger.setLevel(logging.INFO)
        logger.propagate = False
        logger.addHandler(APILogHandler())
        _logger = logger
    return _logger


def log_event(event: str, data: dict[str, Any]) -> None:
    """Write the event's line into the current flow run's log; nothing outside a flow or task run."""
    from prefect.context import FlowRunContext, TaskRunContext

    line = event_line(event, data)
    if line is not None and (FlowRunContext.get() is not None or TaskRunContext.get() is not None):
        _api_logger().info(line)
