#!/usr/bin/env bash
# Issue 19 item 7, session 7: the local-model Level-2 yield run on the two fixtures recorded held out in session 7
# (jobshop_sched, non-ML, and rff_ridge), at the commit named in summary.json. What changed since level2-yield-4:
# a hole copied back keeps the parent's body (9bcc445), the skeleton of a fresh sample shows holes instead of
# `return None` (given back unchanged in 7 of 20 fresh samples), a live sample without simulated gain is not repaired, the
# explore prompt says which hooks the run's proposer lets matter (these fixtures run TPE: plan has no effect), the
# stand-in ignores focus/avoid under an optimiser, and three API slips are read instead of quarantined (a number as
# the rng, more than 4 proposed candidates, a screen answering with the chosen candidate). Sessions alternate the
# two fixtures; --real-gain trains each activated session's next generation with and without the mechanism on 3
# paired seeds. Resumable (finished sessions and recorded real gains are skipped): rerun the same command later.
set -u
WT=${WT:-/work/wt/yield5}
cd "$WT" || exit 2
export PYTHONPATH=$WT
date; /work/main/.venv/bin/python benchmarks/level2_yield.py --fixtures jobshop_sched,rff_ridge --sessions 12 \
  --model local/qwen2.5-coder-1.5b --real-gain --real-pairs 3 --real-proposer tpe \
  --out "$WT/benchmarks/results/level2-yield-5"; echo "rc=$?"
date
