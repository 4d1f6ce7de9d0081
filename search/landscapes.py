"""Synthetic landscapes for the simulated inner loop: known objectives mapped onto a run's parameter space, so that a
mechanism tuned to the trace's surrogate (or lucky on it) shows up as not helping, or harming, elsewhere.

A landscape is drawn per seed (its relevant parameters, optimum and orientation change with the seed) over the
run's encoded space (search/surrogate.py's `encode`: every parameter in [0, 1], choices one-hot). The trace is then
*relabelled*: every measured experiment gets the landscape's value at its config, affinely mapped (the landscape's
5-95% range over the whole space onto the trace's measured range, centred on the trace's mean, best in the goal's
direction: so Δ, noise floor and CI are in the trace's units), plus the trace's noise; keep
decisions are redone with the default rule. Crashes stay crashes (where a config crashed is a fact of the workload,
not of the objective). The simulated generation then trains on the same mapped landscape.

- `synthetic`: the shape of mechanisms/synthetic_trace.py's objective, made generic: a sum of V-shaped terms
  w_d |x_d - o_d| on a third of the encoded dimensions (the others do not matter), weights falling off like that
  objective's learning rates, depth and batch terms.
- `hartmann6`: the standard Hartmann 6-d test function (global minimum -3.32237), its six coordinates bound to six
  random encoded dimensions (fewer: the rest fixed at random values), each possibly reflected. Multimodal and
  non-separable, unlike the synthetic one.

Pure: numpy only; a landscape evaluation is microseconds.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from search.iteration import default_keep
from search.params import ParamSpec
from search.surrogate import encode
from search.trace import Experiment, RunOutcome, Trace

LandscapeFn = Callable[[np.ndarray], float]  # encoded config -> value, lower is better

SYNTHETIC_WEIGHTS = (0.25, 0.12, 0.08, 0.05, 0.04)  # mechanisms/synthetic_trace.py's term weights, largest first
_HARTMANN_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_HARTMANN_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                        [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]], dtype=float)
_HARTMANN_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                               [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]], dtype=float)
HARTMANN6_MINIMUM = -3.32237
SCALE_PROBES = 256  # random configs that measure a landscape's spread (its 5-95% range maps onto the trace's range)


def hartmann6(z: np.ndarray) -> float:
    """The Hartmann 6-d function on [0, 1]^6 (minimum -3.32237 at 0.20169, 0.150011, 0.476874, 0.275332, 0.311652,
    0.6573)."""
    inner = np.sum(_HARTMANN_A * (z[None, :] - _HARTMANN_P) ** 2, axis=1)
    return float(-np.sum(_HARTMANN_ALPHA * np.exp(-inner)))


def synthetic_landscape(dims: int, seed: int) -> LandscapeFn:
    """A sparse separable V-landscape over `dims` encoded dimensions, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    relevant = max(1, math.ceil(dims / 3))
    chosen = rng.permutation(dims)[:relevant]
    weights = np.array([SYNTHETIC_WEIGHTS[min(i, len(SYNTHETIC_WEIGHTS) - 1)] for i in range(relevant)])
    optimum = rng.uniform(0.1, 0.9, relevant)

    def value(x: np.ndarray) -> float:
        return float(np.sum(weights * np.abs(x[chosen] - optimum)))

    return value


def hartmann6_landscape(dims: int, seed: int) -> LandscapeFn:
    """Hartmann-6 bound to min(6, dims) random encoded dimensions (the rest of its coordinates fixed at random),
    each coordinate reflected with probability 1/2, drawn from `seed`."""
    rng = np.random.default_rng(seed)
    bound = min(6, dims)
    chosen = rng.permutation(dims)[:bound]
    coordinates = rng.permutation(6)[:bound]
    fixed = rng.uniform(0.0, 1.0, 6)
    reflect = rng.random(bound) < 0.5

    def value(x: np.ndarray) -> float:
        z = fixed.copy()
        picked = x[chosen]
        z[coordinates] = np.where(reflect, 1.0 - picked, picked)
        return hartmann6(z)

    return value


LANDSCAPES: dict[str, Callable[[int, int], LandscapeFn]] = {"synthetic": synthetic_landscape,
                                                            "hartmann6": hartmann6_landscape}


