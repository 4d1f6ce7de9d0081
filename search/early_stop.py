"""Early stopping of hopeless trainings: a run whose loss at a checkpoint (a fixed fraction of the budget) is worse
than the incumbent's at the same checkpoint by more than a margin is stopped there. Pure: the rule, the replay of
recorded curves, and what that replay saves and loses."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Sequence

from pydantic import BaseModel, ConfigDict, Field

from search.trace import Trace

Curve = Sequence[tuple[float, float]]  # (fraction of the budget, training loss; lower is better)
FRACTION_TOLERANCE = 1e-6


def loss_at(curve: Curve, fraction: float) -> float | None:
    """The loss the curve reports at `fraction` (None when it has no checkpoint there)."""
    for at, loss in curve:
        if abs(at - fraction) <= FRACTION_TOLERANCE:
            return loss
    return None


class EarlyStop(BaseModel):
    """The rule for one training: the incumbent's curve and the margin a checkpoint loss may exceed it by."""

    model_config = ConfigDict(frozen=True)

    margin: float = Field(ge=0.0, allow_inf_nan=False)
    incumbent: tuple[tuple[float, float], ...] = Field(min_length=1)

    def verdict(self, fraction: float, loss: float) -> str | None:
        """Why the run should stop at this checkpoint, or None to let it go on."""
        reference = loss_at(self.incumbent, fraction)
        if reference is None:
            return None
        if not math.isfinite(loss):
            return f"the training loss is {loss} at {fraction:.0%} of the budget"
        if loss > reference + self.margin:
            return (f"stopped at {fraction:.0%} of the budget: training loss {loss:.4f} is worse than the "
                    f"incumbent's {reference:.4f} by more than the margin {self.margin:g}")
        return None

    @property
    def key(self) -> str:
        """A short hash of the rule (for cache keys: the same run under another rule may end differently)."""
        payload = json.dumps([self.margin, [list(point) for point in self.incumbent]])
        return hashlib.sha256(payload.encode()).hexdigest()[:12]


def early_stop_for(trace: Trace, incumbent_index: int, margin: float | None) -> EarlyStop | None:
    """The rule against the experiment numbered `incumbent_index` (the point a candidate must beat); None when
    early stopping is off or that experiment recorded no curve."""
    if margin is None:
        return None
    incumbent = next((e for e in trace.experiments if e.index == incumbent_index), None)
    if incumbent is None or not incumbent.outcome.ok or not incumbent.outcome.curve:
        return None
    return EarlyStop(margin=margin, incumbent=tuple((float(f), float(v)) for f, v in incumbent.outcome.curve))


def stop_fraction(curve: Curve, rule: EarlyStop) -> float | None:
    """Where a run with this (complete) curve would have been stopped under `rule`; None if it would have run on."""
    for fraction, loss in sorted(curve):
        if rule.verdict(fraction, loss) is not None:
            return fraction
    return None


class ReplayResult(BaseModel):
    """Early stopping replayed over recorded runs (that were all trained to the end)."""

    margin: float
    candidates: int = Field(0, description="Runs with a curve and an incumbent with a curve.")
    stopped: int = 0
    compute_total: float = Field(0.0, description="Training compute of those runs, in budgets (1 per run).")
    compute_saved: float = Field(0.0, description="The part early stopping would not have spent, in budgets.")
    winners: int = Field(0, description="Runs that beat their incumbent (would have been kept).")
    winners_stopped: int = Field(0, description="Of those, the ones early stopping would have stopped.")

    @property
    def saved_fraction(self) -> float:
        return self.compute_saved / self.compute_total if self.compute_total else 0.0

    @property
    def winners_stopped_fraction(self) -> float:
        return self.winners_stopped / self.winners if self.winners else 0.0


def replay(trace: Trace, margin: float) -> ReplayResult:
    """Replay the rule over a trace recorded without it: each experiment against the point it had to beat (the
    current point when it ran), assuming the search went as recorded. A stopped winner is a run that was better
    than that point but would have been stopped (and so, under early stopping, lost)."""
    result = ReplayResult(margin=margin)
    states = list(trace.states())
    for experiment, before in zip(trace.experiments[1:], states, strict=False):
        rule = early_stop_for(trace, before.current.index, margin)
        if rule is None or experiment.outcome.status != "ok" or not experiment.outcome.curve:
            continue
        result.candidates += 1
        result.compute_total += 1.0
        at = stop_fraction(experiment.outcome.curve, rule)
        won = trace.objective.better(experiment.measured, before.current.value)
        result.winners += int(won)
        if at is not None:
            result.stopped += 1
            result.compute_saved += 1.0 - at
            result.winners_stopped += int(won)
    return result
