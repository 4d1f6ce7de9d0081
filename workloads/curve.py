"""The learning curve a run prints as it trains (`checkpoint: fraction=0.25 loss=2.31` lines), collected while the
output streams, and the early-stopping rule asked at each checkpoint."""

from __future__ import annotations

import math

from search.early_stop import EarlyStop

CHECKPOINT_PREFIX = "checkpoint:"
MAX_CHECKPOINTS = 64


def parse_checkpoint(line: str) -> tuple[float, float] | None:
    """(fraction, loss) from a `checkpoint: fraction=F loss=L [other=...]` line; None for any other line."""
    if not line.startswith(CHECKPOINT_PREFIX):
        return None
    fields = dict(part.split("=", 1) for part in line[len(CHECKPOINT_PREFIX):].split() if "=" in part)
    try:
        fraction, loss = float(fields["fraction"]), float(fields["loss"])
    except (KeyError, ValueError):
        return None
    if not (math.isfinite(fraction) and 0.0 < fraction <= 1.0) or math.isnan(loss):
        return None
    return fraction, loss


class CurveWatch:
    """A line watch (workloads/subprocess_run.py): keeps the checkpoints, and returns the rule's reason to stop."""

    def __init__(self, rule: EarlyStop | None = None) -> None:
        self.rule = rule
        self.curve: list[tuple[float, float]] = []

    def __call__(self, line: str) -> str | None:
        point = parse_checkpoint(line)
        if point is None or len(self.curve) >= MAX_CHECKPOINTS:
            return None
        self.curve.append(point)
        return self.rule.verdict(*point) if self.rule is not None else None
