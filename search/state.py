"""Where the search stands: the baseline, the current point and the best point, folded from the trace alone."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict

from search.objective import Objective

if TYPE_CHECKING:
    from search.trace import Experiment


class Point(BaseModel):
    """A configuration and the objective value measured for it."""

    model_config = ConfigDict(frozen=True)

    config: dict[str, Any]
    value: float
    index: int


class BaselineFailed(RuntimeError):
    """The unedited script did not produce a measurement, so there is nothing to improve on."""


class SearchState(BaseModel):
    """`current` is where the search stands (an accept hook may move it to a worse point on purpose);
    `best` is the best value ever measured. No mechanism can write `best`: it follows from measurements."""

    model_config = ConfigDict(frozen=True)

    objective: Objective = Objective()
    baseline: Point
    current: Point
    best: Point

    @property
    def delta(self) -> float:
        """Improvement so far, sign-corrected by the goal (negative is better, as in the paper's Δval_bpb)."""
        return self.objective.delta(self.baseline.value, self.best.value)

    @classmethod
    def start(cls, baseline: Experiment, objective: Objective) -> SearchState:
        """The state right after the baseline run; BaselineFailed with its error tail if it measured nothing."""
        if baseline.measured is None:
            tail = baseline.outcome.error_tail or baseline.outcome.log_tail
            raise BaselineFailed(f"the baseline run ended with status {baseline.outcome.status}: {tail[-500:]}")
        point = Point(config=baseline.config, value=baseline.measured, index=baseline.index)
        return cls(objective=objective, baseline=point, current=point, best=point)

    def after(self, experiment: Experiment) -> SearchState:
        """The state once `experiment` is decided: a kept one moves `current`, a better measurement moves `best`."""
        value = experiment.measured
        if value is None:
            return self
        point = Point(config=experiment.config, value=value, index=experiment.index)
        best = point if self.objective.better(value, self.best.value) else self.best
        current = point if experiment.kept else self.current
        if best is self.best and current is self.current:
            return self
        return self.model_copy(update={"best": best, "current": current})
