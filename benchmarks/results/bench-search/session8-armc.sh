#!/usr/bin/env bash
# Session 8 shard of the search benchmark (issue 21): arm C, repeats 0-2, at the commit checked out in $WT (recorded
# per meta-run in runs.json), in a state directory that first imported bench-search.tar.gz (the 40 finished control
# meta-runs are skipped). Level 2 here: selection by simulated benefit, mutants plus their parents as they are, the
# one-idea explore. Resumable: rerun the same script (a finished meta-run is skipped, an unfinished one resumes).
set -u
WT=${WT:-/work/wt/s8run}
STATE=${STATE:-/work/benchc-state}
cd "$WT" || exit 2
export PYTHONPATH=$WT BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops BILEVEL_NOISE_REPEATS=2
date; BILEVEL_STATE_DIR=$STATE /work/main/.venv/bin/bilevel ablate --arms A,C,library,random,tpe \
  --reference A,random,tpe --compare C-A,C-library,C-random,C-tpe,A-tpe --repeats 10 --only-repeats ${REPEATS:-0-2} \
  --generations 3 --iterations 8 --budget 1.2e11 --id bench-search --no-report; echo "rc=$?"
date
