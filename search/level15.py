"""Level 1.5 in pure Python: the trace summary the LLM reads, validation of its config update (including rules
that make it read the trace: no freezing a parameter it has barely tried, or the one that made the last
improvement), and the deterministic fallback rule (freeze after k futile tries) used when no answer is valid."""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from search.answers import extract_json
from search.config import SearchConfig, Strategy
from search.space import SearchSpace
from search.trace import ParamStats, Trace

FUTILE_TRIES = 3
MIN_TRIES_TO_FREEZE = 2  # a parameter tried fewer times than this has shown nothing yet
MIN_ACTIVE_SHARE = 0.4  # at least this share of parameters stays unfrozen
MIN_ACTIVE = 3

SYSTEM = (
    "You supervise an automated hyperparameter search. You read its statistics and adjust how it searches. "
    "You answer with one JSON object and nothing else."
)
# The worked answer uses names that belong to no workload, so a small model cannot copy it verbatim.
EXAMPLE = ('Answer with JSON like: {"freeze": ["PARAM_A"], "unfreeze": [], "strategy": "exploit", '
           '"guidance": "refine PARAM_B around its best value", "reason": "PARAM_A was tried 4 times and never helped"}')


class ConfigUpdate(BaseModel):
    """What Level 1.5 may change. Anything else in an answer is refused."""

    model_config = ConfigDict(extra="forbid")

    freeze: list[str] = Field(default_factory=list, max_length=32)
    unfreeze: list[str] = Field(default_factory=list, max_length=32)
    strategy: Strategy | None = None
    guidance: str | None = Field(None, max_length=300)
    temperature: float | None = Field(None, ge=0.1, le=1.2)
    n_candidates: int | None = Field(None, ge=1, le=3)
    reason: str = Field("", max_length=400)


def update_schema(space: SearchSpace) -> dict[str, Any]:
    names = space.names
    return {
        "type": "object",
        "properties": {
            "freeze": {"type": "array", "items": {"type": "string", "enum": names}, "maxItems": 8},
            "unfreeze": {"type": "array", "items": {"type": "string", "enum": names}, "maxItems": 8},
            "strategy": {"type": "string", "enum": ["explore", "exploit", "balanced"]},
            "guidance": {"type": "string", "maxLength": 300},
            "reason": {"type": "string", "maxLength": 400},
        },
        "required": ["freeze", "unfreeze", "strategy", "guidance", "reason"],
        "additionalProperties": False,
    }


def max_frozen(n_params: int) -> int:
    """The cap that keeps enough parameters searchable."""
    keep_active = max(MIN_ACTIVE, int(round(n_params * MIN_ACTIVE_SHARE)))
    return max(0, n_params - keep_active)


def apply_update(config: SearchConfig, update: ConfigUpdate, space: SearchSpace, trace: Trace | None = None) -> SearchConfig:
    """The new config, or ValueError naming what is wrong: unknown names, contradictions, the cap, and (given the
    trace) freezing a parameter tried fewer than MIN_TRIES_TO_FREEZE times or one that made the last improvement."""
    names = set(space.names)
    unknown = sorted((set(update.freeze) | set(update.unfreeze)) - names)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; known: {sorted(names)}")
    both = sorted(set(update.freeze) & set(update.unfreeze))
    if both:
        raise ValueError(f"{both} cannot be frozen and unfrozen at once")
    if trace is not None:
        refused = freeze_refusals(trace, space, [n for n in update.freeze if n not in config.frozen])
        if refused:
            raise ValueError("; ".join(refused))
    frozen = (set(config.frozen) | set(update.freeze)) - set(update.unfreeze)
    cap = max_frozen(len(space.params))
    if len(frozen) > cap:
        raise ValueError(f"{len(frozen)} parameters would be frozen; at most {cap} may be, so the search can move")
    guidance = update.guidance if update.guidance is not None else config.guidance
    named = guidance_names_frozen(guidance, frozen)
    if named:
        raise ValueError(f"the guidance {guidance!r} is about {', '.join(named)}, which would be frozen: no level may "
                         f"change a frozen parameter, so guide the search elsewhere or do not freeze it")
    changes: dict[str, Any] = {"frozen": tuple(sorted(frozen))}
    for field in ("strategy", "guidance", "temperature", "n_candidates"):
        value = getattr(update, field)
        if value is not None:
            changes[field] = value
    return config.model_copy(update=changes)


def guidance_names_frozen(guidance: str, frozen: set[str] | tuple[str, ...]) -> list[str]:
    """The frozen parameters a guidance sentence talks about (by name, any case, `_` read as a space or not at all):
    guidance about a parameter nobody may change contradicts the freeze."""
    text = guidance.lower()
    named = []
    for name in sorted(frozen):
        spellings = {name.lower(), name.lower().replace("_", " "), name.lower().replace("_", "")}
        if any(re.search(rf"(?<![a-z0-9_]){re.escape(s)}(?![a-z0-9_])", text) for s in spellings if s):
            named.append(name)
    return named


