"""One inner iteration as pure logic: plan -> propose (mechanisms and a proposer) -> screen -> train -> accept ->
observe. The proposer (the LLM, a control arm), the training and the mechanisms are injected, so every decision
rule is unit-tested without Prefect, a sandbox or a model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from search.code_edits import CodeEdit
from search.context import DecisionPoint, build_context, candidate_view, experiment_view, visible_history
from search.hooks import Hooks, PlanAdvice
from search.space import CandidateError, SearchSpace
from search.state import SearchState
from search.trace import Experiment, LLMUsage, RunOutcome, Trace, config_with

MAX_NOTED_ERRORS = 3
TEMPERATURE_MIX = (0.0, -0.3, 0.4)  # added to the config's temperature, iteration by iteration
MAX_TEMPERATURE = 1.5


class Candidate(BaseModel):
    """A validated candidate: its effective changes from the current point, why, and who put it on the table."""

    model_config = ConfigDict(frozen=True)

    changes: dict[str, Any]
    hypothesis: str = ""
    proposed_by: str = "llm"
    code: CodeEdit | None = None  # edits = code: the edit whose source `changes[SOURCE_KEY]` names

    @property
    def mechanism(self) -> str | None:
        return self.proposed_by.removeprefix("mechanism:") if self.proposed_by.startswith("mechanism:") else None


class ProposalRequest(BaseModel):
    """What a proposer is asked for at one decision point."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    point: DecisionPoint
    local: Trace
    state: SearchState
    space: SearchSpace
    advice: PlanAdvice = Field(default_factory=PlanAdvice)
    screen_round: int = 0
    rejection: str = Field("", description="Why a screen hook refused the previous round's candidates.")
    seq: int = Field(0, description="Ordinal of this iteration in the meta-run (the scripted provider keys on it).")
    near: float = Field(0.0, description="Relative distance under which a candidate counts as a repeat.")
    offered: list[Candidate] = Field(default_factory=list, description="Candidates already on the table.")
    suggested: list[Candidate] = Field(default_factory=list, description="A classical optimiser's suggestions (hybrid).")
    optimiser_note: str = Field("", description="What the optimiser behind `suggested` knows, for the prompt.")

    @property
    def visible(self) -> Trace:
        return visible_history(self.local, self.point.visible_from)

    @property
    def tried(self) -> list[dict[str, Any]]:
        """Every configuration already run from this track's point of view, and those already offered."""
        offered = [config_with(self.state.current.config, c.changes) for c in self.offered]
        return [*self.local.tried_configs(), *offered]

    @property
    def n_candidates(self) -> int:
        return self.advice.n_candidates or self.point.config.n_candidates

    @property
    def temperature(self) -> float:
        """The sampling temperature of this decision: a mechanism's advice, else the config's, mixed across
        iterations (cooler, as set, hotter) so that a single-candidate search still samples widely at times."""
        if self.advice.temperature is not None:
            return self.advice.temperature
        offset = TEMPERATURE_MIX[self.point.iteration % len(TEMPERATURE_MIX)] if self.point.config.mix_temperatures else 0.0
        return min(MAX_TEMPERATURE, max(0.0, self.point.config.temperature + offset))

    def check(self, changes: Any) -> dict[str, Any]:
        """The effective changes of a candidate, or CandidateError: one validation for every proposer."""
        if not isinstance(changes, dict):
            raise CandidateError(f"changes must be an object of NAME: value, got {type(changes).__name__}")
        return self.space.check(changes, self.state.current.config, frozen=self.point.config.frozen,
                                tried=self.tried, near=self.near)


class ProposalBatch(BaseModel):
    """The valid candidates a proposer produced (possibly none), what they cost, and every refusal on the way."""

    candidates: list[Candidate] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)


Proposer = Callable[[ProposalRequest], ProposalBatch]
# (request, crashed candidate, its outcome) -> at most one fixed candidate (edits = code: one fix attempt)
FixFn = Callable[[ProposalRequest, Candidate, RunOutcome], ProposalBatch]
TrainFn = Callable[[dict[str, Any], str, int], RunOutcome]  # (config, purpose, seed) -> outcome


