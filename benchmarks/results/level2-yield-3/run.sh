#!/usr/bin/env bash
# Issue 19 item 7, session 5: the local-model Level-2 yield run on the two fixtures recorded held out in session 5
# (knapsack_ga, non-ML, and mlp_numpy), at 15dd8e0: the autofix parent restoration, no one-shot worked example or
# parent, nearest_screen in the library, and the 64-seed second look. Sessions alternate the two fixtures, each trace
# cut after 16, 14, 12, 10 and 8 experiments; --real-gain trains each activated session's next generation with and
# without the mechanism. Resumable (finished sessions are skipped).
set -u
WT=${WT:-/work/wt/yield3}
cd "$WT" || exit 2
export PYTHONPATH=$WT
date; /work/main/.venv/bin/python benchmarks/level2_yield.py --fixtures knapsack_ga,mlp_numpy --sessions 10 \
  --model local/qwen2.5-coder-1.5b --real-gain --real-pairs 1 --real-proposer tpe \
  --out "$WT/benchmarks/results/level2-yield-3"; echo "rc=$?"
date
