"""The real next-generation gain of a mechanism Level 2 activated: the fixture's next generation trained twice from the
recorded trace, on the same paired seeds and with the same cheap non-LLM proposer, once with the current search and
once with the mechanism added; the paired difference of the best values reached is the mechanism's alone.

Each arm is a real meta-run resumed from the trace (`bilevel resume` in its own process and state directory, so no
Prefect result, MLflow run or training folder is shared between the arms): the trace's last generation is recorded
as ended with the arm's mechanisms, and `resume` trains exactly the one generation after it (search/resume.py).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from infra.runs import RunFolder
from infra.settings import Settings
from mechanisms.benefit import next_config
from search.active_set import ActiveMechanism, ActiveSet
from search.config import SearchConfig
from search.run_spec import MetaRunSpec
from search.simulate import bootstrap_ci
from search.trace import GenerationEnd, Trace

ROOT = Path(__file__).resolve().parents[1]
FAST_WORKLOADS = ("examples/control/train.py", "examples/fit_curve/train.py",  # about a second per training
                  "examples/tsp_anneal/train.py", "examples/knapsack_ga/train.py", "examples/mlp_numpy/train.py",
                  "examples/queue_sim/train.py", "examples/boost_numpy/train.py",
                  "examples/jobshop_sched/train.py", "examples/rff_ridge/train.py",
                  "examples/graph_color/train.py", "examples/gmm_numpy/train.py")
ARM_TIMEOUT_S = 1800.0
REMEASURE_SEEDS = 5  # fresh seeds each arm's final best configuration is trained again on (the quality measure)
SEED_NAME = "SEED"  # the block parameter the fixtures' scripts draw their randomness from (fixed during a run)
SECRET_SETTINGS = {"s3_access_key", "s3_secret_key"}


class ArmFailed(RuntimeError):
    """An arm's meta-run did not finish (one line, with the tail of its output)."""


def arm_trace(trace: Trace, generation: int, active: ActiveSet, fallback: SearchConfig) -> Trace:
    """The trace with `generation` recorded as ended (done), the next one searching with `active` and the config
    Level 2 simulated it with (mechanisms/benefit.py: before any Level 1.5 change); later ends are dropped."""
    end = GenerationEnd(generation=generation, config=next_config(trace, fallback), active=active, done=True,
                        notes=[f"real-gain arm: {', '.join(m.label for m in active.mechanisms) or 'current search'}"])
    ends = [e for e in trace.generation_ends if e.generation < generation]
    return trace.model_copy(update={"generation_ends": [*ends, end]})


def absolute(workload: Any) -> Any:
    """A workload reference with a script named relative to the repository named by its absolute path (as the CLI
    resolves it)."""
    script = ROOT / workload.reference
    return workload.model_copy(update={"reference": str(script)}) if script.is_file() else workload


def arm_spec(spec: MetaRunSpec, *, meta_run_id: str, generation: int, seed: int, proposer: str) -> MetaRunSpec:
    """The spec that resumes into exactly generation `generation + 1`: Level 1 only, a non-LLM proposer; a script
    named relative to the repository is named by its absolute path (as the CLI resolves it)."""
    return spec.model_copy(update={"workload": absolute(spec.workload), "meta_run_id": meta_run_id, "name": "level2-real-gain", "levels": ["1"],
                                   "generations": generation + 2, "seed": seed, "proposer": proposer,
                                   "max_hours": None, "max_llm_cost_usd": None})


