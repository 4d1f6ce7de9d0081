"""Builders of synthetic meta-runs and ablations on disk for report tests (pure data, seeded, no services)."""

from __future__ import annotations

import json
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.runs import RunFolder, write_json_atomic
from search.ablation import STANDARD_ARMS, AblationManifest, ArmRuns, manifest_path
from search.objective import Objective
from search.run_spec import Budget, MetaRunSpec, StopReason, WorkloadRef, summarize
from search.trace import Experiment, LLMUsage, MechanismActivity, RunOutcome, Trace, config_with

BASE_CONFIG = {"DEPTH": 4, "MATRIX_LR": 0.003, "EMBEDDING_LR": 0.003, "OPTIMIZER": "adamw",
               "TOTAL_BATCH_SIZE": 2048, "ADAM_BETAS": [0.9, 0.95]}
MOVES: list[dict[str, Any]] = [
    {"MATRIX_LR": 0.01}, {"MATRIX_LR": 0.02}, {"EMBEDDING_LR": 0.01}, {"DEPTH": 2}, {"DEPTH": 6},
    {"OPTIMIZER": "muon"}, {"TOTAL_BATCH_SIZE": 1024}, {"TOTAL_BATCH_SIZE": 4096, "MATRIX_LR": 0.006},
    {"ADAM_BETAS": [0.8, 0.99]}, {"DEPTH": 3, "EMBEDDING_LR": 0.02},
]
HOSTILE = "<script>alert('pwned')</script> & \"quotes\""
ACCURACY = Objective(name="accuracy", goal="maximize")
# (baseline mean, baseline seed-to-seed SD, per-run noise) of the synthetic metric, by goal: a loss near 2.86 bpb,
# or an accuracy near 0.62.
SCALES = {"minimize": (2.86, 0.03, 0.04), "maximize": (0.62, 0.01, 0.015)}

ANNEAL_SOURCE = '''class Anneal:
    """Keeps a slightly worse result early on, to leave local optima."""
    name = "anneal"

    def accept(self, ctx, result, default):
        if default or result.get("value") is None:
            return None
        return result["value"] < ctx["best"]["value"] + 0.02
'''
FOCUS_SOURCE = '''class Focus:
    name = "focus"

    def plan(self, ctx):
        return {}
'''


def synthetic_trace(seed: int, *, experiments: int = 24, gain: float = 0.0, generation_size: int = 8,
                    with_mechanisms: bool = False, hypothesis: str = "", crash_rate: float = 0.12,
                    stop_rate: float = 0.0, stream: str = "", objective: Objective | None = None,
                    proposed_by: str = "llm") -> Trace:
    """A trace whose accepted moves improve the objective by about `gain` each (0: pure noise around the baseline):
    a minimised one goes down, a maximised one goes up. `stop_rate` of the runs are stopped early (no value).
    With mechanisms: from generation 1 on, `anneal@v1` (accept; changes some decisions) and `focus@v1` (plan;
    inert) are active. The baseline depends on `seed` alone, the search on `seed` and `stream` (e.g. the arm)."""
    objective = objective or Objective()
    centre, spread, noise = SCALES[objective.goal]
    sign = 1.0 if objective.minimize else -1.0  # an improvement of `gain` moves the value by -sign * gain
    baseline_value = round(centre + random.Random(seed).gauss(0, spread), 4)
    rng = random.Random(f"{seed}/{stream}")
    trace = Trace(objective=objective, experiments=[
        Experiment(index=0, config=dict(BASE_CONFIG), kept=True, default_kept=True, proposed_by="baseline",
                   outcome=RunOutcome(status="ok", value=baseline_value, seed=seed))])
    true_value, current_config = baseline_value, dict(BASE_CONFIG)
    for index in range(1, experiments):
        changes = dict(rng.choice(MOVES))
        config = config_with(current_config, changes)
        generation = (index - 1) // generation_size
        if rng.random() < crash_rate:
            outcome = RunOutcome(status="crash", seed=seed, error_tail="Traceback (most recent call last):\n"
                                 "RuntimeError: CUDA out of memory <oom>")
        elif stop_rate and rng.random() < stop_rate:
            outcome = RunOutcome(status="stopped", seed=seed, log_tail="early stopping: the curve could not win")
        else:
            # Noise does not accumulate: a kept change moves the true value by `gain`, the noise stays per run.
            outcome = RunOutcome(status="ok", seed=seed,
                                 value=round(true_value - sign * gain + rng.gauss(0, noise), 4))
        best = trace.state().best.value
        default_kept = objective.better(outcome.value, best) if outcome.ok else False
        kept, decided_by, activity = default_kept, None, []
        if with_mechanisms and generation >= 1:
            overrides = outcome.ok and not default_kept and objective.beats_by(outcome.value, best, -0.02)
            if overrides:
                kept, decided_by = True, "anneal"
            activity = [
                MechanismActivity(name="anneal", version="v1", calls={"accept": 1, "observe": 1},
                                  changed=["accept"] if overrides else []),
                MechanismActivity(name="focus", version="v1", calls={"plan": 1, "observe": 1}),
            ]
        experiment = Experiment(
            index=index, generation=generation, iteration=(index - 1) % generation_size, changes=changes,
            hypothesis=hypothesis or f"try {', '.join(changes)} to improve {objective.name}", config=config,
            outcome=outcome, default_kept=default_kept, kept=kept, decided_by=decided_by, mechanisms=activity,
            proposed_by=proposed_by, llm=LLMUsage(calls=1, prompt_tokens=900, completion_tokens=60, seconds=6.0),
        )
        trace = trace.appended(experiment)
        if kept:
            true_value, current_config = true_value - sign * gain, config
    return trace


