"""A surrogate of the objective fitted to a trace: what a simulated inner loop "trains" instead of the workload.

Model choice. A random forest (scikit-learn, pinned) is robust on the 10-40 points a Level-2 session sees, takes
mixed int/float/choice/log parameters once encoded, needs no tuning, and ranked held-out tinygpt trainings of the
committed early-stop traces with Spearman 0.85 when fitted on 12 (issue 19). A forest alone cannot extrapolate: its
prediction is an average of measured values, so no simulated search could ever beat the best measured point, and
every mechanism would simulate as "no gain". The surrogate therefore adds a ridge-regularised linear trend (on
standardised features; a parameter the trace never varied gets no slope) and the forest models its residuals:
inside the data it is the forest, beyond it the measured slope continues. Its optimism is bounded by the trace's
own record: a prediction beyond the best value measured saturates smoothly (tanh) at the largest single improvement
the trace ever made on its best so far, so better stays better but no simulated search is promised gains no real
search there ever showed (a trend fitted mostly to bad configs would otherwise run to a corner). Crashes count: a
crash is a measurement of the worst value seen plus a margin (a tenth of the measured span), so a mechanism
steering into a region that crashed is punished by the simulation like a bad training. Deterministic given its
seed (bootstrap resample and forest).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict

from search.params import ParamKind, ParamSpec
from search.trace import Trace

MIN_POINTS = 3  # measured (or crashed) experiments a surrogate needs
TREES = 60
CRASH_MARGIN = 0.1  # a crash counts as the worst value seen plus this fraction of the measured span
RIDGE = 1.0  # the trend's ridge penalty on standardised features (in units of one experiment's weight)


class SurrogateError(ValueError):
    """The trace cannot support a surrogate (too few measurements); the message says what is missing."""


def encode(config: dict[str, Any], specs: Sequence[ParamSpec]) -> list[float]:
    """A config as numbers in [0, 1]: numeric parameters scaled over their range (log scale where declared), bools
    0/1, choices one-hot, float tuples element-wise. A missing or unreadable value takes the declared default."""
    row: list[float] = []
    for spec in specs:
        value = config.get(spec.name, spec.value)
        if spec.kind is ParamKind.CHOICE:
            row.extend(1.0 if value == choice else 0.0 for choice in spec.choices or ())
        elif spec.kind is ParamKind.BOOL:
            row.append(1.0 if value else 0.0)
        elif spec.kind is ParamKind.FLOAT_TUPLE:
            default = spec.value if isinstance(spec.value, tuple) else ()
            items: Sequence[Any] = value if isinstance(value, list | tuple) else default
            for position in range(spec.length or 0):
                item = items[position] if position < len(items) else (default[position] if position < len(default) else 0.0)
                row.append(_scaled(spec, item))
        else:
            row.append(_scaled(spec, value))
    return row


def _scaled(spec: ParamSpec, value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float(spec.value) if isinstance(spec.value, int | float) else 0.0
    low, high = spec.low, spec.high
    if low is None or high is None or high <= low or not math.isfinite(number):
        return 0.0
    if spec.log and low > 0:
        number, low, high = math.log(max(number, low)), math.log(low), math.log(high)
    return min(1.0, max(0.0, (number - low) / (high - low)))


class TrainingPoint(BaseModel):
    """One experiment as the surrogate sees it: encoded config, and its value (a crash gets the penalty)."""

    model_config = ConfigDict(frozen=True)

    x: list[float]
    value: float
    crashed: bool = False


def training_points(trace: Trace, specs: Sequence[ParamSpec]) -> list[TrainingPoint]:
    """Every measured or crashed experiment of the trace; a crash is scored the worst value seen plus a margin.
    Invalid proposals (nothing trained) and early-stopped runs (nothing final measured) carry no information."""
    objective = trace.objective
    measured = [e.measured for e in trace.experiments if e.measured is not None]
    crashed = [e for e in trace.experiments if e.crashed]
    if len(measured) + len(crashed) < MIN_POINTS or not measured:
        raise SurrogateError(f"the trace holds {len(measured)} measured and {len(crashed)} crashed experiments; a "
                             f"surrogate needs at least {MIN_POINTS}, one of them measured")
    worst = max(measured) if objective.minimize else min(measured)
    span = (max(measured) - min(measured)) or abs(worst) * 0.1 or 1.0
    penalty = worst + CRASH_MARGIN * span if objective.minimize else worst - CRASH_MARGIN * span
    points = []
    for experiment in trace.experiments:
        if experiment.measured is not None:
            points.append(TrainingPoint(x=encode(experiment.config, specs), value=experiment.measured))
        elif experiment.crashed:
            points.append(TrainingPoint(x=encode(experiment.config, specs), value=penalty, crashed=True))
    return points


class Surrogate:
    """A linear trend plus a random forest on its residuals, fitted to a bootstrap resample of the points
    (resample=False: to all of them). `predict` is the noiseless value of one config."""

    def __init__(self, points: Sequence[TrainingPoint], specs: Sequence[ParamSpec], *, seed: int,
                 resample: bool = True, minimize: bool = True, headroom: float | None = None) -> None:
        """`headroom`: how far beyond the best value measured a prediction may go (None: the measured span)."""
        from sklearn.ensemble import RandomForestRegressor

        self.specs = list(specs)
        rng = np.random.default_rng(seed)
        chosen = rng.integers(0, len(points), len(points)) if resample else np.arange(len(points))
        x = np.array([points[i].x for i in chosen], dtype=float)
        y = np.array([points[i].value for i in chosen], dtype=float)
        self.mean_x = x.mean(axis=0)
        self.mean_y = float(y.mean())
        scale = x.std(axis=0)
        scale[scale == 0] = np.inf  # a parameter the trace never varied: no slope
        standard = (x - self.mean_x) / scale
        # ridge trend, closed form: (Z'Z + λI) w = Z'y, then back to the [0, 1] encoding
        weights = np.linalg.solve(standard.T @ standard + RIDGE * np.eye(x.shape[1]), standard.T @ (y - self.mean_y))
        self.slope = weights / scale
        all_values = [p.value for p in points]
        span = float(max(all_values) - min(all_values))
        self.minimize = minimize
        self.best = min(all_values) if minimize else max(all_values)
        self.worst = max(all_values) + span if minimize else min(all_values) - span
        self.headroom = span if headroom is None else headroom
        residual = y - self._trend(x)
        self.forest = RandomForestRegressor(n_estimators=TREES, min_samples_leaf=1, max_features=0.6,
                                            random_state=int(rng.integers(0, 2**31 - 1)), n_jobs=1)
        self.forest.fit(x, residual)
        self._trees = [tree.tree_ for tree in self.forest.estimators_]
        self.residual_sd = float(np.std(residual)) if len(residual) > 1 else 0.0
        self.values = y

    def _trend(self, x: np.ndarray) -> np.ndarray:
        return self.mean_y + (x - self.mean_x) @ self.slope

    def predict_encoded(self, row: Sequence[float]) -> float:
        x = np.asarray([row], dtype=np.float32)
        # the trees directly: the forest's own predict spends milliseconds per call on checks and threads
        forest = sum(float(tree.predict(x)[0, 0]) for tree in self._trees) / len(self._trees)
        value = float(self._trend(np.asarray([row], dtype=float))[0]) + forest
        sign = 1.0 if self.minimize else -1.0
        beyond = sign * (self.best - value)  # > 0: better than the best measured
        if beyond > 0:
            saturated = self.headroom * math.tanh(beyond / self.headroom) if self.headroom > 0 else 0.0
            return self.best - sign * saturated
        return min(value, self.worst) if self.minimize else max(value, self.worst)

    def predict(self, config: dict[str, Any]) -> float:
        return self.predict_encoded(encode(config, self.specs))


def largest_improvement(trace: Trace) -> float:
    """The largest single improvement of the trace on its best so far (0.0 when it never improved), in units of
    the objective, positive."""
    objective = trace.objective
    best: float | None = None
    largest = 0.0
    for experiment in trace.experiments:
        value = experiment.measured
        if value is None:
            continue
        if best is not None and objective.better(value, best):
            largest = max(largest, objective.gain(best, value))
        best = value if objective.better(value, best) else best
    return largest
