"""Level 1.5 in pure Python: the trace summary the LLM reads, validation of its config update, and the
deterministic fallback rule (freeze a parameter after k futile tries) used when the answer is invalid."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from search.answers import extract_json
from search.config import SearchConfig, Strategy
from search.params import ParamSpec
from search.trace import ParamStats, Trace, param_stats

FUTILE_TRIES = 3
MIN_ACTIVE_SHARE = 0.4  # at least this share of parameters stays unfrozen
MIN_ACTIVE = 3

SYSTEM = (
    "You supervise an automated hyperparameter search. You read its statistics and adjust how it searches. "
    "You answer with one JSON object and nothing else."
)


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


def update_schema(specs: list[ParamSpec]) -> dict[str, Any]:
    names = [spec.name for spec in specs]
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


def apply_update(config: SearchConfig, update: ConfigUpdate, specs: list[ParamSpec]) -> SearchConfig:
    """The new config, or ValueError naming what is wrong (unknown names, contradictions, the cap)."""
    names = {spec.name for spec in specs}
    unknown = sorted((set(update.freeze) | set(update.unfreeze)) - names)
    if unknown:
        raise ValueError(f"unknown parameters {unknown}; known: {sorted(names)}")
    both = sorted(set(update.freeze) & set(update.unfreeze))
    if both:
        raise ValueError(f"{both} cannot be frozen and unfrozen at once")
    frozen = (set(config.frozen) | set(update.freeze)) - set(update.unfreeze)
    cap = max_frozen(len(specs))
    if len(frozen) > cap:
        raise ValueError(f"{len(frozen)} parameters would be frozen; at most {cap} may be, so the search can move")
    changes: dict[str, Any] = {"frozen": tuple(sorted(frozen))}
    for field in ("strategy", "guidance", "temperature", "n_candidates"):
        value = getattr(update, field)
        if value is not None:
            changes[field] = value
    return config.model_copy(update=changes)


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


def rule_update(config: SearchConfig, trace: Trace, specs: list[ParamSpec], generation: int) -> ConfigUpdate:
    """The deterministic fallback: freeze parameters tried FUTILE_TRIES times in a row without a keep
    (most futile first, within the cap); explore when the last generation kept nothing."""
    stats = param_stats(trace, [spec.name for spec in specs])
    futile = sorted(
        (s for s in stats.values() if s.futile_streak >= FUTILE_TRIES and s.name not in config.frozen),
        key=lambda s: (-s.futile_streak, s.name),
    )
    room = max_frozen(len(specs)) - len(config.frozen)
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


def adjust_messages(config: SearchConfig, trace: Trace, specs: list[ParamSpec], generation: int) -> list[dict[str, str]]:
    """The Level-1.5 prompt: per-parameter statistics, the last generation's outcome, the current config."""
    stats = param_stats(trace, [spec.name for spec in specs])
    recent = trace.in_generation(generation)
    kept = sum(e.kept for e in recent)
    crashes = sum(e.outcome.status in ("crash", "timeout") for e in recent)
    best = min((e.measured for e in trace.experiments if e.measured is not None), default=None)
    lines = [
        f"Generation {generation} finished: {len(recent)} experiments, {kept} kept, {crashes} crashed.",
        f"Best val_bpb so far: {best:.4f}." if best is not None else "No successful run yet.",
        "",
        "Per-parameter statistics:",
        *[_stats_line(s) for s in stats.values()],
        "",
        f"Current search config: frozen={list(config.frozen)}, strategy={config.strategy}, guidance={config.guidance!r}",
        f"At most {max_frozen(len(specs))} parameters may be frozen in total.",
        "",
        "Freeze parameters that keep failing, unfreeze ones worth another look, choose a strategy "
        "(explore, exploit or balanced), and write one sentence of guidance for the next generation.",
        'Answer with JSON like: {"freeze": ["WEIGHT_DECAY"], "unfreeze": [], "strategy": "exploit", '
        '"guidance": "refine the learning rates around the best values", "reason": "weight decay never helped"}',
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def describe_update(before: SearchConfig, after: SearchConfig) -> str:
    """A one-line, human-readable diff of two configs."""
    diff = {k: v for k, v in after.model_dump().items() if before.model_dump().get(k) != v}
    return json.dumps(diff, default=list) if diff else "no change"
