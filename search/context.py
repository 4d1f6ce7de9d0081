"""What a decision sees: the point of the search it is made at, the history visible from there, and the read-only
JSON context a mechanism hook receives. One builder serves the live loop and replay, so a replayed hook sees byte
for byte what it saw live (tracks numbered as they ran, restart windows and each generation's search config)."""

from __future__ import annotations

import hashlib
from typing import Any

from pydantic import BaseModel, ConfigDict

from search.config import SearchConfig
from search.objective import Objective
from search.space import SearchSpace
from search.state import Point, SearchState
from search.trace import Experiment, Trace

API_VERSION = 2
CONTEXT_TRACE_LIMIT = 200  # experiments shown to a hook; mechanisms keep longer memories in their own state
# Keys of a view that a metric's own name must not shadow (the value is always under "value" as well).
RESERVED_VIEW_KEYS = frozenset({"index", "generation", "track", "changes", "config", "hypothesis", "status", "value",
                                "kept", "default_kept", "proposed_by", "reason", "source", "iteration", "seed"})


def accept_view(view: dict[str, Any]) -> dict[str, Any]:
    """What accept sees of an experiment: its view before the decision, so without "kept" (accept decides it;
    "default_kept" is the loop's default). The live loop builds it so (search/iteration.py); a replay of a recorded
    view must hide "kept" too, or a mechanism passes validation and fails live."""
    return {key: value for key, value in view.items() if key != "kept"}


class DecisionPoint(BaseModel):
    """Where one decision is made: the generation, track and iteration, how that generation began, and the seeds."""

    model_config = ConfigDict(frozen=True)

    meta_run_id: str
    run_seed: int
    generation: int
    track: int
    iteration: int
    start: int  # the trace length when the generation began
    visible_from: int = 0
    config: SearchConfig

    @property
    def index(self) -> int:
        """The index the decided experiment has while its track runs (tracks are renumbered when merged)."""
        return self.start + self.iteration

    @property
    def hook_seed(self) -> int:
        """The seed a mechanism's RNG gets for this decision: deterministic, so resumed runs decide the same."""
        digest = hashlib.sha256(f"{self.meta_run_id}/{self.run_seed}/{self.index}/{self.track}".encode()).digest()
        return int.from_bytes(digest[:4], "big")


def local_history(trace: Trace, point: DecisionPoint) -> Trace:
    """The trace as the track of `point` saw it just before deciding: everything before its generation, then its
    own earlier experiments, numbered from the generation's start (identity on a track's own live trace)."""
    own = [e for e in trace.experiments[point.start:]
           if e.generation == point.generation and e.track == point.track and e.iteration < point.iteration]
    own.sort(key=lambda e: e.iteration)
    renumbered = [e if e.index == point.start + i else e.model_copy(update={"index": point.start + i})
                  for i, e in enumerate(own)]
    return trace.with_experiments([*trace.experiments[: point.start], *renumbered])


def visible_history(local: Trace, visible_from: int) -> Trace:
    """What prompts and hooks may see: the baseline and the experiments from `visible_from` on (restart arm)."""
    if visible_from <= 1:
        return local
    return local.with_experiments([*local.experiments[:1], *local.experiments[visible_from:]])


def experiment_view(experiment: Experiment, objective: Objective) -> dict[str, Any]:
    """The JSON view of one experiment that hooks see (as `result`, and in `ctx["trace"]`)."""
    view = {
        "index": experiment.index,
        "generation": experiment.generation,
        "track": experiment.track,
        "changes": experiment.changes,
        "config": experiment.config,
        "hypothesis": experiment.hypothesis,
        "proposed_by": experiment.proposed_by,
        "status": experiment.outcome.status,
        "value": experiment.measured,
        "kept": experiment.kept,
        "default_kept": experiment.default_kept,
    }
    return _with_metric_name(view, objective, experiment.measured)


def point_view(point: Point, objective: Objective) -> dict[str, Any]:
    return _with_metric_name({"config": point.config, "value": point.value, "index": point.index}, objective, point.value)


def _with_metric_name(view: dict[str, Any], objective: Objective, value: float | None) -> dict[str, Any]:
    # Mechanisms written for one workload read the metric by its name (API v1: result["val_bpb"]).
    if objective.name not in RESERVED_VIEW_KEYS:
        view[objective.name] = value
    return view


def build_context(local: Trace, state: SearchState, space: SearchSpace, point: DecisionPoint) -> dict[str, Any]:
    """The read-only JSON view a hook receives before the decision at `point`. `local` is `local_history` there."""
    visible = visible_history(local, point.visible_from)
    objective = local.objective
    return {
        "api": API_VERSION,
        "iteration": point.index,
        "generation": point.generation,
        "track": point.track,
        "seed": point.hook_seed,
        "objective": {"name": objective.name, "goal": objective.goal},
        "params": [spec.to_json() for spec in space.params],
        "frozen": list(point.config.frozen),
        "fixed": list(space.fixed),
        "constraints": [constraint.text for constraint in space.constraints],
        "search_config": point.config.model_dump(mode="json"),
        "baseline": point_view(state.baseline, objective),
        "current": point_view(state.current, objective),
        "best": point_view(state.best, objective),
        "trace": [experiment_view(e, objective) for e in visible.experiments[-CONTEXT_TRACE_LIMIT:]],
    }


def candidate_view(changes: dict[str, Any], hypothesis: str, config: dict[str, Any], proposed_by: str) -> dict[str, Any]:
    """The JSON view of one proposed candidate that `screen` sees."""
    return {"changes": changes, "hypothesis": hypothesis, "config": config, "proposed_by": proposed_by}


def decision_points(trace: Trace, meta_run_id: str, run_seed: int, fallback: SearchConfig,
                    restart_each_generation: bool = False) -> list[tuple[Experiment, DecisionPoint]]:
    """Every decided experiment of a (merged) trace with the point it was decided at, rebuilt from the trace's
    generation records (traces without them: the generation's first experiment is its start, `fallback` its config)."""
    first_index: dict[int, int] = {}
    for experiment in trace.decided:
        first_index.setdefault(experiment.generation, experiment.index)
    points = []
    for experiment in trace.decided:
        record = trace.generation_start(experiment.generation)
        start = record.start if record else first_index[experiment.generation]
        visible_from = record.visible_from if record else (start if restart_each_generation else 0)
        points.append((experiment, DecisionPoint(
            meta_run_id=meta_run_id, run_seed=run_seed, generation=experiment.generation, track=experiment.track,
            iteration=experiment.iteration, start=start, visible_from=visible_from,
            config=record.config if record else fallback,
        )))
    return points
