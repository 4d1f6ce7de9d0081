#!/usr/bin/env bash
# Edit-mode benchmark (issue 22, item 4): one shard of the literals arm, e.g. `literals-shard.sh 0-2`. The block arm
# is not run: it is the search benchmark's arm A (README.md here). Repeats 0 and 2 used f98a648, the code of that
# arm's repeats 3-9; from session 4 the literals runs use a commit with the context-window fix (COMMIT, WT and STATE
# given in the environment: README.md here says which). Each in its own worktree and state dir; the ablation resumes
# (finished meta-runs are skipped).
set -u
REPEATS=${1:?usage: literals-shard.sh REPEATS (numbered from 0, e.g. 0-2 or 5,7)}
WT=${WT:-/work/wt/edits-lit}
STATE=${STATE:-/work/editsstate}
COMMIT=${COMMIT:-f98a648}
# Block and literals may differ only in the edit mode: refuse any other code, and never fall back to another checkout.
WANT=$(git -C /work/main rev-parse --verify --quiet "$COMMIT^{commit}")
HAVE=$(git -C "$WT" rev-parse --verify --quiet HEAD 2>/dev/null)
if [ -z "$WANT" ] || [ "$HAVE" != "$WANT" ] || [ -n "$(git -C "$WT" status --porcelain --untracked-files=no)" ]; then
  echo "$WT is not a clean checkout of $COMMIT; create it with: git -C /work/main worktree add --detach $WT $COMMIT"
  exit 2
fi
cd "$WT" || exit 2
export PYTHONPATH=$WT BILEVEL_MAX_WORKERS=1 BILEVEL_BUDGET_MODE=flops BILEVEL_NOISE_REPEATS=2
date; BILEVEL_STATE_DIR=$STATE /work/main/.venv/bin/bilevel ablate --arms A --repeats 10 --only-repeats "$REPEATS" --generations 3 --iterations 8 --budget 1.2e11 --edits literals --id bench-edits-literals --no-report; echo rc=$?
date
echo "collect (from a checkout whose bench_edits.py has --block-from): python benchmarks/bench_edits.py --state $STATE --commit $COMMIT --block-from bench-search-A"