def decision_reason(before: SearchConfig, after: SearchConfig, trace: Trace, space: SearchSpace, source: str) -> str:
    """Why the config changed, in the facts the validation rules checked (not the model's own words, which can
    contradict them): each newly frozen parameter with its tries, keeps and futile streak; each unfrozen one."""
    stats = trace.param_stats(space.names)
    parts = []
    for name in sorted(set(after.frozen) - set(before.frozen)):
        s = stats.get(name)
        facts = f"tried {s.tries}, kept {s.kept}, futile streak {s.futile_streak}" if s else "no statistics"
        parts.append(f"froze {name} ({facts}; freezing needs >= {MIN_TRIES_TO_FREEZE} tries and not the last "
                     f"improvement)")
    parts += [f"unfroze {name}" for name in sorted(set(before.frozen) - set(after.frozen))]
    if after.strategy != before.strategy:
        parts.append(f"strategy {before.strategy} -> {after.strategy}")
    if after.guidance != before.guidance and after.guidance:
        parts.append(f"guidance {after.guidance!r}")
    return f"{source}: " + ("; ".join(parts) if parts else "no change")


def freeze_refusals(trace: Trace, space: SearchSpace, names: list[str]) -> list[str]:
    """Why freezing each of `names` is not backed by the trace (empty: every freeze is fine)."""
    stats = trace.param_stats(space.names)
    last = trace.experiments[trace.last_improvement()]
    refused = []
    for name in names:
        tries = stats[name].tries if name in stats else 0
        if tries < MIN_TRIES_TO_FREEZE:
            refused.append(f"{name} was tried {tries} time(s), too few to judge it: do not freeze it yet")
        elif not last.is_baseline and name in last.changes:
            refused.append(f"{name} made the last improvement (#{last.index}): do not freeze it")
    return refused


def parse_update(text: str) -> ConfigUpdate:
    """Decode and validate an LLM answer into a ConfigUpdate (ValueError with a short reason)."""
    data = extract_json(text)
    if not isinstance(data, dict):
        raise ValueError("expected a JSON object")
    try:
        return ConfigUpdate.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        raise ValueError(f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from error


def rule_update(config: SearchConfig, trace: Trace, space: SearchSpace, generation: int) -> ConfigUpdate:
    """The deterministic fallback: freeze parameters tried FUTILE_TRIES times in a row without a keep
    (most futile first, within the cap); explore when the last generation kept nothing."""
    stats = trace.param_stats(space.names)
    futile = sorted(
        (s for s in stats.values() if s.futile_streak >= FUTILE_TRIES and s.name not in config.frozen),
        key=lambda s: (-s.futile_streak, s.name),
    )
    futile = [s for s in futile if not freeze_refusals(trace, space, [s.name])]
    room = max_frozen(len(space.params)) - len(config.frozen)
    freeze = [s.name for s in futile[: max(0, room)]]
    recent = trace.in_generation(generation)
    kept = sum(e.kept for e in recent)
    strategy: Strategy = "explore" if recent and kept == 0 else ("exploit" if recent and kept * 3 >= len(recent) else "balanced")
    untried = [s.name for s in stats.values() if s.tries == 0 and s.name not in config.frozen]
    guidance = f"Untried so far: {', '.join(untried[:6])}." if untried and strategy == "explore" else ""
    return ConfigUpdate(freeze=freeze, strategy=strategy, guidance=guidance,
                        reason=f"rule: froze {freeze or 'nothing'} after {FUTILE_TRIES} futile tries; kept {kept}/{len(recent)}")


def _stats_line(stats: ParamStats) -> str:
    return (f"{stats.name}: tried {stats.tries}, kept {stats.kept}, crashed {stats.crashes}, "
            f"best gain {stats.best_gain:.4f}, futile streak {stats.futile_streak}")


def adjust_messages(config: SearchConfig, trace: Trace, space: SearchSpace, generation: int,
                    program: str = "") -> list[dict[str, str]]:
    """The Level-1.5 prompt: per-parameter statistics, the last generation's outcome, the current config."""
    stats = trace.param_stats(space.names)
    counts = trace.counts(trace.in_generation(generation))
    objective = trace.objective
    best = objective.best(e.measured for e in trace.experiments)
    last = trace.experiments[trace.last_improvement()]
    lines = [
        *([f"Research direction from the user: {program.strip()[:1500]}", ""] if program.strip() else []),
        f"The search tries to {objective.describe()}.",
        f"Generation {generation} finished: {counts.experiments} experiments, {counts.kept} kept, {counts.crashes} crashed.",
        f"Best {objective.name} so far: {best:.4f}." if best is not None else "No successful run yet.",
        f"The last improvement came from #{last.index}: {json.dumps(last.changes)}." if not last.is_baseline
        else "No experiment has improved on the baseline yet.",
        "",
        "Per-parameter statistics:",
        *[_stats_line(s) for s in stats.values()],
        "",
        f"Current search config: frozen={list(config.frozen)}, strategy={config.strategy}, guidance={config.guidance!r}",
        f"At most {max_frozen(len(space.params))} parameters may be frozen in total. Freeze only parameters "
        f"tried at least {MIN_TRIES_TO_FREEZE} times that never helped.",
        "",
        "Freeze parameters that keep failing, unfreeze ones worth another look, choose a strategy "
        "(explore, exploit or balanced), and write one sentence of guidance for the next generation.",
        EXAMPLE,
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def describe_update(before: SearchConfig, after: SearchConfig) -> str:
    """A one-line, human-readable diff of two configs."""
    diff = {k: v for k, v in after.model_dump().items() if before.model_dump().get(k) != v}
    return json.dumps(diff, default=list) if diff else "no change"
