"""Turn a trace into what mechanisms saw: per past experiment the ctx before it, its result view and its candidates.

The inner loop uses `replay_history` to rebuild mechanism state (MechanismRuntime.rebuild), and the
validation pipeline uses `replay_steps` to drive a new mechanism through a real trace. Both build
contexts with mechanisms.api.build_context, exactly as the inner loop does before each experiment.
Known approximation: the search config of the past is not in the trace, so the current one is used.
The ctx seed is `seed`, or `seed_for(index, track)` when the inner loop derives one per experiment:
pass the same function it uses, so replayed contexts equal the ones the hooks saw.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from mechanisms.api import build_context, candidate_view, experiment_view
from search.config import SearchConfig
from search.params import ParamError, ParamKind, ParamSpec, json_value, same_value, validate_value
from search.state import BaselineFailed, state_from_trace
from search.trace import Trace, config_with, same_config


SeedFor = Callable[[int, int], int]  # (experiment index, track) -> the ctx seed the hooks saw


@dataclass(frozen=True)
class ReplayStep:
    """One past decision: the ctx the hooks saw, the experiment's result view, and candidates for screen."""

    ctx: dict[str, Any]
    result: dict[str, Any]
    candidates: list[dict[str, Any]]


def replay_history(
    trace: Trace, specs: list[ParamSpec], config: SearchConfig, *, seed: int = 0, seed_for: SeedFor | None = None
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(ctx, result) per experiment after the baseline, for MechanismRuntime.rebuild."""
    return list(_contexts(trace, specs, config, seed_for or _constant(seed)))


def replay_steps(
    trace: Trace,
    specs: list[ParamSpec],
    config: SearchConfig,
    *,
    seed: int = 0,
    seed_for: SeedFor | None = None,
    alternatives: int = 2,
) -> list[ReplayStep]:
    """Replay steps for validation: candidates are the experiment's own changes first, then
    `alternatives` synthetic one-parameter moves from the current point (deterministic per step)."""
    steps = []
    for ctx, result in _contexts(trace, specs, config, seed_for or _constant(seed)):
        actual = candidate_view(result["changes"], result["hypothesis"], result["config"])
        rng = random.Random(seed * 1_000_003 + ctx["iteration"])
        current = ctx["current"]["config"]
        synthetic = synthetic_candidates(specs, current, config.frozen, rng, alternatives, exclude=[result["config"]])
        steps.append(ReplayStep(ctx=ctx, result=result, candidates=[actual, *synthetic]))
    return steps


def _constant(seed: int) -> SeedFor:
    return lambda _index, _track: seed


def _contexts(trace: Trace, specs: list[ParamSpec], config: SearchConfig, seed_for: SeedFor) -> Iterator[tuple[dict[str, Any], dict[str, Any]]]:
    for position in range(1, len(trace.experiments)):
        experiment = trace.experiments[position]
        prefix = Trace(experiments=trace.experiments[:position])
        try:
            state = state_from_trace(prefix)
        except BaselineFailed:
            return  # without a measured baseline the inner loop never decided anything
        ctx = build_context(
            trace=prefix,
            state=state,
            specs=specs,
            config=config,
            generation=experiment.generation,
            track=experiment.track,
            seed=seed_for(experiment.index, experiment.track),
        )
        yield ctx, experiment_view(experiment)


def synthetic_candidates(
    specs: list[ParamSpec],
    current: dict[str, Any],
    frozen: tuple[str, ...] | list[str],
    rng: random.Random,
    count: int,
    *,
    exclude: Sequence[dict[str, Any]] = (),
) -> list[dict[str, Any]]:
    """Up to `count` valid one-parameter moves away from `current`, as candidate views."""
    editable = [spec for spec in specs if spec.name not in set(frozen)]
    rng.shuffle(editable)
    candidates: list[dict[str, Any]] = []
    for spec in editable:
        if len(candidates) >= count:
            break
        value = _neighbour(spec, current.get(spec.name, spec.value), rng)
        if value is None:
            continue
        changes = {spec.name: json_value(value)}
        config = config_with(current, changes)
        if any(same_config(config, other) for other in [*exclude, *(c["config"] for c in candidates)]):
            continue
        hypothesis = f"synthetic alternative: move {spec.name} to {json_value(value)!r}"
        candidates.append(candidate_view(changes, hypothesis, config))
    return candidates


def _neighbour(spec: ParamSpec, value: Any, rng: random.Random) -> Any:
    """A valid value near `value` (double/halve on log scales, a tenth of the range otherwise), or None."""
    try:
        if spec.kind is ParamKind.BOOL:
            return validate_value(spec, not value)
        if spec.kind is ParamKind.CHOICE:
            others = [c for c in spec.choices or () if c != value]
            return validate_value(spec, rng.choice(others)) if others else None
        if spec.kind is ParamKind.FLOAT_TUPLE:
            first = _step(spec, float(value[0]), rng)
            return validate_value(spec, [first, *value[1:]])
        moved = _step(spec, float(value), rng)
        if spec.kind is ParamKind.INT:
            moved = round(moved) if round(moved) != value else value + rng.choice((-1, 1))
        candidate = validate_value(spec, moved)
    except (ParamError, TypeError, ValueError, IndexError):
        return None
    return None if same_value(candidate, value) else candidate


def _step(spec: ParamSpec, value: float, rng: random.Random) -> float:
    up = rng.random() < 0.5
    low = spec.low if spec.low is not None else value - abs(value) - 1
    high = spec.high if spec.high is not None else value + abs(value) + 1
    if spec.log and value > 0:
        moved = value * 2 if up else value / 2
    else:
        span = (high - low) / 10 or 1.0
        moved = value + span if up else value - span
    return min(max(moved, low), high) if math.isfinite(moved) else value

