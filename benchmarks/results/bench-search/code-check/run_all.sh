#!/usr/bin/env bash
# Replays every committed bench-search meta-run with the f98a648 tree and the HEAD tree (b933be3).
set -u
cd /work/scratch/arm-a-check
export BILEVEL_STATE_DIR=/work/scratch/arm-a-check/state
for tree in f98 head; do
  rm -rf out-$tree
  PYTHONPATH=/work/wt/armcheck-$tree nice -n 15 /work/main/.venv/bin/python replay.py out-$tree bundles/runs/bench-search-* > replay-$tree.log 2>&1
  echo "$tree rc=$?" >> replay-$tree.log
done