def measured_value(outcome: RunOutcome, confirm: RunOutcome | None) -> float | None:
    """The value credited to a candidate: mean over its successful runs; None if the first run failed."""
    if not outcome.ok:
        return None
    values = [run.value for run in (outcome, confirm) if run is not None and run.ok]
    return sum(values) / len(values)  # type: ignore[arg-type]


def default_keep(state: SearchState, measured: float | None, min_improvement: float = 0.0) -> bool:
    """Keep a strictly better value than the current point, by more than `min_improvement` (paper: 0)."""
    return state.objective.beats_by(measured, state.current.value, min_improvement)


def needs_confirmation(state: SearchState, measured: float | None, min_improvement: float, confirm_seed: int | None) -> bool:
    """A candidate that would be kept is re-run on a second seed first, when confirmation is on."""
    return confirm_seed is not None and default_keep(state, measured, min_improvement)


def final_decision(default: bool, override: bool | None, measured: float | None) -> bool:
    """A mechanism may overrule the default rule, but never keep a run that measured nothing."""
    if measured is None:
        return False
    return default if override is None else override


def invalid_outcome(errors: list[str], seed: int) -> RunOutcome:
    """The outcome recorded when no valid proposal came out: nothing was trained."""
    return RunOutcome(status="invalid", seed=seed, error_tail="no valid proposal: " + " | ".join(errors[-MAX_NOTED_ERRORS:]))


def baseline_experiment(outcome: RunOutcome, config: dict[str, Any]) -> Experiment:
    """Entry 0 of every trace: the unedited script, kept by definition (it is the reference)."""
    return Experiment(index=0, changes={}, hypothesis="baseline", proposed_by="baseline", config=config,
                      outcome=outcome, default_kept=True, kept=True)


def merge_tracks(base: Trace, tracks: list[list[Experiment]]) -> Trace:
    """Append the experiments of parallel tracks to the shared trace in (track, iteration) order, renumbered so
    the merged trace stays dense and deterministic whatever order the tracks finished in."""
    merged = list(base.experiments)
    for experiments in tracks:
        for experiment in sorted(experiments, key=lambda e: e.iteration):
            merged.append(experiment.model_copy(update={"index": len(merged)}))
    return base.with_experiments(merged)


class _Choice(BaseModel):
    candidate: Candidate | None = None
    usage: LLMUsage = Field(default_factory=LLMUsage)
    attempts: int = 0
    errors: list[str] = Field(default_factory=list)
    note: str = ""


def _offered_by_mechanisms(hooks: Hooks, ctx: dict[str, Any], request: ProposalRequest) -> tuple[list[Candidate], bool, list[str]]:
    """The mechanisms' own candidates, validated like any proposal; and whether one of them asked to skip the LLM."""
    offered: list[Candidate] = []
    errors: list[str] = []
    skip = False
    for answer in hooks.propose(ctx):
        valid_before = len(offered)
        for proposed in answer.answer.candidates:
            try:
                changes = request.model_copy(update={"offered": offered}).check(proposed.changes)
            except CandidateError as error:
                errors.append(f"{answer.mechanism}: {error}"[:300])
                continue
            offered.append(Candidate(changes=changes, hypothesis=proposed.reason, proposed_by=f"mechanism:{answer.mechanism}"))
        skip = skip or (answer.answer.skip_llm and len(offered) > valid_before)
    return offered, skip, errors


def _choose(hooks: Hooks, ctx: dict[str, Any], request: ProposalRequest, proposer: Proposer, screen_rounds: int) -> _Choice:
    """Candidates from the mechanisms and the proposer; the screen hooks pick one or reject them all (asked again,
    bounded). Mechanism candidates come first, so with no screen the trained one is a mechanism's."""
    offered, skip_llm, errors = _offered_by_mechanisms(hooks, ctx, request)
    choice = _Choice(errors=errors)
    fallback: Candidate | None = None
    for screen_round in range(screen_rounds):
        candidates = list(offered) if screen_round == 0 else []
        if not (screen_round == 0 and skip_llm):
            asked = request.model_copy(update={"screen_round": screen_round, "offered": offered})
            batch = proposer(asked)
            choice.usage, choice.attempts = choice.usage + batch.usage, choice.attempts + batch.attempts
            choice.errors += batch.errors
            candidates += batch.candidates
        if not candidates:
            break
        views = [candidate_view(c.changes, c.hypothesis, config_with(request.state.current.config, c.changes),
                                c.proposed_by) for c in candidates]
        verdict = hooks.screen(ctx, views)
        if verdict is None or not verdict.reject:
            choice.candidate = candidates[(verdict.choose or 0) if verdict else 0]
            return choice
        fallback = fallback or candidates[0]
        choice.note = f"screen rejected round {screen_round}: {verdict.reason}"
        request = request.model_copy(update={"rejection": verdict.reason})
    if fallback is not None:
        choice.candidate = fallback
        choice.note += "; screen rounds exhausted, trained the first candidate"
    return choice


