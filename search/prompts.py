"""Prompts for proposals: short and explicit for a 1.5B local model, ordered from stable to changing text
so that a local model re-evaluates only the tail of each new prompt (KV-cache prefix reuse)."""

from __future__ import annotations

import json
from typing import Any

from search.config import STRATEGY_TEXT, SearchConfig
from search.params import ParamKind, ParamSpec, json_value, same_value
from search.state import SearchState
from search.trace import Experiment, Trace

SYSTEM = (
    "You tune the hyperparameters of a training script to minimise val_bpb (lower is better). "
    "Answer with one JSON object: 1 to 3 parameters to change with their new values, and a hypothesis of at most "
    "12 words. Each new value must differ from the current value and stay in its allowed range. "
    "Never repeat an experiment."
)
MAX_ERROR_TAIL = 600
# Local models reuse the KV cache of the longest prefix shared with the previous prompt, so the prompt
# runs from what never changes (rules, parameter table) to what changes every call (history, current point).
HISTORY_STEP_DIVISOR = 2


def _number(value: float) -> float | int:
    rounded = float(f"{value:.3g}")
    return int(rounded) if rounded.is_integer() and abs(rounded) < 1e15 else rounded


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


def _example(editable: list[ParamSpec]) -> str:
    preferred = [s for s in editable if s.kind is ParamKind.FLOAT and s.log] or [s for s in editable if s.kind is not ParamKind.FLOAT_TUPLE]
    spec = (preferred or editable)[0]
    if spec.kind is ParamKind.FLOAT_TUPLE:
        value: Any = json_value(spec.value)
    else:
        value = _example_value(spec)
    answer = {"changes": {spec.name: value}, "hypothesis": f"a {'higher' if _is_higher(value, spec.value) else 'different'} {spec.name} should lower val_bpb"}
    return f"Example: if {spec.name} is {json.dumps(json_value(spec.value))} now, an answer could be {json.dumps(answer)}"


def _is_higher(new: Any, old: Any) -> bool:
    return isinstance(new, (int, float)) and isinstance(old, (int, float)) and not isinstance(new, bool) and new > old


def _param_line(spec: ParamSpec, baseline: Any) -> str:
    scale = ", log scale" if spec.log else ""
    text = f"{spec.name}: {spec.describe_range()}{scale}; baseline {json.dumps(json_value(baseline))}"
    return text + (f". {spec.description}" if spec.description else "")


def _changes_text(changes: dict[str, Any]) -> str:
    # NAME=value rather than JSON: a small model copies JSON it has just read into its answer.
    return ", ".join(f"{name}={json.dumps(json_value(value))}" for name, value in changes.items()) or "no change"


def _experiment_line(experiment: Experiment) -> str:
    result = f"{experiment.measured:.4f}" if experiment.measured is not None else experiment.outcome.status
    if experiment.is_baseline:
        return f"#0 baseline -> {result}"
    verdict = "kept" if experiment.kept else "discarded"
    return f"#{experiment.index} {_changes_text(experiment.changes)} -> {result} {verdict}"


def shown_history(trace: Trace, window: int) -> list[Experiment]:
    """The baseline and at least the last `window` experiments. The first one shown moves in steps of
    window/2 rather than one by one, so consecutive prompts share their history as a prefix."""
    rest = trace.experiments[1:]
    step = max(1, window // HISTORY_STEP_DIVISOR)
    start = max(0, len(rest) - window)
    start -= start % step
    return [*trace.experiments[:1], *rest[start:]]


def _current_text(state: SearchState, specs: list[ParamSpec]) -> str:
    current, baseline = state.current.config, state.baseline.config
    differences = {
        spec.name: current[spec.name]
        for spec in specs
        if spec.name in current and not same_value(current[spec.name], baseline.get(spec.name, spec.value))
    }
    where = f"#{state.current.index}" if state.current.index else "the baseline"
    if not differences:
        return f"The current configuration is the baseline (val_bpb {state.current.val_bpb:.4f})."
    return f"The current configuration ({where}, val_bpb {state.current.val_bpb:.4f}) is the baseline with {_changes_text(differences)}."


def proposal_messages(
    *,
    workload_text: str,
    specs: list[ParamSpec],
    state: SearchState,
    trace: Trace,
    config: SearchConfig,
    plan_guidance: str = "",
    focus: list[str] | None = None,
    avoid: list[str] | None = None,
) -> list[dict[str, str]]:
    """The messages asking for one proposal from the current point of the search."""
    frozen = set(config.frozen)
    editable = [spec for spec in specs if spec.name not in frozen] or specs
    system = "\n".join([SYSTEM, _example(editable)])
    lines = [workload_text, "", "Parameters you may change (allowed values; baseline value):"]
    lines += [_param_line(spec, state.baseline.config.get(spec.name, spec.value)) for spec in editable]
    if frozen:
        lines += ["", "Frozen, do not change: " + ", ".join(sorted(frozen))]
    lines += ["", "Strategy: " + STRATEGY_TEXT[config.strategy]]
    if config.guidance:
        lines.append("Guidance: " + config.guidance)
    lines += ["", "Experiments so far (changes from the configuration of that time -> val_bpb):"]
    lines += [_experiment_line(e) for e in shown_history(trace, config.history_window)]
    lines += ["", _current_text(state, specs), f"Best val_bpb so far: {state.best.val_bpb:.4f}."]
    last = trace.experiments[-1] if trace.experiments else None
    if last is not None and last.outcome.status not in ("ok", "invalid"):
        tail = (last.outcome.error_tail or last.outcome.log_tail or "")[-MAX_ERROR_TAIL:]
        lines += [f"The last run ended with status {last.outcome.status}. Its error output:", tail]
    if plan_guidance:
        lines.append("Advice: " + plan_guidance)
    if focus:
        lines.append("Prefer changing: " + ", ".join(focus))
    if avoid:
        lines.append("Do not change: " + ", ".join(avoid))
    lines.append("Propose 1 to 3 changes to the current configuration.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def reask_messages(messages: list[dict[str, str]], answer: str, error: str) -> list[dict[str, str]]:
    """The conversation extended with the invalid answer and the reason it was refused."""
    return [
        *messages,
        {"role": "assistant", "content": answer[:2000]},
        {"role": "user", "content": f"That answer was refused: {error}. Answer again with one valid JSON object."},
    ]


def screen_rejection_messages(messages: list[dict[str, str]], reason: str) -> list[dict[str, str]]:
    """The conversation extended with why a search mechanism refused every candidate."""
    return [
        *messages,
        {"role": "user", "content": f"Those proposals were refused by the search strategy: {reason[:300]}. Propose something different."},
    ]
