#!/usr/bin/env bash
# library-r2 afresh at the bench2 commit (its 5ffff0e partial trace predates generation-end records).
set -u
cd /work/wt/bench2
export PYTHONPATH=/work/wt/bench2 BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops BILEVEL_NOISE_REPEATS=2
date; BILEVEL_STATE_DIR=/work/bench2state /work/main/.venv/bin/bilevel ablate --arms A,library,random,tpe --reference A,random,tpe --repeats 10 --only-repeats 2 --generations 3 --iterations 8 --budget 1.2e11 --id bench-search; echo rc=$?
date
