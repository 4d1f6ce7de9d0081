"""Classical optimisers as proposers (Optuna): TPE and CMA-ES rebuild their study from the
trace at every decision (so resumes and repeats are deterministic), under the objective's direction, and their
suggestions go through the same candidate validation as everyone's (constraints, repeats)."""

from __future__ import annotations

import itertools
import math
from typing import Any, Literal

from search.iteration import Candidate, ProposalBatch, ProposalRequest
from search.params import ParamKind, ParamSpec, json_value, same_value
from search.space import CandidateError
from search.trace import config_with

Sampler = Literal["tpe", "cmaes"]
MAX_ASKS = 30  # suggestions refused by the candidate validation (constraints, repeats) are told to the study as failed
STARTUP_TRIALS = 5


def _optuna() -> Any:
    import optuna  # imported on first use: it takes a second, and most meta-runs never need it

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return optuna


def _distributions(specs: list[ParamSpec]) -> dict[str, Any]:
    optuna = _optuna()
    distributions: dict[str, Any] = {}
    for spec in specs:
        low, high = float(spec.low or 0.0), float(spec.high or 0.0)  # numeric kinds always have both bounds
        if spec.kind is ParamKind.INT:
            distributions[spec.name] = optuna.distributions.IntDistribution(int(low), int(high), log=spec.log and low > 0)
        elif spec.kind is ParamKind.FLOAT:
            distributions[spec.name] = optuna.distributions.FloatDistribution(low, high, log=spec.log and low > 0)
        elif spec.kind is ParamKind.CHOICE:
            distributions[spec.name] = optuna.distributions.CategoricalDistribution(list(spec.choices or ()))
        elif spec.kind is ParamKind.BOOL:
            distributions[spec.name] = optuna.distributions.CategoricalDistribution([False, True])
        else:  # float tuples become one float distribution per element
            for position in range(spec.length or 0):
                distributions[f"{spec.name}[{position}]"] = optuna.distributions.FloatDistribution(low, high)
    return distributions


def _flatten(config: dict[str, Any], distributions: dict[str, Any]) -> dict[str, Any] | None:
    """The trial parameters of a config, or None when a value lies outside the distributions (older ranges)."""
    flat = {}
    for name, distribution in distributions.items():
        base = name[:-1].split("[")[0] if name.endswith("]") else name
        if base not in config:  # a trace from an older block without this parameter: leave it out of the study
            return None
        if name.endswith("]"):
            value: Any = float(config[base][int(name[:-1].split("[")[1])])
        else:
            value = config[name]
        try:
            distribution.to_internal_repr(value)
        except Exception:  # a value the distribution cannot hold: leave this experiment out of the study
            return None
        if hasattr(distribution, "low") and not (distribution.low <= value <= distribution.high):
            return None
        flat[name] = value
    return flat


def _sampler(kind: Sampler, seed: int) -> Any:
    optuna = _optuna()
    if kind == "cmaes":
        # Categorical parameters are sampled independently (CMA-ES is continuous); warn_independent off: expected.
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=STARTUP_TRIALS, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, n_startup_trials=STARTUP_TRIALS)


def study_from_trace(request: ProposalRequest, kind: Sampler, seed: int) -> tuple[Any, dict[str, Any], list[ParamSpec]]:
    """An Optuna study holding every visible experiment of the trace (failed runs as FAIL), over the editable
    parameters; returns the study, its distributions and the parameters they cover."""
    optuna = _optuna()
    editable = request.space.editable(request.point.config.frozen)
    distributions = _distributions(editable)
    objective = request.state.objective
    study = optuna.create_study(direction="minimize" if objective.minimize else "maximize", sampler=_sampler(kind, seed))
    for experiment in request.visible.experiments:
        params = _flatten(experiment.config, distributions)
        if params is None:
            continue
        measured = experiment.measured
        state = optuna.trial.TrialState.COMPLETE if measured is not None else optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(params=params, distributions=distributions, state=state,
                                                  value=measured))
    return study, distributions, editable


