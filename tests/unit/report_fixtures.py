"""Builders of synthetic meta-runs and ablations on disk for report tests (pure data, seeded, no services)."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from search.ablation import STANDARD_ARMS, AblationManifest, ArmRuns, manifest_path
from infra.runs import write_json_atomic, write_trace
from search.run_spec import Budget, MetaRunSpec, summarize
from search.state import state_from_trace
from search.trace import Experiment, LLMUsage, MechanismActivity, RunOutcome, Trace, config_with

BASE_CONFIG = {"DEPTH": 4, "MATRIX_LR": 0.003, "EMBEDDING_LR": 0.003, "OPTIMIZER": "adamw",
               "TOTAL_BATCH_SIZE": 2048, "ADAM_BETAS": [0.9, 0.95]}
MOVES: list[dict[str, Any]] = [
    {"MATRIX_LR": 0.01}, {"MATRIX_LR": 0.02}, {"EMBEDDING_LR": 0.01}, {"DEPTH": 2}, {"DEPTH": 6},
    {"OPTIMIZER": "muon"}, {"TOTAL_BATCH_SIZE": 1024}, {"TOTAL_BATCH_SIZE": 4096, "MATRIX_LR": 0.006},
    {"ADAM_BETAS": [0.8, 0.99]}, {"DEPTH": 3, "EMBEDDING_LR": 0.02},
]
HOSTILE = "<script>alert('pwned')</script> & \"quotes\""

ANNEAL_SOURCE = '''class Anneal:
    """Keeps a slightly worse result early on, to leave local optima."""
    name = "anneal"

    def accept(self, ctx, result, default):
        if default or result.get("val_bpb") is None:
            return None
        return result["val_bpb"] < ctx["best"]["val_bpb"] + 0.02
'''
FOCUS_SOURCE = '''class Focus:
    name = "focus"

    def plan(self, ctx):
        return {}
'''


def synthetic_trace(seed: int, *, experiments: int = 24, gain: float = 0.0, generation_size: int = 8,
                    with_mechanisms: bool = False, hypothesis: str = "", crash_rate: float = 0.12,
                    stream: str = "") -> Trace:
    """A trace whose accepted moves improve val_bpb by about `gain` each (0: pure noise around the baseline).
    With mechanisms: from generation 1 on, `anneal@v1` (accept; changes some decisions) and `focus@v1` (plan;
    inert) are active. The baseline depends on `seed` alone, the search on `seed` and `stream` (e.g. the arm)."""
    baseline_value = round(2.86 + random.Random(seed).gauss(0, 0.03), 4)
    rng = random.Random(f"{seed}/{stream}")
    trace = Trace(experiments=[Experiment(index=0, config=dict(BASE_CONFIG), kept=True, default_kept=True,
                                          outcome=RunOutcome(status="ok", val_bpb=baseline_value, seed=seed))])
    true_value, current_config = baseline_value, dict(BASE_CONFIG)
    for index in range(1, experiments):
        changes = dict(rng.choice(MOVES))
        config = config_with(current_config, changes)
        generation = (index - 1) // generation_size
        if rng.random() < crash_rate:
            outcome = RunOutcome(status="crash", seed=seed, error_tail="Traceback (most recent call last):\n"
                                 "RuntimeError: CUDA out of memory <oom>")
        else:
            # Noise does not accumulate: a kept change moves the true value by `gain`, the noise stays per run.
            outcome = RunOutcome(status="ok", seed=seed, val_bpb=round(true_value - gain + rng.gauss(0, 0.04), 4))
        best = state_from_trace(trace).best.val_bpb
        default_kept = outcome.ok and outcome.val_bpb < best  # type: ignore[operator]
        kept, decided_by, activity = default_kept, None, []
        if with_mechanisms and generation >= 1:
            overrides = outcome.ok and not default_kept and outcome.val_bpb < best + 0.02  # type: ignore[operator]
            if overrides:
                kept, decided_by = True, "anneal"
            activity = [
                MechanismActivity(name="anneal", version="v1", calls={"accept": 1, "observe": 1},
                                  changed=["accept"] if overrides else []),
                MechanismActivity(name="focus", version="v1", calls={"plan": 1, "observe": 1}),
            ]
        experiment = Experiment(
            index=index, generation=generation, iteration=(index - 1) % generation_size, changes=changes,
            hypothesis=hypothesis or f"try {', '.join(changes)} to lower val_bpb", config=config, outcome=outcome,
            default_kept=default_kept, kept=kept, decided_by=decided_by, mechanisms=activity,
            llm=LLMUsage(calls=1, prompt_tokens=900, completion_tokens=60, seconds=6.0),
        )
        trace = trace.appended(experiment)
        if kept:
            true_value, current_config = true_value - gain, config
    return trace


def write_run(runs_dir: Path, meta_run_id: str, trace: Trace, *, finished: bool = True, seed: int = 0,
              levels: Sequence[str] = ("1",), sources: list[dict[str, str]] | None = None) -> Path:
    """A meta-run folder as the meta-run flow leaves it: spec.json, trace.json, summary.json (when finished)
    and mechanisms.json (when sources are given)."""
    folder = runs_dir / meta_run_id
    folder.mkdir(parents=True, exist_ok=True)
    spec = MetaRunSpec(meta_run_id=meta_run_id, name="synthetic", generations=3, iterations=8, levels=list(levels),
                       budget=Budget(mode="steps", value=300), seed=seed)
    write_json_atomic(folder / "spec.json", spec.model_dump(mode="json"))
    write_trace(runs_dir, meta_run_id, trace)
    if finished:
        write_json_atomic(folder / "summary.json", summarize(spec, trace).model_dump(mode="json"))
    if sources is not None:
        (folder / "mechanisms.json").write_text(json.dumps(sources))
    return folder


def mechanism_sources(hostile: bool = False) -> list[dict[str, str]]:
    anneal = ANNEAL_SOURCE + (f"# {HOSTILE}\n" if hostile else "")
    return [{"name": "anneal", "version": "v1", "sha256": "a" * 64, "source": anneal, "origin": "research g1"},
            {"name": "focus", "version": "v1", "sha256": "b" * 64, "source": FOCUS_SOURCE, "origin": "library"}]


def write_single_run(runs_dir: Path, meta_run_id: str = "run-1", *, hostile: bool = False) -> Path:
    trace = synthetic_trace(7, experiments=30, gain=0.03, with_mechanisms=True,
                            hypothesis=HOSTILE if hostile else "")
    return write_run(runs_dir, meta_run_id, trace, levels=("1", "1.5", "2"), sources=mechanism_sources(hostile))


ARM_GAINS = {"A": 0.0, "C": 0.03, "random": 0.0}


def write_ablation(state_dir: Path, ablation_id: str = "abl-1", *, repeats: int = 3,
                   gains: dict[str, float] | None = None, missing: Sequence[tuple[str, int]] = (),
                   unfinished: Sequence[tuple[str, int]] = ()) -> Path:
    """An ablation of arms x repeats on disk (manifest + meta-runs). `missing` (arm, repeat) pairs are listed in
    the manifest but have no folder; `unfinished` ones have a trace but no summary."""
    gains = gains or ARM_GAINS
    seeds = list(range(repeats))
    arms = []
    for arm, gain in gains.items():
        ids = []
        for repeat in seeds:
            meta_run_id = f"{ablation_id}-{arm}-s{repeat}"
            ids.append(meta_run_id)
            if (arm, repeat) in missing:
                continue
            mechanisms = arm in ("C", "D")
            # The same seed gives every arm the same baseline run (paired design).
            trace = synthetic_trace(100 + repeat, gain=gain, with_mechanisms=mechanisms, stream=arm)
            write_run(state_dir / "runs", meta_run_id, trace, finished=(arm, repeat) not in unfinished, seed=repeat,
                      sources=mechanism_sources() if mechanisms else None)
        spec = STANDARD_ARMS.get(arm) or STANDARD_ARMS["A"].model_copy(update={"name": arm})
        arms.append(ArmRuns(arm=spec, meta_run_ids=ids))
    manifest = AblationManifest(ablation_id=ablation_id, created="2025-01-01T00:00:00", workload="tinygpt",
                                model="local/qwen2.5-coder-1.5b", budget_mode="steps", budget=300, generations=3,
                                iterations=8, seeds=seeds, reference_arm="A", arms=arms)
    path = manifest_path(state_dir, ablation_id)
    write_json_atomic(path, manifest.model_dump(mode="json"))
    return path
