#!/usr/bin/env bash
# Issue 19 item 7, session 8: the local-model Level-2 yield run on the two fixtures recorded held out in session 8
# (graph_color, non-ML, and gmm_numpy; branch heldout-fixtures-8, recorded at 4dd153e), at the commit named in
# summary.json. What changed since level2-yield-5: each parent of the round's mutants is also a candidate as it is
# (activated under its own name when it simulates best), a mutant whose only change is state nothing reads is refused
# as its parent unchanged, and explore writes one idea with capped fields. Sessions alternate the two fixtures;
# --real-gain trains each activated session's next generation with and without the mechanism on 3 paired seeds.
# Resumable (finished sessions and recorded real gains are skipped): rerun the same command later.
set -u
WT=${WT:-/work/wt/s8run}
cd "$WT" || exit 2
export PYTHONPATH=$WT
date; /work/main/.venv/bin/python benchmarks/level2_yield.py --fixtures gmm_numpy,graph_color --sessions 12 \
  --model local/qwen2.5-coder-1.5b --real-gain --real-pairs 3 --real-proposer tpe \
  --out "${OUT:-$WT/benchmarks/results/level2-yield-6}"; echo "rc=$?"
date
