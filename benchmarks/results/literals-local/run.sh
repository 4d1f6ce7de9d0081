#!/usr/bin/env bash
# Issue 22: --edits literals with the local model, on tinygpt and on a user script (a smoke, not the benchmark).
set -u
cd /work/main
export BILEVEL_STATE_DIR=/work/litstate BILEVEL_MAX_WORKERS=1
B=/work/main/.venv/bin/bilevel
git rev-parse --short HEAD > /work/litlog/commit
date; $B run --edits literals --iterations 4 --generations 1 --levels 1 --id literals-tinygpt; echo rc=$?
date; $B run --workload examples/fit_curve/train.py --metric val_mse --fixed SEED,STEPS --edits literals --iterations 4 --generations 1 --levels 1 --id literals-fit-curve; echo rc=$?
date
