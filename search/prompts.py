"""Prompts for proposals: short and explicit for a 1.5B local model, ordered from stable to changing text so that a
local model re-evaluates only the tail of each new prompt (KV-cache prefix reuse). The objective's name and
direction come from the workload; nothing here names a metric."""

from __future__ import annotations

import json
from typing import Any

from search.config import STRATEGY_TEXT
from search.iteration import ProposalRequest
from search.objective import Objective
from search.params import ParamKind, ParamSpec, json_value, same_value
from search.state import SearchState
from search.trace import Experiment, Trace

MAX_ERROR_TAIL = 600
MAX_PROGRAM_CHARS = 1500
BEST_SHOWN = 3
# Local models reuse the KV cache of the longest prefix shared with the previous prompt, so the prompt runs from
# what never changes (rules, parameter table) to what changes every call (history, current point).
HISTORY_STEP_DIVISOR = 2


def system_text(objective: Objective, max_changes: int) -> str:
    return (
        f"You tune the hyperparameters of a training script to {objective.describe()}. "
        f"Answer with one JSON object: 1 to {max_changes} parameters to change with their new values, and a hypothesis "
        "of at most 12 words. Each new value must differ from the current value and stay in its allowed range. "
        "Never repeat an experiment."
    )


def _number(value: float) -> float | int:
    rounded = float(f"{value:.3g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded


def value_text(value: Any) -> str:
    """A value as shown in prompts: numbers to 4 significant digits (a small model copies long floats badly)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return json.dumps(json_value(value))


def _example_value(spec: ParamSpec) -> Any:
    """A value different from the baseline and inside the range, for the worked example."""
    if spec.kind is ParamKind.CHOICE:
        return next((c for c in spec.choices or () if c != spec.value), spec.value)
    if spec.kind is ParamKind.BOOL:
        return not spec.value
    value = float(spec.value)  # type: ignore[arg-type]
    high = spec.high if spec.high is not None else value * 4 + 1
    low = spec.low if spec.low is not None else value / 4 - 1
    candidate = value * 2 if 0 < value * 2 <= high else (value + low) / 2 if value > low else (value + high) / 2
    return int(round(candidate)) if spec.kind is ParamKind.INT else _number(candidate)


def example_text(editable: list[ParamSpec]) -> str:
    """One worked answer, on the first log-scale float of the workload (neutral: it claims no effect)."""
    preferred = [s for s in editable if s.kind is ParamKind.FLOAT and s.log] or [s for s in editable if s.kind is not ParamKind.FLOAT_TUPLE]
    spec = (preferred or editable)[0]
    value: Any = json_value(spec.value) if spec.kind is ParamKind.FLOAT_TUPLE else _example_value(spec)
    answer = {"changes": {spec.name: value}, "hypothesis": f"a {'higher' if _is_higher(value, spec.value) else 'different'} {spec.name} may help"}
    return f"Example: if {spec.name} is {json.dumps(json_value(spec.value))} now, an answer could be {json.dumps(answer)}"


def _is_higher(new: Any, old: Any) -> bool:
    return isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(new, bool) and new > old


def _param_line(spec: ParamSpec, baseline: Any) -> str:
    scale = ", log scale" if spec.log else ""
    text = f"{spec.name}: {spec.describe_range()}{scale}; baseline {json.dumps(json_value(baseline))}"
    return text + (f". {spec.description}" if spec.description else "")


def changes_text(changes: dict[str, Any]) -> str:
    # NAME=value rather than JSON: a small model copies JSON it has just read into its answer.
    return ", ".join(f"{name}={value_text(value)}" for name, value in changes.items()) or "no change"


def _experiment_line(experiment: Experiment) -> str:
    result = f"{experiment.measured:.4f}" if experiment.measured is not None else experiment.outcome.status
    if experiment.is_baseline:
        return f"#0 baseline -> {result}"
    verdict = "kept" if experiment.kept else "discarded"
    return f"#{experiment.index} {changes_text(experiment.changes)} -> {result} {verdict}"


def shown_history(trace: Trace, window: int) -> list[Experiment]:
    """The baseline and at least the last `window` experiments. The first one shown moves in steps of
    window/2 rather than one by one, so consecutive prompts share their history as a prefix."""
    rest = trace.experiments[1:]
    step = max(1, window // HISTORY_STEP_DIVISOR)
    start = max(0, len(rest) - window)
    start -= start % step
    return [*trace.experiments[:1], *rest[start:]]


def _differences(config: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in config.items() if not same_value(value, baseline.get(name))}


def _current_text(state: SearchState) -> str:
    name = state.objective.name
    differences = _differences(state.current.config, state.baseline.config)
    if not differences:
        return f"The current configuration is the baseline ({name} {state.current.value:.4f})."
    where = f"#{state.current.index}" if state.current.index else "the baseline"
    return (f"The current configuration ({where}, {name} {state.current.value:.4f}) is the baseline with "
            f"{changes_text(differences)}.")


def _stats_lines(trace: Trace, editable: list[ParamSpec]) -> list[str]:
    """Per-parameter tries, keeps, crashes and best gain, and the parameters never tried (exploration cues)."""
    stats = trace.param_stats([spec.name for spec in editable])
    tried = [s for s in stats.values() if s.tries]
    lines = []
    if tried:
        lines.append("Per parameter so far (tries, kept, crashed, best gain):")
        lines += [f"{s.name}: {s.tries}, {s.kept}, {s.crashes}, {s.best_gain:+.4f}" for s in tried]
    untried = [s.name for s in stats.values() if not s.tries]
    if untried:
        lines.append("Never tried yet: " + ", ".join(untried) + ".")
    return lines


def _best_lines(trace: Trace, state: SearchState) -> list[str]:
    best = [e for e in trace.best_configs(BEST_SHOWN + 1) if not e.is_baseline][:BEST_SHOWN]
    if not best:
        return []
    lines = [f"Best configurations so far (differences from the baseline -> {state.objective.name}):"]
    lines += [f"#{e.index} {changes_text(_differences(e.config, state.baseline.config))} -> {e.measured:.4f}" for e in best]
    return lines


def proposal_messages(request: ProposalRequest, *, workload_text: str, program: str = "") -> list[dict[str, str]]:
    """The messages asking for one proposal at the request's decision point."""
    config = request.point.config
    state = request.state
    objective = state.objective
    visible = request.visible
    editable = request.space.editable(config.frozen) or list(request.space.params)
    system = "\n".join([system_text(objective, config.max_changes), example_text(editable)])
    lines = [workload_text]
    if program.strip():
        lines += ["", "Research direction from the user: " + program.strip()[:MAX_PROGRAM_CHARS]]
    lines += ["", "Parameters you may change (allowed values; baseline value):"]
    lines += [_param_line(spec, state.baseline.config.get(spec.name, spec.value)) for spec in editable]
    if request.space.constraints:
        lines += ["Every configuration must satisfy: " + "; ".join(c.text for c in request.space.constraints) + "."]
    if config.frozen:
        lines += ["", "Frozen, do not change: " + ", ".join(sorted(config.frozen))]
    lines += ["", "Strategy: " + STRATEGY_TEXT[config.strategy]]
    if config.guidance:
        lines.append("Guidance: " + config.guidance)
    lines += ["", f"Experiments so far (changes from the configuration of that time -> {objective.name}, {objective.direction}):"]
    lines += [_experiment_line(e) for e in shown_history(visible, config.history_window)]
    lines += ["", *_stats_lines(visible, editable), *_best_lines(visible, state)]
    lines += ["", _current_text(state), f"Best {objective.name} so far: {state.best.value:.4f}."]
    last = visible.experiments[-1] if visible.experiments else None
    if last is not None and last.outcome.status not in ("ok", "invalid", "stopped"):
        tail = (last.outcome.error_tail or last.outcome.log_tail or "")[-MAX_ERROR_TAIL:]
        lines += [f"The last run ended with status {last.outcome.status}. Its error output:", tail]
    advice = request.advice
    if advice.guidance:
        lines.append("Advice: " + advice.guidance)
    if advice.focus:
        lines.append("Prefer changing: " + ", ".join(advice.focus))
    if advice.avoid:
        lines.append("Do not change: " + ", ".join(advice.avoid))
    if request.suggested:
        lines.append(f"A classical optimiser ({request.optimiser_note}) suggests, as changes to the current configuration: "
                     + "; ".join(f"{chr(65 + i)}) {changes_text(c.changes)}" for i, c in enumerate(request.suggested))
                     + ". Pick one as it is, edit it, or propose your own.")
    if request.offered:
        lines.append("Already proposed this round (propose something else): "
                     + "; ".join(changes_text(c.changes) for c in request.offered))
    if request.rejection:
        lines.append(f"The search strategy refused the last proposals: {request.rejection[:300]}. Propose something different.")
    lines.append(f"Propose 1 to {config.max_changes} changes to the current configuration.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def reask_messages(messages: list[dict[str, str]], answer: str, error: str) -> list[dict[str, str]]:
    """The conversation extended with the invalid answer and the reason it was refused."""
    return [
        *messages,
        {"role": "assistant", "content": answer[:2000]},
        {"role": "user", "content": f"That answer was refused: {error}. Answer again with one valid JSON object."},
    ]
