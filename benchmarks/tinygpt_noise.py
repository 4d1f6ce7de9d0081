"""Print tinygpt's baseline and hand-tuned val_bpb over seeds: mean, seed-to-seed std, throughput and wall time per run.

Usage (one run at a time, 1 thread each; wall-clock figures depend on the machine's load):
    python benchmarks/tinygpt_noise.py                       # baseline and tuned, seeds 0-2, the default budget
    python benchmarks/tinygpt_noise.py --seeds 5 --mode steps --budget 350
    python benchmarks/tinygpt_noise.py --configs '{"muon": {"OPTIMIZER": "muon", "MATRIX_LR": 0.02}}'

The default budget is the settings' (BILEVEL_BUDGET_MODE, BILEVEL_BUDGET; out of the box flops, 9.9e11).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from infra.settings import load_settings  # noqa: E402
from search.run_spec import Budget  # noqa: E402
from search.trace import RunOutcome  # noqa: E402
from workloads.tinygpt.workload import TinyGPT  # noqa: E402

# A budget for a mode other than the settings' one: the README's recommended CPU budgets.
MODE_DEFAULTS = {"flops": 9.9e11, "steps": 350.0, "time": 30.0}
# The best configuration found by hand at the default budget (README.md, "Hand tuning").
TUNED = {
    "OPTIMIZER": "muon",
    "MATRIX_LR": 0.02,
    "EMBEDDING_LR": 0.03,
    "UNEMBEDDING_LR": 0.01,
    "SCALAR_LR": 0.01,
}
CONFIGS = {"baseline": {}, "tuned": TUNED}


def describe(name: str, outcomes: list[RunOutcome]) -> str:
    ok = [o for o in outcomes if o.ok]
    if len(ok) < len(outcomes):
        failed = ", ".join(f"seed {o.seed}: {o.status}" for o in outcomes if not o.ok)
        return f"{name}: {len(outcomes) - len(ok)} of {len(outcomes)} runs failed ({failed})"
    values = [o.val_bpb for o in ok]
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    steps_per_s = statistics.fmean(o.steps / o.train_seconds for o in ok)
    tokens_per_s = statistics.fmean(o.tokens / o.train_seconds for o in ok)
    flops = ok[0].train_flops
    return (
        f"{name}: val_bpb {statistics.fmean(values):.4f} ± {std:.4f} (std over {len(values)} seeds; "
        f"{', '.join(f'{v:.4f}' for v in values)}) | {ok[0].steps} steps, "
        f"{'n/a' if flops is None else f'{flops:.4g}'} FLOPs | {steps_per_s:.1f} steps/s, {tokens_per_s:,.0f} tok/s | "
        f"train {statistics.fmean(o.train_seconds for o in ok):.1f} s, wall {statistics.fmean(o.wall_seconds for o in ok):.1f} s per run | "
        f"{ok[0].num_params:,} params, peak {max(o.peak_memory_mb for o in ok):.0f} MB"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0 .. N-1 (default 3)")
    parser.add_argument("--mode", choices=sorted(MODE_DEFAULTS), default=None, help="budget mode (default: the settings')")
    parser.add_argument("--budget", type=float, default=None, help="FLOPs, steps or seconds (default: the settings' or the mode's)")
    parser.add_argument("--configs", type=str, default=None, help="JSON {name: {PARAM: value}} instead of baseline and tuned")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args(argv)
    configs = json.loads(args.configs) if args.configs else CONFIGS
    settings = load_settings()
    workload = TinyGPT(settings.cache_dir, device="cpu")
    workload.prepare()
    mode = args.mode or settings.budget_mode
    value = args.budget if args.budget is not None else settings.budget if mode == settings.budget_mode else MODE_DEFAULTS[mode]
    budget = Budget(mode=mode, value=value)
    print(f"tinygpt, {budget.describe()}, CPU, 1 thread per run, seeds 0-{args.seeds - 1}", flush=True)
    with tempfile.TemporaryDirectory(prefix="tinygpt-noise-") as work:
        for name, changes in configs.items():
            source = workload.apply(workload.editable_source(), changes)
            outcomes = []
            for seed in range(args.seeds):
                outcome = workload.run(source, budget, seed, Path(work) / f"{name}-{seed}", args.timeout)
                outcomes.append(outcome)
                detail = (
                    f"{outcome.val_bpb:.6f} in {outcome.steps} steps, {outcome.wall_seconds:.1f} s"
                    if outcome.ok
                    else f"{outcome.status}\n{outcome.error_tail}"
                )
                print(f"  {name} seed {seed}: {detail}", flush=True)
            print(describe(name, outcomes), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
