"""Prompts for proposals: short and explicit for a 1.5B local model, ordered from stable to changing text so that a
local model re-evaluates only the tail of each new prompt (KV-cache prefix reuse). The objective's name and
direction come from the workload; nothing here names a metric.

The prompt runs: rules and the parameter table (never change) -> strategy (per generation) -> experiments before the
shown window, summarised per parameter, and the shown ones, one line each (change only when the window moves, and
by appending) -> what changes every call, kept short: the parameters never tried, the best configurations (the
current one marked), the last error, the optimiser's suggestions and the request.

Given a token budget (the model's context window less the answer), a prompt over it is rendered again more compactly,
step by step (`FITS`), until it fits; a prompt within it is left exactly as it is."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from search.config import STRATEGY_TEXT
from search.iteration import ProposalRequest
from search.objective import Objective
from search.params import ParamKind, ParamSpec, is_site_name, json_value, same_value
from search.prompt_budget import estimate_tokens
from search.state import SearchState
from search.trace import Experiment, Trace

MAX_ERROR_TAIL = 600
MAX_PROGRAM_CHARS = 1500
BEST_SHOWN = 3
# Local models reuse the KV cache of the longest prefix shared with the previous prompt, so the prompt runs from
# what never changes (rules, parameter table) to what changes every call (history, current point).
HISTORY_STEP_DIVISOR = 2
SITES_TEXT = ("A name like {name} is a number in the script's code, the one in [[ ]] on the line shown: change it like "
              "any parameter.")
SITES_SHORT_TEXT = "A name like {name} is a number in the script's code: change it like any parameter."


@dataclass(frozen=True)
class Fit:
    """How compactly a proposal prompt is rendered. The default is the full prompt; the others shorten what grows
    with the trace and the space, for a context window the full prompt would overflow."""

    max_keys: int | None = None  # changed parameters listed per row (history, best, suggestions), then "+k more"
    history_rows: int | None = None  # experiments listed one per line besides the baseline: the best and the latest
    site_lines: bool = True  # a literal site's description: its line of code
    descriptions: bool = True  # every other parameter's description


# Tried in order until the prompt fits the budget; the last is used even if it does not (the LLM may then refuse).
FITS = (Fit(), Fit(max_keys=8), Fit(max_keys=8, history_rows=6), Fit(max_keys=4, history_rows=4, site_lines=False),
        Fit(max_keys=4, history_rows=2, site_lines=False, descriptions=False))


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
    """A value as shown in prompts: numbers to 4 significant digits, in lists too (a small model copies long floats
    badly, and each digit is a token)."""
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(value_text(item) for item in value) + "]"
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


def _param_line(spec: ParamSpec, baseline: Any, fit: Fit = Fit()) -> str:
    scale = ", log scale" if spec.log else ""
    text = f"{spec.name}: {spec.describe_range()}{scale}; baseline {json.dumps(json_value(baseline))}"
    described = fit.site_lines if is_site_name(spec.name) else fit.descriptions
    return text + (f". {spec.description}" if spec.description and described else "")


def changes_text(changes: dict[str, Any], max_keys: int | None = None) -> str:
    # NAME=value rather than JSON: a small model copies JSON it has just read into its answer.
    items = list(changes.items())
    shown = items if max_keys is None else items[:max_keys]
    text = ", ".join(f"{name}={value_text(value)}" for name, value in shown) or "no change"
    return text + (f", +{len(items) - len(shown)} more" if len(shown) < len(items) else "")


def _result_text(experiment: Experiment) -> str:
    return f"{experiment.measured:.4f}" if experiment.measured is not None else experiment.outcome.status


def _experiment_line(experiment: Experiment, max_keys: int | None = None) -> str:
    if experiment.is_baseline:
        return f"#0 baseline -> {_result_text(experiment)}"
    verdict = "kept" if experiment.kept else "discarded"
    return f"#{experiment.index} {changes_text(experiment.changes, max_keys)} -> {_result_text(experiment)} {verdict}"


def _no_proposal(experiment: Experiment) -> bool:
    return experiment.outcome.status == "invalid" and not experiment.changes


def history_lines(experiments: list[Experiment], max_keys: int | None = None) -> list[str]:
    """One line per experiment; a run of iterations that trained nothing (no valid proposal) is one line, so a
    stuck stretch does not fill the prompt. Only the last line changes when an experiment is appended."""
    lines: list[str] = []
    run: list[Experiment] = []
    for experiment in [*experiments, None]:
        if experiment is not None and _no_proposal(experiment):
            run.append(experiment)
            continue
        if run:
            span = f"#{run[0].index}" if len(run) == 1 else f"#{run[0].index}-#{run[-1].index}"
            lines.append(f"{span} no valid proposal, nothing trained")
            run = []
        if experiment is not None:
            lines.append(_experiment_line(experiment, max_keys))
    return lines


def shown_history(trace: Trace, window: int) -> list[Experiment]:
    """The baseline and at least the last `window` experiments. The first one shown moves in steps of
    window/2 rather than one by one, so consecutive prompts share their history as a prefix."""
    rest = trace.experiments[1:]
    step = max(1, window // HISTORY_STEP_DIVISOR)
    start = max(0, len(rest) - window)
    start -= start % step
    return [*trace.experiments[:1], *rest[start:]]


def _fitted_history(trace: Trace, window: int, fit: Fit) -> tuple[list[Experiment], int]:
    """The experiments listed one per line, and the index from which on they are listed rather than summarised.
    With `fit.history_rows`: the baseline, the best experiment and the latest ones, that many in all."""
    shown = shown_history(trace, window)
    rows = fit.history_rows
    if rows is None or len(shown) - 1 <= rows:
        return shown, shown[1].index if len(shown) > 1 else len(trace)
    latest = shown[len(shown) - rows:]
    best = next((e for e in trace.best_configs(1) if not e.is_baseline), None)
    if best is None or rows < 2 or any(e.index == best.index for e in latest):
        return [*shown[:1], *latest], latest[0].index
    return [*shown[:1], best, *latest[1:]], latest[1].index  # the best is older than the latest ones


def _stats_text(stats: list[Any]) -> list[str]:
    return [f"{s.name}: {s.tries}, {s.kept}, {s.crashes}, {s.best_gain:+.4f}" for s in stats]


def _older_lines(trace: Trace, first_shown: int, editable: list[ParamSpec]) -> list[str]:
    """The experiments before the shown window, summarised per parameter (tries, keeps, crashes, best gain). It
    changes only when the window moves, so it sits before the shown lines, in the shared prefix."""
    older = [e for e in trace.experiments[1:] if e.index < first_shown]
    if not older:
        return []
    summary = trace.with_experiments([*trace.experiments[:1], *older])
    tried = [s for s in summary.param_stats([spec.name for spec in editable]).values() if s.tries]
    span = f"#{older[0].index}" if len(older) == 1 else f"#{older[0].index}-#{older[-1].index}"
    lines = [f"Experiments {span}, per parameter changed (tries, kept, crashed, best gain):", *_stats_text(tried)]
    stuck = sum(_no_proposal(e) for e in older)
    if stuck:
        lines.append(f"{stuck} of these {len(older)} iterations had no valid proposal.")
    return [*lines, ""]


def _differences(config: dict[str, Any], baseline: dict[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in config.items() if not same_value(value, baseline.get(name))}


def _untried_line(trace: Trace, editable: list[ParamSpec]) -> list[str]:
    """The parameters no experiment has changed (exploration cues): named, or, while they are the majority, named
    by the few that were tried (the shorter text for the same fact)."""
    stats = trace.param_stats([spec.name for spec in editable]).values()
    untried = [s.name for s in stats if not s.tries]
    tried = [s.name for s in stats if s.tries]
    if not untried:
        return []
    if tried and len(untried) > 2 * len(tried):
        return [f"Never tried yet: every parameter except {', '.join(tried)}."]
    return ["Never tried yet: " + ", ".join(untried) + "."]


def _best_and_current_lines(trace: Trace, state: SearchState, max_keys: int | None = None) -> list[str]:
    """The best few configurations as differences from the baseline, the current one marked; the current one on its
    own line only when it is not among them."""
    name = state.objective.name
    best = [e for e in trace.best_configs(BEST_SHOWN + 1) if not e.is_baseline][:BEST_SHOWN]
    current = state.current.index
    lines = []
    if best:
        lines.append(f"Best configurations so far (differences from the baseline -> {name}):")
        lines += [f"#{e.index} {changes_text(_differences(e.config, state.baseline.config), max_keys)} -> {e.measured:.4f}"
                  + (" (current)" if e.index == current and current else "") for e in best]
    differences = _differences(state.current.config, state.baseline.config)
    if not differences:
        lines.append(f"The current configuration is the baseline ({name} {state.current.value:.4f}).")
    elif not any(e.index == current for e in best):
        where = f"#{current}" if current else "the baseline"
        lines.append(f"The current configuration ({where}, {name} {state.current.value:.4f}) is the baseline with "
                     f"{changes_text(differences, max_keys)}.")
    if not best or f"{best[0].measured:.4f}" != f"{state.best.value:.4f}":
        lines.append(f"Best {name} so far: {state.best.value:.4f}.")
    return lines


def proposal_messages(request: ProposalRequest, *, workload_text: str, program: str = "",
                      token_budget: int | None = None) -> list[dict[str, str]]:
    """The messages asking for one proposal at the request's decision point: the full prompt, or, when it would take
    more than `token_budget` tokens (estimated), the first of the compact renderings (`FITS`) that fits."""
    messages: list[dict[str, str]] = []
    for fit in FITS:
        messages = _render(request, workload_text, program, fit)
        if token_budget is None or estimate_tokens(messages) <= token_budget:
            break
    return messages


def _render(request: ProposalRequest, workload_text: str, program: str, fit: Fit) -> list[dict[str, str]]:
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
    lines += [_param_line(spec, state.baseline.config.get(spec.name, spec.value), fit) for spec in editable]
    sites = [spec.name for spec in editable if is_site_name(spec.name)]
    if sites:
        lines += [(SITES_TEXT if fit.site_lines else SITES_SHORT_TEXT).format(name=sites[0])]
    if request.space.constraints:
        lines += ["Every configuration must satisfy: " + "; ".join(c.text for c in request.space.constraints) + "."]
    if config.frozen:
        lines += ["", "Frozen, do not change: " + ", ".join(sorted(config.frozen))]
    lines += ["", "Strategy: " + STRATEGY_TEXT[config.strategy]]
    if config.guidance:
        lines.append("Guidance: " + config.guidance)
    shown, first_shown = _fitted_history(visible, config.history_window, fit)
    lines += ["", *_older_lines(visible, first_shown, editable)]
    lines += [f"Experiments (changes from the configuration of that time -> {objective.name}, {objective.direction}):"]
    lines += history_lines(shown, fit.max_keys)
    lines += ["", *_untried_line(visible, editable), *_best_and_current_lines(visible, state, fit.max_keys)]
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
                     + "; ".join(f"{chr(65 + i)}) {changes_text(c.changes, fit.max_keys)}"
                                 for i, c in enumerate(request.suggested))
                     + ". Pick one as it is, edit it, or propose your own.")
    if request.offered:
        lines.append("Already proposed this round (propose something else): "
                     + "; ".join(changes_text(c.changes, fit.max_keys) for c in request.offered))
    if request.rejection:
        lines.append(f"The search strategy refused the last proposals: {request.rejection[:300]}. Propose something different.")
    lines.append(f"Propose 1 to {config.max_changes} changes to the current configuration.")
    return [{"role": "system", "content": system}, {"role": "user", "content": "\n".join(lines)}]


def reask_messages(messages: list[dict[str, str]], answer: str, error: str,
                   again: str = "Answer again with one valid JSON object.") -> list[dict[str, str]]:
    """The conversation extended with the invalid answer and the reason it was refused."""
    return [
        *messages,
        {"role": "assistant", "content": answer[:2000]},
        {"role": "user", "content": f"That answer was refused: {error}. {again}"},
    ]
