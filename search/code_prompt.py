"""Prompts for free-form edits (`edits = code`, meant for API models): the current script, what was tried, and the
SEARCH/REPLACE format; and the one fix attempt after a crash, with its traceback."""

from __future__ import annotations

from search.code_edits import DIVIDER, MAX_BLOCKS, REPLACE_MARK, SEARCH_MARK, SOURCE_KEY, shown_source
from search.config import STRATEGY_TEXT
from search.iteration import Candidate, ProposalRequest
from search.objective import Objective
from search.prompts import MAX_ERROR_TAIL, MAX_PROGRAM_CHARS, changes_text, shown_history
from search.trace import Experiment, RunOutcome

MAX_SHOWN_SOURCE = 30_000  # characters of the script in a prompt (an API model's context, not a 1.5B model's)
FORMAT_TEXT = (f"Answer with a line `HYPOTHESIS: <at most 15 words>`, then 1 to {MAX_BLOCKS} blocks, each:\n"
               f"{SEARCH_MARK}\n<lines copied exactly from the current script>\n{DIVIDER}\n<their replacement>\n"
               f"{REPLACE_MARK}\n"
               "A SEARCH part must match exactly one place of the script, indentation included.")
REASK_TEXT = "Answer again with HYPOTHESIS and SEARCH/REPLACE blocks."


def code_system_text(objective: Objective, script_name: str, read_only: tuple[str, ...]) -> str:
    others = f" {', '.join(read_only)} {'is' if len(read_only) == 1 else 'are'} read-only." if read_only else ""
    return (f"You improve a training script, {script_name}, to {objective.describe()}, by editing its code. "
            f"Only {script_name} may be edited.{others} Keep it valid Python that still prints its results. "
            f"Make one focused change per answer; never repeat an experiment.\n{FORMAT_TEXT}")


def _experiment_line(experiment: Experiment) -> str:
    if experiment.is_baseline:
        what = "baseline"
    elif experiment.code is not None:
        what = f"code edit: {experiment.hypothesis or 'no hypothesis'}"
        changed = {k: v for k, v in experiment.changes.items() if k != SOURCE_KEY}
        what += f" (block: {changes_text(changed)})" if changed else ""
    elif experiment.outcome.status == "invalid" and not experiment.changes:
        what = "no valid proposal"
    else:
        what = changes_text(experiment.changes)
    result = f"{experiment.measured:.4f}" if experiment.measured is not None else experiment.outcome.status
    verdict = "" if experiment.is_baseline else (" kept" if experiment.kept else " discarded")
    return f"#{experiment.index} {what} -> {result}{verdict}"


def code_messages(request: ProposalRequest, *, source: str, script_name: str, read_only: tuple[str, ...],
                  workload_text: str, program: str = "") -> list[dict[str, str]]:
    """The messages asking for one free-form edit of `source` (the current point's script)."""
    config = request.point.config
    state = request.state
    objective = state.objective
    visible = request.visible
    lines = [workload_text]
    if program.strip():
        lines += ["", "Research direction from the user: " + program.strip()[:MAX_PROGRAM_CHARS]]
    lines += ["", "Strategy: " + STRATEGY_TEXT[config.strategy]]
    if config.guidance:
        lines.append("Guidance: " + config.guidance)
    lines += ["", f"Experiments (each edits the current script of its time -> {objective.name}, {objective.direction}):"]
    lines += [_experiment_line(e) for e in shown_history(visible, config.history_window)]
    lines.append(f"Best {objective.name} so far: {state.best.value:.4f}; the current script "
                 f"({'#' + str(state.current.index) if state.current.index else 'the baseline'}) has "
                 f"{state.current.value:.4f}.")
    last = visible.experiments[-1] if visible.experiments else None
    if last is not None and last.outcome.status not in ("ok", "invalid", "stopped"):
        tail = (last.outcome.error_tail or last.outcome.log_tail or "")[-MAX_ERROR_TAIL:]
        lines += [f"The last run ended with status {last.outcome.status}. Its error output:", tail]
    if request.advice.guidance:
        lines.append("Advice: " + request.advice.guidance)
    if request.offered:
        lines.append("Already proposed this round (propose something else): "
                     + "; ".join(c.hypothesis or "an edit" for c in request.offered))
    if request.rejection:
        lines.append(f"The search strategy refused the last proposals: {request.rejection[:300]}. Propose something different.")
    lines += ["", f"The current {script_name}:", shown_source(source, MAX_SHOWN_SOURCE), "",
              f"Propose one edit of {script_name}."]
    return [{"role": "system", "content": code_system_text(objective, script_name, read_only)},
            {"role": "user", "content": "\n".join(lines)}]


def fix_messages(crashed: Candidate, outcome: RunOutcome, *, script_name: str, read_only: tuple[str, ...],
                 objective: Objective) -> list[dict[str, str]]:
    """The messages asking for one fix of an edit whose script crashed: its traceback and the edited script."""
    if crashed.code is None:
        raise ValueError("only a free-form edit can be fixed")
    tail = (outcome.error_tail or outcome.log_tail or "")[-MAX_ERROR_TAIL * 2:]
    lines = [f"Your edit ({crashed.hypothesis or 'no hypothesis'}) made {script_name} crash. The end of its output:",
             tail, "", f"The edited {script_name} that crashed:", shown_source(crashed.code.source, MAX_SHOWN_SOURCE),
             "", f"Fix the crash with SEARCH/REPLACE blocks against this edited {script_name}, keeping the idea of the "
             "edit. HYPOTHESIS: say what the fixed edit does."]
    return [{"role": "system", "content": code_system_text(objective, script_name, read_only)},
            {"role": "user", "content": "\n".join(lines)}]
