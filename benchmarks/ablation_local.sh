#!/usr/bin/env bash
# A small real ablation on this machine with the local model (DESIGN §10, issue "ablations"): arms A (Level 1),
# C (Levels 1 + 1.5 + 2) and random search, 7 paired repeats (the fewest with which a Wilcoxon test against A
# can reach p < 0.05 after Holm's correction over two arms), 2 generations x 6 iterations, 1.2e11 FLOPs per
# training (about 43 steps of the baseline). One meta-run at a time: the local model then reuses its prompt
# prefix between calls (interleaved meta-runs would re-evaluate every prompt). About 100 minutes on 2 cores (measured: results/bench-local/).
#
#   ./benchmarks/ablation_local.sh [ABLATION_ID]        # the report lands in .bilevel/reports/<id>/
set -euo pipefail
cd "$(dirname "$0")/.."
BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops .venv/bin/bilevel ablate --arms A,C,random --repeats 7 --generations 2 --iterations 6 \
    --budget 1.2e11 --id "${1:-bench-local}"
