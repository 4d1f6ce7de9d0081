#!/usr/bin/env bash
# Session 2 shard of the search benchmark (issue 21): check repeat 0 of the seeded control arms at the new commit
# (same meta-run ids, in a separate state dir: the seeds derive from the meta-run id), then continue the study.
set -u
cd /work/wt/bench2
export PYTHONPATH=/work/wt/bench2 BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops BILEVEL_NOISE_REPEATS=2
B=/work/main/.venv/bin/bilevel
git rev-parse HEAD > /work/bench2log/commit
date; BILEVEL_STATE_DIR=/work/bench2check $B ablate --arms random,tpe --reference random --repeats 10 --only-repeats 0 --generations 3 --iterations 8 --budget 1.2e11 --id bench-search --no-report
date; BILEVEL_STATE_DIR=/work/bench2state $B ablate --arms A,library,random,tpe --reference A,random,tpe --repeats 10 --only-repeats 2-3 --generations 3 --iterations 8 --budget 1.2e11 --id bench-search
date
