"""Where the search stands: the baseline, the current point and the best point, rebuilt from the trace alone."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from search.trace import Trace


class Point(BaseModel):
    """A configuration and the val_bpb measured for it."""

    config: dict[str, Any]
    val_bpb: float
    index: int


class BaselineFailed(RuntimeError):
    """The unedited script did not produce a val_bpb, so there is nothing to improve on."""


class SearchState(BaseModel):
    """`current` is where the search stands (an accept hook may move it to a worse point on purpose);
    `best` is the best val_bpb ever measured. No mechanism can write `best`: it follows from measurements."""

    baseline: Point
    current: Point
    best: Point

    @property
    def delta(self) -> float:
        """Improvement so far in val_bpb (negative is better, as in the paper's Δval_bpb)."""
        return self.best.val_bpb - self.baseline.val_bpb


def state_from_trace(trace: Trace) -> SearchState:
    """Replay the trace: the baseline starts everything, kept experiments move `current`, any better
    measurement moves `best`."""
    if not trace.experiments:
        raise BaselineFailed("the trace is empty: run the baseline first")
    first = trace.experiments[0]
    if first.measured is None:
        tail = first.outcome.error_tail or first.outcome.log_tail
        raise BaselineFailed(f"the baseline run ended with status {first.outcome.status}: {tail[-500:]}")
    baseline = Point(config=first.config, val_bpb=first.measured, index=0)
    current = best = baseline
    for experiment in trace.experiments[1:]:
        value = experiment.measured
        if value is None:
            continue
        point = Point(config=experiment.config, val_bpb=value, index=experiment.index)
        if value < best.val_bpb:
            best = point
        if experiment.kept:
            current = point
    return SearchState(baseline=baseline, current=current, best=best)
