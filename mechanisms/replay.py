"""Turn a trace into what mechanisms saw: per past experiment the ctx before it, its result view and candidates.

The inner loop uses `replay_history` to rebuild mechanism state (MechanismRuntime.rebuild), and validation uses
`replay_steps` to drive a new mechanism through a real trace. Both rebuild each decision's context with the same
builder the live loop uses (search/context.py): tracks numbered as they ran, restart windows, each generation's
search config and the per-decision seeds. States are folded once per track, so a replay is linear in the trace.
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from search.config import SearchConfig
from search.context import DecisionPoint, build_context, candidate_view, decision_points, experiment_view, local_history
from search.params import ParamError, ParamKind, ParamSpec, json_value, same_value, validate_value
from search.space import SearchSpace
from search.state import BaselineFailed, SearchState
from search.trace import Trace, config_with, same_config


@dataclass(frozen=True)
class ReplayStep:
    """One past decision: the ctx the hooks saw, the experiment's result view, and candidates for screen."""

    ctx: dict[str, Any]
    result: dict[str, Any]
    candidates: list[dict[str, Any]]


@dataclass(frozen=True)
class ReplaySource:
    """What identifies a meta-run's decisions: its id and seed (hook seeds), and the config for old traces."""

    meta_run_id: str = "replay"
    run_seed: int = 0
    fallback_config: SearchConfig = SearchConfig()
    restart_each_generation: bool = False


def contexts(trace: Trace, space: SearchSpace, source: ReplaySource) -> Iterator[tuple[DecisionPoint, dict[str, Any], dict[str, Any]]]:
    """(point, ctx, result view) of every decided experiment, exactly as the live loop built them."""
    try:
        states = list(trace.states())
    except BaselineFailed:
        return  # without a measured baseline the inner loop never decided anything
    running: dict[tuple[int, int], SearchState] = {}
    for experiment, point in decision_points(trace, source.meta_run_id, source.run_seed, source.fallback_config,
                                             source.restart_each_generation):
        key = (point.generation, point.track)
        state = running.get(key) or states[point.start - 1]
        local = local_history(trace, point)
        yield point, build_context(local, state, space, point), experiment_view(experiment, trace.objective)
        running[key] = state.after(experiment.model_copy(update={"index": point.index}))


def replay_history(trace: Trace, space: SearchSpace, source: ReplaySource | None = None) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(ctx, result) per experiment after the baseline, for MechanismRuntime.rebuild."""
    return [(ctx, result) for _, ctx, result in contexts(trace, space, source or ReplaySource())]


def replay_steps(trace: Trace, space: SearchSpace, source: ReplaySource | None = None, *, alternatives: int = 2) -> list[ReplayStep]:
    """Replay steps for validation: candidates are the experiment's own changes first, then `alternatives`
    synthetic one-parameter moves from the current point (deterministic per step)."""
    source = source or ReplaySource()
    steps = []
    for point, ctx, result in contexts(trace, space, source):
        actual = candidate_view(result["changes"], result["hypothesis"], result["config"], result["proposed_by"] or "llm")
        rng = random.Random(source.run_seed * 1_000_003 + ctx["iteration"])
        current = ctx["current"]["config"]
        synthetic = synthetic_candidates(space.params, current, point.config.frozen, rng, alternatives,
                                         exclude=[result["config"]])
        steps.append(ReplayStep(ctx=ctx, result=result, candidates=[actual, *synthetic]))
    return steps


def synthetic_candidates(
    specs: Sequence[ParamSpec],
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
        value = neighbour_value(spec, current.get(spec.name, spec.value), rng)
        if value is None:
            continue
        changes = {spec.name: json_value(value)}
        config = config_with(current, changes)
        if any(same_config(config, other) for other in [*exclude, *(c["config"] for c in candidates)]):
            continue
        hypothesis = f"synthetic alternative: move {spec.name} to {json_value(value)!r}"
        candidates.append(candidate_view(changes, hypothesis, config, "synthetic"))
    return candidates


def neighbour_value(spec: ParamSpec, value: Any, rng: random.Random) -> Any:
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
