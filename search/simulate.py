"""A simulated inner loop: the benefit of a mechanism measured before it costs a training.

The next generation is run with the real decision procedure (search/iteration.py: plan, propose, screen, accept,
observe, through whatever `Hooks` the caller gives: the sandboxed runtime, as live), twice per seed: with the
current search's hooks and with the candidate mechanism added. A surrogate of the objective fitted to a bootstrap
resample of the trace (search/surrogate.py) stands in for the training, with noise at the trace's noise floor; a
cheap stand-in replaces the LLM (`RecordedMoves`). Both arms of one seed share the surrogate, the noise of every
configuration and the stand-in's draws, so the paired difference of their final best is the mechanism's effect.
The result is the mean paired Δ (sign-corrected by the goal: negative is better, as the project's Δ) and its
bootstrap CI. The same paired simulation then runs on synthetic landscapes mapped onto the run's space
(search/landscapes.py), so that a mechanism that only fits the trace's surrogate shows (`simulate_everywhere`).
No LLM call, no training: milliseconds per simulated evaluation.
"""

from __future__ import annotations

import hashlib
import json
import random
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from pydantic import BaseModel, Field, field_validator

from search.active_set import LandscapeGain, SimulatedGain
from search.config import SearchConfig
from search.context import DecisionPoint
from search.hooks import Hooks, PlanAdvice
from search.iteration import Candidate, ProposalBatch, ProposalRequest, run_iteration
from search.landscapes import LANDSCAPES, mapped, relabelled
from search.space import CandidateError, SearchSpace
from search.surrogate import Surrogate, largest_improvement, training_points
from search.trace import GenerationStart, RunOutcome, Trace

MAX_DRAWS = 60  # stand-in draws to find valid, untried candidates
HABIT_SHARE = 0.8  # how often the stand-in changes a set of parameters the trace's proposer once changed together
NOISE_FRACTION = 0.1  # without a measured noise floor: this fraction of the measured values' standard deviation
BOOTSTRAP_RESAMPLES = 2000