def _changes(trial_params: dict[str, Any], editable: list[ParamSpec], current: dict[str, Any]) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for spec in editable:
        if spec.kind is ParamKind.FLOAT_TUPLE:
            value: Any = [trial_params[f"{spec.name}[{i}]"] for i in range(spec.length or 0)]
        else:
            value = trial_params[spec.name]
        if not same_value(value, current.get(spec.name)) and not (isinstance(value, float) and math.isnan(value)):
            changes[spec.name] = json_value(value)
    return changes


def within_constraints(request: ProposalRequest, changes: dict[str, Any], current: dict[str, Any]) -> dict[str, Any]:
    """The optimiser's changes made to satisfy the declared constraints. An optimiser samples every parameter at
    once and has no intent to keep (unlike the LLM, whose named values the candidate check keeps), so any constrained
    parameter it set may move: first the smallest nearby move, else the fewest of its constrained values go back to
    the current point's (which satisfies them). Unchanged when nothing helps (the check then refuses it)."""
    space = request.space
    if not space.broken_constraints(config_with(dict(current), changes)):
        return changes
    frozen = set(request.point.config.frozen)
    adjusted = space.repair(config_with(dict(current), changes), keep=frozen)
    if adjusted is not None:
        return {**changes, **adjusted}
    constrained = [name for constraint in space.constraints for name in constraint.names if name in changes]
    constrained = list(dict.fromkeys(constrained))
    for size in range(1, len(constrained) + 1):
        for reverted in itertools.combinations(constrained, size):
            kept = {name: value for name, value in changes.items() if name not in reverted}
            if kept and not space.broken_constraints(config_with(dict(current), kept)):
                return kept
    return changes


def optimiser_suggestions(request: ProposalRequest, kind: Sampler, seed: int, count: int = 1) -> ProposalBatch:
    """Up to `count` valid, untried suggestions of the optimiser from the current point. A suggestion the
    validation refuses is told to the study as failed before the next ask (bounded)."""
    optuna = _optuna()
    study, distributions, editable = study_from_trace(request, kind, seed)
    batch = ProposalBatch()
    current = request.state.current.config
    label = "optuna TPE" if kind == "tpe" else "optuna CMA-ES"
    last_error = ""
    for _ in range(MAX_ASKS):
        if len(batch.candidates) >= count:
            break
        trial = study.ask(distributions)
        changes = within_constraints(request, _changes(trial.params, editable, current), current)
        try:
            effective = request.model_copy(update={"offered": [*request.offered, *batch.candidates]}).check(changes)
        except CandidateError as error:
            last_error = str(error)
            study.tell(trial, state=optuna.trial.TrialState.FAIL)
            continue
        study.tell(trial, state=optuna.trial.TrialState.FAIL)  # pending: the next ask must not repeat it
        batch.candidates.append(Candidate(changes=effective, hypothesis=label, proposed_by=kind))
    if not batch.candidates:
        batch.errors.append(f"{label} found no valid untried configuration in {MAX_ASKS} asks (last: {last_error[:200]})")
    return batch


def optimiser_note(request: ProposalRequest, kind: Sampler) -> str:
    """One line on the optimiser's state for the hybrid's prompt: what it has fitted, and its best so far."""
    measured = [e.measured for e in request.visible.experiments if e.measured is not None]
    best = request.state.objective.best(measured)
    label = "TPE" if kind == "tpe" else "CMA-ES"
    best_text = f", best {request.state.objective.name} {best:.4f}" if best is not None else ""
    return f"{label} fitted to {len(request.visible.experiments)} experiments ({len(measured)} measured{best_text})"


def tpe_proposer(request: ProposalRequest) -> ProposalBatch:
    return optimiser_suggestions(request, "tpe", request.point.hook_seed + request.screen_round)


def cmaes_proposer(request: ProposalRequest) -> ProposalBatch:
    return optimiser_suggestions(request, "cmaes", request.point.hook_seed + request.screen_round)