def _arm_env(state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BILEVEL_", "PREFECT_"))}
    env.update(BILEVEL_STATE_DIR=str(state), PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1", COLUMNS="160")
    return env


def run_arm(spec: MetaRunSpec, trace: Trace, settings: Settings, state: Path, *,
            timeout_s: float = ARM_TIMEOUT_S) -> dict[str, Any]:
    """One arm: the run folder written under `state`, then `bilevel resume` in a fresh process. The LLM is the
    scripted provider with no answers, so an arm that asked a model would fail instead of mixing one in."""
    answers = state / "no-answers.json"
    state.mkdir(parents=True, exist_ok=True)
    answers.write_text(json.dumps({"answers": {}}))
    arm_settings = settings.model_copy(update={"state_dir": state, "levels": "1", "model": "scripted/replay",
                                               "scripted_answers": answers, "mlflow_tracking_uri": None})
    folder = RunFolder(arm_settings.runs_dir, spec.meta_run_id)
    folder.write_spec(spec, arm_settings.model_dump(mode="json", exclude=SECRET_SETTINGS))
    folder.write_trace(trace)
    log = state / "resume.log"
    with open(log, "w", encoding="utf-8") as out:
        done = subprocess.run([sys.executable, "-m", "bilevel.cli", "resume", spec.meta_run_id], cwd=ROOT,
                              env=_arm_env(state), stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s, check=False)
    if done.returncode != 0:
        raise ArmFailed(f"arm {spec.meta_run_id} in {state} exited {done.returncode}: "
                        + log.read_text(errors="replace")[-800:].replace("\n", " | "))
    after = folder.read_trace()
    generation = spec.generations - 1
    new = [e for e in after.decided if e.generation == generation]
    launches = [json.loads(line) for line in arm_settings.launch_log.read_text().splitlines()] \
        if arm_settings.launch_log.exists() else []
    return {"best": after.state().best.value, "best_config": after.state().best.config,
            "generation_best": after.objective.best(e.measured for e in new),
            "experiments": len(new),
            "proposed_by": sorted({e.proposed_by for e in new}),
            "trained": len(launches), "launch_seeds": sorted({int(entry["seed"]) for entry in launches})}


class NoSeedToVary(ValueError):
    """The workload has no bounded SEED parameter, so a configuration cannot be re-measured on fresh seeds."""


def seeded_workload(spec: MetaRunSpec, settings: Settings, workdir: Path) -> Any:
    """The spec's workload with SEED editable (the fixtures fix it during a run); NoSeedToVary without one."""
    from workloads.registry import load_workload

    reference = absolute(spec.workload).model_copy(
        update={"fixed": [name for name in spec.workload.fixed if name != SEED_NAME]})
    workload = load_workload(reference, settings.model_copy(update={"state_dir": workdir}))
    seed_spec = next((p for p in workload.space.params if p.name == SEED_NAME), None)
    if seed_spec is None or seed_spec.high is None:
        raise NoSeedToVary(f"{spec.workload.reference} has no bounded {SEED_NAME} parameter to re-measure with")
    return workload


def remeasured(workload: Any, spec: MetaRunSpec, config: dict[str, Any], workdir: Path,
               seeds: int = REMEASURE_SEEDS) -> list[float | None]:
    """`config` trained again with SEED set to `seeds` fresh values (the fixtures fix SEED during a run, so a run's
    best value carries its seed's luck): their mean estimates the configuration's own quality, what the simulation
    scores (the surrogate's noiseless value of the configuration an arm calls best). None for a failed training."""
    high = int(workload.space.spec(SEED_NAME).high)
    values: list[float | None] = []
    for seed in range(high, high - seeds, -1):  # the top of its range: far from the fixtures' own SEED (0)
        source = workload.source_for({**config, SEED_NAME: seed})
        outcome = workload.run(source, spec.budget, seed, workdir / f"seed-{seed}", timeout_s=ARM_TIMEOUT_S)
        values.append(outcome.value if outcome.ok else None)
    return values


def quality(trace: Trace, spec: MetaRunSpec, without: dict[str, Any], with_it: dict[str, Any], settings: Settings,
            workdir: Path) -> dict[str, Any]:
    """The paired quality Δ of the two arms' final best configurations: their re-measured means (exactly 0, with no
    training, when both arms end on the same configuration, the usual case when neither beat the trace)."""
    if without["best_config"] == with_it["best_config"]:
        return {"quality_delta": 0.0, "remeasured": None}
    try:
        workload = seeded_workload(spec, settings, workdir / "remeasure")
    except NoSeedToVary as error:  # the other two measures still stand; the record says why this one is missing
        return {"quality_delta": None, "remeasured": None, "quality_error": str(error)}
    arms = {arm: remeasured(workload, spec, result["best_config"], workdir / f"remeasure-{arm}")
            for arm, result in (("without", without), ("with", with_it))}
    means = {arm: statistics.fmean(v for v in values if v is not None) if any(v is not None for v in values) else None
             for arm, values in arms.items()}
    return {"quality_delta": _paired(trace, means["without"], means["with"]), "remeasured": arms}


def mechanism_from_record(record: dict[str, Any], out: Path) -> ActiveMechanism:
    """The activated mechanism of a recorded session, from its committed source."""
    name = str(record["mechanism"]).split("@", 1)[0]
    return ActiveMechanism.from_source(name, (out / record["source_file"]).read_text())


def real_gain(spec: MetaRunSpec, trace: Trace, mechanism: ActiveMechanism, settings: Settings, workdir: Path, *,
              label: str, pairs: int = 1, proposer: str = "tpe", current: ActiveSet | None = None) -> dict[str, Any]:
    """`pairs` paired runs of the next generation (seeds spec.seed, spec.seed + 1, ...): without and with `mechanism`
    on top of `current`. Δ per pair is sign-corrected like the simulated gain (with minus without; negative: the
    mechanism helps); the session's Δ is their mean with a bootstrap CI. Three measures: `delta` compares the running
    best (what the user gets, 0 whenever neither arm beats the trace's best: 11 of 12 pairs in
    benchmarks/results/simulator-real-check), `generation_delta` the best value measured within the new generation
    (how good the arm's proposals were, whether or not they beat the trace), and `quality_delta` the final best
    configurations re-measured on fresh seeds (their own quality without the seed's luck, the quantity the
    simulation scores)."""
    current = current or ActiveSet()
    generation = trace.experiments[-1].generation
    started = time.perf_counter()
    per_pair = []
    for seed in range(spec.seed, spec.seed + pairs):
        arm = arm_spec(spec, meta_run_id=f"{label}-s{seed}", generation=generation, seed=seed, proposer=proposer)
        without = run_arm(arm, arm_trace(trace, generation, current, spec.search), settings, workdir / f"s{seed}-without")
        with_it = run_arm(arm, arm_trace(trace, generation, current.with_added(mechanism), spec.search), settings,
                          workdir / f"s{seed}-with")
        per_pair.append({"seed": seed, "without": without, "with": with_it,
                         "delta": _paired(trace, without["best"], with_it["best"]),
                         "generation_delta": _paired(trace, without["generation_best"], with_it["generation_best"]),
                         **quality(trace, spec, without, with_it, settings, workdir / f"s{seed}")})
    deltas = [p["delta"] for p in per_pair if p["delta"] is not None]
    low, high = bootstrap_ci(deltas) if deltas else (None, None)
    within = mean_ci([p["generation_delta"] for p in per_pair])
    own = mean_ci([p["quality_delta"] for p in per_pair])
    return {"delta": statistics.fmean(deltas) if deltas else None, "ci_low": low, "ci_high": high,
            "pairs": len(deltas), "generation_delta": within["mean"],
            "generation_ci": [within["ci_low"], within["ci_high"]],
            "quality_delta": own["mean"], "quality_ci": [own["ci_low"], own["ci_high"]],
            "proposer": proposer, "generation": generation + 1, "iterations": spec.iterations,
            "mechanism": mechanism.name, "seconds": round(time.perf_counter() - started, 1), "per_pair": per_pair}


def _paired(trace: Trace, without: float | None, with_it: float | None) -> float | None:
    return trace.objective.delta(without, with_it) if without is not None and with_it is not None else None


def mean_ci(values: list[float | None]) -> dict[str, Any]:
    """The mean of the values that are not None and its bootstrap CI (rounded to 6 places); sessions: how many."""
    deltas = [v for v in values if v is not None]
    if not deltas:
        return {"sessions": 0, "mean": None, "ci_low": None, "ci_high": None}
    low, high = bootstrap_ci(deltas)
    return {"sessions": len(deltas), "mean": round(statistics.fmean(deltas), 6), "ci_low": round(low, 6),
            "ci_high": round(high, 6)}


def over_sessions(gains: list[dict[str, Any]], key: str = "delta") -> dict[str, Any]:
    """The mean of the sessions' real Δ (`key`: delta or generation_delta) and its bootstrap CI (sessions
    resampled)."""
    return mean_ci([g.get(key) for g in gains])
