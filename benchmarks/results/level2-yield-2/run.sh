#!/usr/bin/env bash
# Issue 19 item 7: the local-model Level-2 yield run with real gain, held-out fixtures first. Fixtures sort as
# classify, control, fit_curve, tinygpt, tsp_anneal and sessions rotate over them, so shard i/5 is fixture i:
# 2/5 fit_curve and 4/5 tsp_anneal (held out), then 1/5 control, 0/5 classify, 3/5 tinygpt. Resumable.
set -u
cd /work/wt/yield
export PYTHONPATH=/work/wt/yield
for shard in 2/5 4/5 1/5 0/5 3/5; do
  date; /work/main/.venv/bin/python benchmarks/level2_yield.py --sessions 25 --model local/qwen2.5-coder-1.5b --real-gain --real-pairs 1 --real-proposer tpe --out /work/wt/yield/benchmarks/results/level2-yield-2 --shard $shard; echo "shard $shard rc=$?"
done
date