class MappedLandscape:
    """A landscape on a run's parameters, in the trace's units: `predict(config)` is what a simulated training of
    that config measures without noise (the same interface as the trace's surrogate)."""

    def __init__(self, fn: LandscapeFn, specs: Sequence[ParamSpec], scale: float, offset: float) -> None:
        self.fn, self.specs, self.scale, self.offset = fn, list(specs), scale, offset

    def predict(self, config: dict[str, Any]) -> float:
        return self.offset + self.scale * self.fn(np.asarray(encode(config, self.specs), dtype=float))


def mapped(name: str, trace: Trace, specs: Sequence[ParamSpec], seed: int) -> MappedLandscape:
    """Landscape `name` drawn from `seed`, in the trace's units (see the module's docstring; ValueError for an unknown
    name or a trace with nothing measured)."""
    if name not in LANDSCAPES:
        raise ValueError(f"unknown landscape {name!r}; known: {', '.join(LANDSCAPES)}")
    dims = len(encode({}, specs))
    if dims == 0:
        raise ValueError("the run's parameter space is empty: no landscape can be mapped onto it")
    measured = [e for e in trace.experiments if e.measured is not None]
    if not measured:
        raise ValueError("the trace holds no measured experiment: nothing to map a landscape onto")
    fn = LANDSCAPES[name](dims, _seed(name, seed))
    # the scale from the landscape's spread over the whole space, not over the trace's configs: a trace that explored
    # a flat corner would otherwise blow every other difference up by orders of magnitude
    probes = np.random.default_rng(_seed("probe", seed)).random((SCALE_PROBES, dims))
    low, high = np.quantile([fn(row) for row in probes], [0.05, 0.95])
    values = [float(e.measured) for e in measured]  # type: ignore[arg-type]
    target = (max(values) - min(values)) or abs(values[0]) * 0.1 or 1.0
    spread = float(high - low) or 1.0
    scale = target / spread if trace.objective.minimize else -target / spread
    raw = [fn(np.asarray(encode(e.config, specs), dtype=float)) for e in measured]
    # centred on the trace: its measured configs average what they measured
    return MappedLandscape(fn, specs, scale=scale, offset=float(np.mean(values)) - scale * float(np.mean(raw)))


def _seed(name: str, seed: int) -> int:
    return int.from_bytes(hashlib.sha256(f"{name}/{seed}".encode()).digest()[:8], "big")


def relabelled(trace: Trace, landscape: MappedLandscape, noise_sd: float, seed: int) -> Trace:
    """The trace as if its runs had measured `landscape` (plus noise drawn from `seed` and the run's index): values
    replaced, confirmation runs dropped, keep decisions redone with the default rule, crashes kept."""
    rng = np.random.default_rng(_seed("relabel", seed))
    experiments: list[Experiment] = []
    state = None
    for experiment in trace.experiments:
        noise = float(rng.normal(0.0, noise_sd)) if noise_sd > 0 else 0.0
        if experiment.measured is None:
            updated = experiment.model_copy(update={"kept": False, "default_kept": False, "decided_by": None})
        else:
            value = landscape.predict(experiment.config) + noise
            outcome = RunOutcome(status="ok", value=value, seed=experiment.outcome.seed, steps=experiment.outcome.steps)
            kept = state is not None and default_keep(state, value)
            updated = experiment.model_copy(update={"outcome": outcome, "confirm": None, "kept": kept,
                                                    "default_kept": kept, "decided_by": None})
        experiments.append(updated)
        if state is None:
            state = Trace(objective=trace.objective, experiments=[updated]).state() if updated.measured is not None else None
        else:
            state = state.after(updated)
    baseline = landscape.predict(trace.experiments[0].config) if trace.experiments else 0.0
    noise_runs = [run.model_copy(update={"value": baseline + (float(rng.normal(0.0, noise_sd)) if noise_sd > 0 else 0.0)})
                  if run.ok else run for run in trace.noise_runs]  # the noise floor stays the trace's, in expectation
    return trace.model_copy(update={"experiments": experiments, "noise_runs": noise_runs})
