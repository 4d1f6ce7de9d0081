#!/usr/bin/env bash
# Issue 19 item 7, session 6: the local-model Level-2 yield run on the two fixtures recorded held out in session 6
# (queue_sim, non-ML, and boost_numpy), at the commit named in summary.json: mutants answer as patches of named
# methods into their parent shown with holes (mechanisms/splice.py), accept's contract fixed. Sessions alternate the
# two fixtures; --real-gain trains each activated session's next generation with and without the mechanism on 3
# paired seeds (both the running best and the best within the new generation are reported). Resumable (finished
# sessions and recorded real gains are skipped): rerun the same command in a later session.
set -u
WT=${WT:-/work/wt/yield4}
cd "$WT" || exit 2
export PYTHONPATH=$WT
date; /work/main/.venv/bin/python benchmarks/level2_yield.py --fixtures boost_numpy,queue_sim --sessions 12 \
  --model local/qwen2.5-coder-1.5b --real-gain --real-pairs 3 --real-proposer tpe \
  --out "$WT/benchmarks/results/level2-yield-4"; echo "rc=$?"
date