class SimulationSettings(BaseModel):
    """How much simulation one candidate gets."""

    iterations: int = Field(8, ge=1, le=64, description="Simulated iterations of the next generation.")
    seeds: int = Field(16, ge=2, le=256, description="Paired repeats (each its own bootstrap refit of the surrogate).")
    confirm_seeds: int = Field(64, ge=0, le=1024, description="Where the first `seeds` show a mean gain (Δ < 0), the "
                               "surrogate's simulation goes on to this many seeds and the CI is of all of them; 0 or "
                               "at most `seeds`: no second look.")
    confidence: float = Field(0.95, gt=0.5, lt=1.0)
    extra_offers: int = Field(0, ge=0, le=3, description="Candidates the stand-in offers beyond those asked for: the "
                              "hybrid proposer adds the optimiser's suggestions the LLM did not take "
                              "(tasks/propose.py), so a screen hook has a choice live even when one is asked for.")
    asks_honoured: bool = Field(True, description="The proposer follows a plan's advice: as many candidates as asked "
                                "for, its focus and avoid (the LLM does); the optimiser arms (tpe, random, cmaes) "
                                "ignore the advice and offer one candidate.")
    landscapes: tuple[str, ...] = Field(tuple(LANDSCAPES), description="Synthetic landscapes simulated besides the "
                                        "trace's surrogate (search/landscapes.py).")

    @field_validator("landscapes")
    @classmethod
    def _known(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [name for name in names if name not in LANDSCAPES]
        if unknown:
            raise ValueError(f"unknown landscapes {unknown}; known: {', '.join(LANDSCAPES)}")
        return names


HooksFactory = Callable[[], Hooks]  # fresh hooks: the arm's mechanisms with state rebuilt from the trace
TraceHooksFactory = Callable[[Trace], Hooks]  # the same, with state rebuilt from the given (possibly relabelled) trace


class Model(Protocol):
    """What a simulated training measures without noise: the trace's surrogate or a mapped landscape."""

    def predict(self, config: dict[str, Any]) -> float: ...


class RecordedMoves:
    """The stand-in for the LLM: moves shaped like the trace's own proposals. It changes a set of parameters the
    trace's proposer once changed together (most of the time; otherwise 1..max_changes random editable ones), each
    to a nearby valid value (x2^±k on log scales, k tenths of the range otherwise, another choice). It honours a
    plan's focus/avoid and n_candidates when the run's proposer does (the LLM; an optimiser ignores the advice:
    search/tpe_proposal.py); guidance text cannot be simulated. Chosen over the hybrid's optimiser
    (TPE refits a study per decision: 50-100x slower, and unlike the LLM it models the trace) and over recorded
    absolute values (from another current point they are mostly repeats). Deterministic per decision point, so both
    arms of a seed draw alike."""

    name = "recorded moves"

    def __init__(self, trace: Trace, extra_offers: int = 0, asks_honoured: bool = True) -> None:
        self.habits = [tuple(sorted(e.changes)) for e in trace.decided
                       if e.changes and e.proposed_by not in ("", "baseline") and not e.proposed_by.startswith("mechanism:")]
        self.extra_offers, self.asks_honoured = extra_offers, asks_honoured

    def offers(self, request: ProposalRequest) -> int:
        """How many candidates the real proposer would put on the table for this request."""
        return (request.n_candidates if self.asks_honoured else 1) + self.extra_offers

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        rng = random.Random(request.point.hook_seed * 7919 + request.screen_round)
        editable = {spec.name: spec for spec in request.space.editable(request.point.config.frozen)}
        advice = request.advice if self.asks_honoured else PlanAdvice()
        allowed = [name for name in editable if name not in set(advice.avoid)]
        focus = [name for name in advice.focus if name in allowed]
        batch = ProposalBatch()
        if not allowed:
            batch.errors.append("every parameter is frozen or avoided")
            return batch
        cap = max(1, min(request.point.config.max_changes, len(allowed)))
        current = request.state.current.config
        for _ in range(MAX_DRAWS):
            if len(batch.candidates) >= self.offers(request):
                break
            names = self._names(rng, allowed, focus, cap)
            changes: dict[str, Any] = {}
            for name in names:
                nearby = editable[name].nearby_values(current.get(name, editable[name].value), steps=2)
                if nearby:
                    changes[name] = rng.choice(nearby)
            if not changes:
                continue
            try:
                effective = request.model_copy(update={"offered": [*request.offered, *batch.candidates]}).check(changes)
            except CandidateError:
                continue
            batch.candidates.append(Candidate(changes=effective, hypothesis="simulated proposal", proposed_by="llm"))
        if not batch.candidates:
            batch.errors.append(f"the stand-in found no valid untried move in {MAX_DRAWS} draws")
        return batch

    def _names(self, rng: random.Random, allowed: list[str], focus: list[str], cap: int) -> list[str]:
        if focus:
            return rng.sample(focus, rng.randint(1, min(cap, len(focus))))
        habits = [[n for n in habit if n in allowed][:cap] for habit in self.habits]
        habits = [habit for habit in habits if habit]
        if habits and rng.random() < HABIT_SHARE:
            return rng.choice(habits)
        return rng.sample(allowed, rng.randint(1, cap))


def noise_sd(trace: Trace) -> float:
    """The seed-to-seed spread a simulated training gets: the trace's noise floor when measured, else a fraction of
    the spread of its measured values (model misfit is not noise, so the residuals would overstate it)."""
    if trace.noise_floor is not None:
        return trace.noise_floor
    values = [e.measured for e in trace.experiments if e.measured is not None]
    return float(np.std(values)) * NOISE_FRACTION if len(values) > 1 else 0.0


class SurrogateTrainer:
    """The TrainFn of a simulated iteration: the surrogate's value plus noise drawn from (seed, config, purpose),
    so both arms of a seed measure the same configuration alike."""

    def __init__(self, surrogate: Model, sd: float, seed: int) -> None:
        self.surrogate, self.sd, self.seed = surrogate, sd, seed

    def __call__(self, config: dict[str, Any], purpose: str, run_seed: int) -> RunOutcome:
        key = json.dumps([self.seed, purpose, run_seed, sorted(config.items())], default=str)
        rng = np.random.default_rng(int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big"))
        value = self.surrogate.predict(config) + (float(rng.normal(0.0, self.sd)) if self.sd > 0 else 0.0)
        return RunOutcome(status="ok", value=value, seed=run_seed)


def next_generation(trace: Trace, config: SearchConfig) -> tuple[Trace, int]:
    """The trace with the simulated generation's start recorded, and that generation's number."""
    generation = max((e.generation for e in trace.experiments), default=-1) + 1
    return trace.with_generation(GenerationStart(generation=generation, start=len(trace), config=config)), generation


def _run_arm(trace: Trace, space: SearchSpace, config: SearchConfig, hooks: Hooks, surrogate: Model,
             trainer: SurrogateTrainer, *, meta_run_id: str, seed: int, iterations: int,
             screen_rounds: int, proposer: RecordedMoves) -> tuple[float, int]:
    """One simulated generation; the surrogate's noiseless value of the config it ends up calling best, and the
    decisions the mechanisms changed on the way."""
    local, generation = next_generation(trace, config)
    state = local.state()
    changed = 0
    for iteration in range(iterations):
        point = DecisionPoint(meta_run_id=meta_run_id, run_seed=seed, generation=generation, track=0,
                              iteration=iteration, start=len(trace), config=config)
        experiment = run_iteration(local=local, state=state, space=space, point=point, hooks=hooks, proposer=proposer,
                                   train=trainer, seq=iteration, screen_rounds=screen_rounds, near=config.near_repeat)
        changed += sum(len(activity.changed) for activity in experiment.mechanisms)
        local, state = local.appended(experiment), state.after(experiment)
    return surrogate.predict(state.best.config), changed


def simulate_gain(trace: Trace, space: SearchSpace, config: SearchConfig, *, current: HooksFactory,
                  candidate: HooksFactory, settings: SimulationSettings | None = None, meta_run_id: str = "simulated",
                  screen_rounds: int = 2) -> SimulatedGain:
    """The simulated Δ of `candidate` (the current mechanisms plus the new one) over `current`, paired per seed.
    SurrogateError when the trace cannot support a surrogate."""
    settings = settings or SimulationSettings()
    started = time.perf_counter()
    points = training_points(trace, space.params)
    sd = noise_sd(trace)
    headroom = max(largest_improvement(trace), sd)
    proposer = RecordedMoves(trace, settings.extra_offers, settings.asks_honoured)
    per_seed: list[float] = []
    changed = 0

    def paired(seeds: range) -> None:
        nonlocal changed
        for seed in seeds:
            surrogate = Surrogate(points, space.params, seed=seed, minimize=trace.objective.minimize, headroom=headroom)
            trainer = SurrogateTrainer(surrogate, sd, seed)
            arm = dict(meta_run_id=meta_run_id, seed=seed, iterations=settings.iterations, screen_rounds=screen_rounds,
                       proposer=proposer)
            without, _ = _run_arm(trace, space, config, current(), surrogate, trainer, **arm)  # type: ignore[arg-type]
            with_it, changed_here = _run_arm(trace, space, config, candidate(), surrogate, trainer, **arm)  # type: ignore[arg-type]
            per_seed.append(trace.objective.delta(without, with_it))
            changed += changed_here

    paired(range(settings.seeds))
    if np.mean(per_seed) < 0 and settings.confirm_seeds > settings.seeds:
        # A second look for what looks helpful: at 16 seeds a real gain of a fraction of the noise rarely shows
        # (benchmarks/results/level2-shapes). Only the CI of all seeds decides, and a mean >= 0 never goes on (a stop
        # for futility), so selecting is no likelier than with a single test at confirm_seeds.
        paired(range(settings.seeds, settings.confirm_seeds))
    low, high = bootstrap_ci(per_seed, settings.confidence)
    return SimulatedGain(delta=float(np.mean(per_seed)), ci_low=low, ci_high=high, confidence=settings.confidence,
                         seeds=len(per_seed), iterations=settings.iterations, per_seed=[round(v, 8) for v in per_seed],
                         seconds=round(time.perf_counter() - started, 3), points=len(points), noise_sd=sd, headroom=headroom,
                         stand_in=proposer.name, decisions_changed=changed)


def simulate_landscape(trace: Trace, space: SearchSpace, config: SearchConfig, landscape: str, *,
                       current: TraceHooksFactory, candidate: TraceHooksFactory, settings: SimulationSettings | None = None,
                       meta_run_id: str = "simulated", screen_rounds: int = 2) -> LandscapeGain:
    """The simulated Δ of `candidate` over `current` on a synthetic landscape: per seed a landscape drawn and mapped
    onto the trace's units, the trace relabelled as if its runs had measured it (each arm's state is rebuilt from that
    trace), then the same paired generations as on the surrogate."""
    settings = settings or SimulationSettings()
    started = time.perf_counter()
    sd = noise_sd(trace)
    per_seed: list[float] = []
    for seed in range(settings.seeds):
        model = mapped(landscape, trace, space.params, seed)
        local = relabelled(trace, model, sd, seed)
        trainer = SurrogateTrainer(model, sd, seed)
        arm = dict(meta_run_id=meta_run_id, seed=seed, iterations=settings.iterations, screen_rounds=screen_rounds,
                   proposer=RecordedMoves(local, settings.extra_offers, settings.asks_honoured))
        without, _ = _run_arm(local, space, config, current(local), model, trainer, **arm)  # type: ignore[arg-type]
        with_it, _ = _run_arm(local, space, config, candidate(local), model, trainer, **arm)  # type: ignore[arg-type]
        per_seed.append(trace.objective.delta(without, with_it))
    low, high = bootstrap_ci(per_seed, settings.confidence)
    return LandscapeGain(landscape=landscape, delta=float(np.mean(per_seed)), ci_low=low, ci_high=high,
                         seeds=settings.seeds, per_seed=[round(v, 8) for v in per_seed],
                         seconds=round(time.perf_counter() - started, 3))


def simulate_everywhere(trace: Trace, space: SearchSpace, config: SearchConfig, *, current: TraceHooksFactory,
                        candidate: TraceHooksFactory, settings: SimulationSettings | None = None,
                        meta_run_id: str = "simulated", screen_rounds: int = 2) -> SimulatedGain:
    """The simulated gain on the trace's surrogate, with one entry per synthetic landscape of `settings`.
    SurrogateError when the trace cannot support a surrogate (the landscapes are not tried then)."""
    settings = settings or SimulationSettings()
    gain = simulate_gain(trace, space, config, current=lambda: current(trace), candidate=lambda: candidate(trace),
                         settings=settings, meta_run_id=meta_run_id, screen_rounds=screen_rounds)
    landscapes = [simulate_landscape(trace, space, config, name, current=current, candidate=candidate,
                                     settings=settings, meta_run_id=meta_run_id, screen_rounds=screen_rounds)
                  for name in settings.landscapes]
    seconds = gain.seconds + sum(entry.seconds for entry in landscapes)
    return gain.model_copy(update={"landscapes": landscapes, "seconds": round(seconds, 3)})


def bootstrap_ci(values: list[float], confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean (fixed seed: the same values give the same interval)."""
    data = np.asarray(values, dtype=float)
    if len(data) == 0:
        raise ValueError("no values to bootstrap")
    rng = np.random.default_rng(0)
    means = data[rng.integers(0, len(data), (resamples, len(data)))].mean(axis=1)
    tail = (1.0 - confidence) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))
