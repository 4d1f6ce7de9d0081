"""The mechanism API: the four hooks, the JSON-able views they receive, and the answers they may give.

A mechanism is the source text of ONE top-level class with any subset of these methods (valid Python;
every hook may return None, meaning "no opinion"):

    class Example:
        name = "example"

        def __init__(self):
            self.seen = []  # the mechanism's own state

        def plan(self, ctx):  # before proposing: advice for the LLM's next proposal
            return {"guidance": "try the learning rates", "focus": ["MATRIX_LR"], "avoid": ["DEPTH"],
                    "n_candidates": 2, "temperature": 0.9}

        def screen(self, ctx, candidates):  # after proposing: pick a candidate, or reject them all
            return {"choose": 1}  # or {"reject": True, "reason": "all repeat a recent move"}, or None

        def accept(self, ctx, result, default):  # after training: override the keep/discard decision
            return None  # or True (keep) / False (discard); `default` is the decision without you

        def observe(self, ctx, result):  # after the decision: update your state, return nothing
            self.seen.append(result["changes"])

What the hooks receive (plain dicts and lists):
    ctx["iteration"], ctx["generation"], ctx["seed"]: ints (seed your `random.Random(ctx["seed"])` with it)
    ctx["params"]: list of {"name", "kind": int|float|bool|choice|float_tuple, "value", "low", "high", "choices"}
    ctx["frozen"]: list of parameter names the search may not change
    ctx["best"], ctx["current"], ctx["baseline"]: {"config": {NAME: value}, "val_bpb": float, "index": int}
    ctx["trace"]: list of past experiments, oldest first, each
        {"index", "changes": {NAME: value}, "config": {NAME: value}, "status": "ok"|"crash"|"timeout"|"invalid",
         "val_bpb": float or None, "kept": bool}
    candidates: list of {"changes": {NAME: value}, "hypothesis": str, "config": {NAME: value}}
    result: {"index", "changes", "config", "status", "val_bpb", "kept"} (accept sees "default_kept" instead of "kept")
Lower val_bpb is better. Configs are dicts (unhashable): compare them, or use json.dumps(config, sort_keys=True).

Hooks are pure functions of their arguments and the mechanism's own state, so the state is rebuilt by
replaying `observe` over the trace. Mechanism code runs only in the sandbox (mechanisms/sandbox.py); this
module is the trusted side's contract.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from search.config import SearchConfig
from search.params import ParamSpec
from search.state import SearchState
from search.trace import Experiment, Trace

HOOKS = ("plan", "screen", "accept", "observe")
MAX_GUIDANCE_CHARS = 400
MAX_REASON_CHARS = 300
CONTEXT_TRACE_LIMIT = 200  # experiments shown to a hook; mechanisms keep longer memories in their own state


class HookAnswerError(ValueError):
    """A hook answered something outside the API (garbage): the mechanism is quarantined."""


class PlanAdvice(BaseModel):
    """What `plan` may say about the next proposal. Empty advice changes nothing."""

    model_config = ConfigDict(extra="forbid")

    guidance: str = Field("", max_length=MAX_GUIDANCE_CHARS)
    focus: list[str] = Field(default_factory=list, max_length=32)
    avoid: list[str] = Field(default_factory=list, max_length=32)
    n_candidates: int | None = Field(None, ge=1, le=4)
    temperature: float | None = Field(None, ge=0.0, le=1.5)

    def is_empty(self) -> bool:
        return not (self.guidance or self.focus or self.avoid or self.n_candidates or self.temperature is not None)


class ScreenVerdict(BaseModel):
    """What `screen` may say about the candidates: pick one, or reject them all (the LLM is asked again)."""

    model_config = ConfigDict(extra="forbid")

    choose: int | None = Field(None, ge=0, le=16)
    reject: bool = False
    reason: str = Field("", max_length=MAX_REASON_CHARS)


def parse_plan(answer: Any) -> PlanAdvice | None:
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise HookAnswerError(f"plan must return a dict or None, got {type(answer).__name__}")
    try:
        return PlanAdvice.model_validate(answer)
    except ValidationError as error:
        raise HookAnswerError(f"plan returned an invalid dict: {error.errors()[0]['msg']}") from error


def parse_screen(answer: Any, n_candidates: int) -> ScreenVerdict | None:
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise HookAnswerError(f"screen must return a dict or None, got {type(answer).__name__}")
    try:
        verdict = ScreenVerdict.model_validate(answer)
    except ValidationError as error:
        raise HookAnswerError(f"screen returned an invalid dict: {error.errors()[0]['msg']}") from error
    if verdict.choose is not None and verdict.choose >= n_candidates:
        raise HookAnswerError(f"screen chose candidate {verdict.choose} of {n_candidates}")
    if verdict.choose is None and not verdict.reject:
        return None
    return verdict


def parse_accept(answer: Any) -> bool | None:
    if answer is None or isinstance(answer, bool):
        return answer
    raise HookAnswerError(f"accept must return True, False or None, got {type(answer).__name__}")


def experiment_view(experiment: Experiment) -> dict[str, Any]:
    """The JSON view of one experiment that hooks see (as `result`, and in `ctx["trace"]`)."""
    return {
        "index": experiment.index,
        "generation": experiment.generation,
        "track": experiment.track,
        "changes": experiment.changes,
        "config": experiment.config,
        "hypothesis": experiment.hypothesis,
        "status": experiment.outcome.status,
        "val_bpb": experiment.measured,
        "kept": experiment.kept,
        "default_kept": experiment.default_kept,
    }


def build_context(
    *,
    trace: Trace,
    state: SearchState,
    specs: list[ParamSpec],
    config: SearchConfig,
    generation: int,
    track: int,
    seed: int,
) -> dict[str, Any]:
    """The read-only JSON view a hook receives. `iteration` is the index of the experiment being decided."""

    def point(p: Any) -> dict[str, Any]:
        return {"config": p.config, "val_bpb": p.val_bpb, "index": p.index}

    return {
        "iteration": len(trace),
        "generation": generation,
        "track": track,
        "seed": seed,
        "params": [spec.to_json() for spec in specs],
        "frozen": list(config.frozen),
        "config": config.model_dump(mode="json"),
        "baseline": point(state.baseline),
        "current": point(state.current),
        "best": point(state.best),
        "trace": [experiment_view(e) for e in trace.experiments[-CONTEXT_TRACE_LIMIT:]],
    }


def candidate_view(changes: dict[str, Any], hypothesis: str, config: dict[str, Any]) -> dict[str, Any]:
    """The JSON view of one proposed candidate that `screen` sees."""
    return {"changes": changes, "hypothesis": hypothesis, "config": config}