def write_run(runs_dir: Path, meta_run_id: str, trace: Trace, *, finished: bool = True, seed: int = 0,
              levels: Sequence[str] = ("1",), sources: list[dict[str, str]] | None = None,
              noise_floor: float | None = None, stop: tuple[StopReason, str] | None = None,
              proposer: str = "llm") -> Path:
    """A meta-run folder as the meta-run flow leaves it (through infra.runs.RunFolder): spec.json, trace.json,
    summary.json (when finished or stopped at a run limit) and mechanisms.json (when sources are given)."""
    folder = RunFolder(runs_dir, meta_run_id)
    objective = trace.objective
    workload = (WorkloadRef() if objective == Objective()
                else WorkloadRef(reference="examples/train.py", metric=objective.name, goal=objective.goal))
    spec = MetaRunSpec(meta_run_id=meta_run_id, name="synthetic", workload=workload, generations=3, iterations=8,
                       levels=list(levels), budget=Budget(mode="steps", value=300), seed=seed,
                       proposer=proposer)  # type: ignore[arg-type]
    folder.write_spec(spec, {})
    folder.write_trace(trace)
    if finished or stop is not None:
        reason, detail = stop or ("finished", "")
        summary = summarize(spec, trace, stop_reason=reason, stop_detail=detail)
        folder.write_summary(summary.model_copy(update={"noise_floor": noise_floor}))
    if sources is not None:
        folder.mechanisms_path.write_text(json.dumps(sources))
    return folder.root


def mechanism_sources(hostile: bool = False) -> list[dict[str, str]]:
    anneal = ANNEAL_SOURCE + (f"# {HOSTILE}\n" if hostile else "")
    return [{"name": "anneal", "version": "v1", "sha256": "a" * 64, "source": anneal, "origin": "research g1"},
            {"name": "focus", "version": "v1", "sha256": "b" * 64, "source": FOCUS_SOURCE, "origin": "library"}]


def write_single_run(runs_dir: Path, meta_run_id: str = "run-1", *, hostile: bool = False,
                     objective: Objective | None = None, noise_floor: float | None = None,
                     stop: tuple[StopReason, str] | None = None) -> Path:
    objective = objective or Objective()
    gain = 0.03 if objective.minimize else 0.01
    trace = synthetic_trace(7, experiments=30, gain=gain, with_mechanisms=True, stop_rate=0.1, objective=objective,
                            hypothesis=HOSTILE if hostile else "")
    return write_run(runs_dir, meta_run_id, trace, levels=("1", "1.5", "2"), sources=mechanism_sources(hostile),
                     noise_floor=noise_floor, stop=stop)


ARM_GAINS = {"A": 0.0, "C": 0.03, "random": 0.0}


def write_ablation(state_dir: Path, ablation_id: str = "abl-1", *, repeats: int = 3,
                   gains: dict[str, float] | None = None, missing: Sequence[tuple[str, int]] = (),
                   unfinished: Sequence[tuple[str, int]] = (), objective: Objective | None = None,
                   references: Sequence[str] = ("A",), noise_floors: Mapping[str, Sequence[float | None]] | None = None,
                   stopped: Sequence[tuple[str, int]] = ()) -> Path:
    """An ablation of arms x repeats on disk (manifest + meta-runs). `missing` (arm, repeat) pairs are listed in
    the manifest but have no folder; `unfinished` ones have a trace but no summary; `stopped` ones ended at a run
    limit. `noise_floors` gives each arm's repeats a measured noise floor."""
    gains = gains or ARM_GAINS
    objective = objective or Objective()
    seeds = list(range(repeats))
    arms = []
    for arm, gain in gains.items():
        spec = STANDARD_ARMS.get(arm) or STANDARD_ARMS["A"].model_copy(update={"name": arm})
        ids = []
        for repeat in seeds:
            meta_run_id = f"{ablation_id}-{arm}-s{repeat}"
            ids.append(meta_run_id)
            if (arm, repeat) in missing:
                continue
            mechanisms = arm in ("C", "D")
            # The same seed gives every arm the same baseline run (paired design).
            trace = synthetic_trace(100 + repeat, gain=gain, with_mechanisms=mechanisms, stream=arm,
                                    objective=objective, proposed_by=spec.proposer or "hybrid")
            floors = (noise_floors or {}).get(arm)
            limit = ("time_limit", "the run reached its --max-hours limit") if (arm, repeat) in stopped else None
            write_run(state_dir / "runs", meta_run_id, trace, finished=(arm, repeat) not in unfinished, seed=repeat,
                      sources=mechanism_sources() if mechanisms else None, proposer=spec.proposer or "hybrid",
                      noise_floor=floors[repeat] if floors else None, stop=limit)  # type: ignore[arg-type]
        arms.append(ArmRuns(arm=spec, meta_run_ids=ids))
    manifest = AblationManifest(ablation_id=ablation_id, created="2025-01-01T00:00:00",
                                workload="tinygpt" if objective == Objective() else "examples/train.py",
                                objective=objective, model="local/qwen2.5-coder-1.5b", budget_mode="steps",
                                budget=300, generations=3, iterations=8, seeds=seeds, reference_arm=references[0],
                                reference_arms=list(references), arms=arms)
    path = manifest_path(state_dir, ablation_id)
    write_json_atomic(path, manifest.model_dump(mode="json"))
    return path
