"""The decision of one inner iteration, as pure functions: default rule, mechanism override, the trace entry."""

from __future__ import annotations

import hashlib
from typing import Any

from search.acceptance import default_keep
from search.state import SearchState
from search.trace import Experiment, LLMUsage, MechanismActivity, RunOutcome, Trace, config_with


def measured_value(outcome: RunOutcome, confirm: RunOutcome | None) -> float | None:
    """The val_bpb credited to a candidate: mean over its successful runs; None if the first run failed."""
    if not outcome.ok:
        return None
    values = [run.val_bpb for run in (outcome, confirm) if run is not None and run.ok]
    return sum(values) / len(values)  # type: ignore[arg-type]


def final_decision(default: bool, override: bool | None, measured: float | None) -> bool:
    """A mechanism may overrule the default rule, but never keep a run that measured nothing."""
    if measured is None:
        return False
    return default if override is None else override


def invalid_outcome(errors: list[str], seed: int) -> RunOutcome:
    """The outcome recorded when no valid proposal came out of the LLM: nothing was trained."""
    return RunOutcome(status="invalid", seed=seed, error_tail="no valid proposal: " + " | ".join(errors[-3:]))


def make_experiment(
    *,
    trace: Trace,
    generation: int,
    track: int,
    iteration: int,
    changes: dict[str, Any],
    hypothesis: str,
    outcome: RunOutcome,
    confirm: RunOutcome | None,
    state: SearchState,
    min_improvement: float,
    override: bool | None,
    decided_by: str | None,
    mechanisms: list[MechanismActivity],
    llm: LLMUsage,
    attempts: int,
    errors: list[str],
    note: str = "",
) -> Experiment:
    """The trace entry of one iteration, with the default decision and the final one kept apart."""
    measured = measured_value(outcome, confirm)
    default = default_keep(state, measured, min_improvement)
    kept = final_decision(default, override, measured)
    return Experiment(
        index=len(trace),
        generation=generation,
        track=track,
        iteration=iteration,
        changes=changes,
        hypothesis=hypothesis,
        config=config_with(state.current.config, changes),
        outcome=outcome,
        confirm=confirm,
        default_kept=default,
        kept=kept,
        decided_by=decided_by if kept != default else None,
        mechanisms=mechanisms,
        llm=llm,
        proposal_attempts=attempts,
        proposal_errors=errors,
        note=note,
    )


def merge_tracks(base: Trace, tracks: list[list[Experiment]]) -> Trace:
    """Append the experiments of parallel tracks to the shared trace in (track, iteration) order,
    renumbered so the merged trace stays dense and deterministic whatever order the tracks finished in."""
    merged = list(base.experiments)
    for experiments in tracks:
        for experiment in sorted(experiments, key=lambda e: e.iteration):
            merged.append(experiment.model_copy(update={"index": len(merged)}))
    return Trace(experiments=merged)


def baseline_experiment(outcome: RunOutcome, config: dict[str, Any]) -> Experiment:
    """Entry 0 of every trace: the unedited script, kept by definition (it is the reference)."""
    return Experiment(index=0, changes={}, hypothesis="baseline", config=config, outcome=outcome,
                      default_kept=True, kept=True)


def hook_seed(meta_run_id: str, seed: int, index: int, track: int) -> int:
    """The seed a mechanism's RNG gets for one decision: deterministic, so resumed runs decide the same."""
    digest = hashlib.sha256(f"{meta_run_id}/{seed}/{index}/{track}".encode()).digest()
    return int.from_bytes(digest[:4], "big")
