#!/usr/bin/env bash
# Session 4 shard of the search benchmark (issue 21): repeats 6-9 of the control arms at f98a648, the same code as
# repeats 2-4, in the same state dir (the ablation resumes; finished meta-runs are skipped).
set -u
cd /work/wt/bench2
export PYTHONPATH=/work/wt/bench2 BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops BILEVEL_NOISE_REPEATS=2
date; BILEVEL_STATE_DIR=/work/bench2state /work/main/.venv/bin/bilevel ablate --arms A,library,random,tpe --reference A,random,tpe --repeats 10 --only-repeats 6-9 --generations 3 --iterations 8 --budget 1.2e11 --id bench-search --no-report; echo rc=$?
date
