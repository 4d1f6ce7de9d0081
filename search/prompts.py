"""Prompts for proposals: short and explicit, so that a 1.5B local model answers well too."""

from __future__ import annotations

import json
from typing import Any

from search.config import STRATEGY_TEXT, SearchConfig
from search.params import ParamSpec, json_value
from search.state import SearchState
from search.trace import Experiment, Trace

SYSTEM = (
    "You tune the hyperparameters of a small GPT training script to minimise val_bpb "
    "(validation bits per byte; lower is better). You answer with one JSON object and nothing else."
)
MAX_ERROR_TAIL = 600


def _param_line(spec: ParamSpec, value: Any) -> str:
    text = f"{spec.name} = {json.dumps(json_value(value))}  ({spec.describe_range()})"
    return text + (f": {spec.description}" if spec.description else "")


def _experiment_line(experiment: Experiment) -> str:
    if experiment.is_baseline:
        result = f"{experiment.measured:.4f}" if experiment.measured is not None else experiment.outcome.status
        return f"#0 baseline -> {result}"
    status = experiment.outcome.status
    result = f"{experiment.measured:.4f}" if experiment.measured is not None else status
    verdict = "kept" if experiment.kept else "discarded"
    return f"#{experiment.index} {json.dumps(experiment.changes)} -> {result} {verdict}"


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
    editable = [spec for spec in specs if spec.name not in frozen]
    lines = [workload_text, "", "Parameters you may change (name = current value, allowed values):"]
    lines += [_param_line(spec, state.current.config.get(spec.name, spec.value)) for spec in editable]
    if frozen:
        lines += ["", "Frozen, do not change: " + ", ".join(sorted(frozen))]
    lines += ["", "Recent experiments, newest last:"]
    lines += [_experiment_line(e) for e in trace.recent(config.history_window)]
    lines += ["", f"Best val_bpb so far: {state.best.val_bpb:.4f} (baseline {state.baseline.val_bpb:.4f})."]
    last = trace.experiments[-1] if trace.experiments else None
    if last is not None and last.outcome.status != "ok":
        tail = (last.outcome.error_tail or last.outcome.log_tail or "")[-MAX_ERROR_TAIL:]
        lines += ["", f"The last run ended with status {last.outcome.status}. Its error output:", tail]
    lines += ["", "Strategy: " + STRATEGY_TEXT[config.strategy]]
    if config.guidance:
        lines.append("Guidance: " + config.guidance)
    if plan_guidance:
        lines.append("Advice: " + plan_guidance)
    if focus:
        lines.append("Prefer changing: " + ", ".join(focus))
    if avoid:
        lines.append("Do not change: " + ", ".join(avoid))
    example_spec = editable[0] if editable else specs[0]
    example = {"changes": {example_spec.name: json_value(example_spec.value)}, "hypothesis": "why this should lower val_bpb"}
    lines += [
        "",
        "Propose 1 to 3 changes that you expect to lower val_bpb. Do not repeat a configuration already tried.",
        'Answer with JSON of this form: ' + json.dumps(example),
    ]
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


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