def _joined(note: str, more: str) -> str:
    return f"{note}; {more}" if note else more


def run_iteration(
    *,
    local: Trace,
    state: SearchState,
    space: SearchSpace,
    point: DecisionPoint,
    hooks: Hooks,
    proposer: Proposer,
    train: TrainFn,
    seq: int = 0,
    screen_rounds: int = 2,
    near: float = 0.0,
    fix: FixFn | None = None,
) -> Experiment:
    """Decide, train and record one experiment at `point`. `local` is the track's own history (`local_history`)
    and `state` the state it folds to; the returned experiment is numbered `point.index`. With `fix`, a free-form
    edit that crashed gets one fix attempt: the fixed edit, when one comes, is what the experiment trains and records
    (the crash is noted)."""
    ctx = build_context(local, state, space, point)
    advice = hooks.plan(ctx)
    request = ProposalRequest(point=point, local=local, state=state, space=space, advice=advice, seq=seq, near=near)
    choice = _choose(hooks, ctx, request, proposer, screen_rounds)
    config_now = point.config
    confirm: RunOutcome | None = None
    override, decided_by = None, None
    candidate = choice.candidate
    if candidate is None:
        outcome = invalid_outcome(choice.errors, point.run_seed)
        config = state.current.config
        default = False
    else:
        if candidate.mechanism:
            hooks.credit(candidate.mechanism, "propose")
        config = config_with(state.current.config, candidate.changes)
        outcome = train(config, "candidate", point.run_seed)
        if fix is not None and candidate.code is not None and outcome.status == "crash":
            fixed = fix(request, candidate, outcome)
            choice.usage, choice.attempts = choice.usage + fixed.usage, choice.attempts + fixed.attempts
            choice.errors += [f"fix: {error}" for error in fixed.errors]
            first_line = (outcome.error_tail or "").strip().splitlines()[-1:] or ["no output"]
            if fixed.candidates:
                candidate = fixed.candidates[0]
                config = config_with(state.current.config, candidate.changes)
                choice.note = _joined(choice.note, f"the first version crashed ({first_line[0][:160]}); trained its fix")
                outcome = train(config, "candidate", point.run_seed)
            else:
                choice.note = _joined(choice.note, "crashed; the fix attempt gave no valid edit")
        if needs_confirmation(state, measured_value(outcome, None), config_now.min_improvement, config_now.confirm_seed):
            confirm = train(config, "confirm", config_now.confirm_seed)  # type: ignore[arg-type]
        measured = measured_value(outcome, confirm)
        default = default_keep(state, measured, config_now.min_improvement)
        result = {**candidate_view(candidate.changes, candidate.hypothesis, config, candidate.proposed_by),
                  "index": point.index, "status": outcome.status, "value": measured, "default_kept": default}
        if state.objective.name not in result:
            result[state.objective.name] = measured
        keep, decided_by = hooks.accept(ctx, result, default)
        override = keep if decided_by else None
    measured = measured_value(outcome, confirm)
    kept = final_decision(default, override, measured)
    experiment = Experiment(
        index=point.index, generation=point.generation, track=point.track, iteration=point.iteration,
        changes=candidate.changes if candidate else {}, hypothesis=candidate.hypothesis if candidate else "",
        proposed_by=candidate.proposed_by if candidate else "", config=config, outcome=outcome, confirm=confirm,
        default_kept=default, kept=kept, decided_by=decided_by if kept != default else None,
        llm=choice.usage, proposal_attempts=choice.attempts, proposal_errors=choice.errors, note=choice.note,
        code=candidate.code if candidate else None,
    )
    hooks.observe(ctx, experiment_view(experiment, local.objective))
    return experiment.model_copy(update={"mechanisms": hooks.take_activity()})
