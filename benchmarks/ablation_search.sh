#!/usr/bin/env bash
# The search benchmark (issue "a search that beats random search and TPE"): arms A (Level 1) and C (Levels
# 1 + 1.5 + 2) with the default proposer (the hybrid: TPE's suggestions offered to the LLM), llm (Level 1 with the
# LLM alone), random search, Optuna TPE, and the reference mechanism library; 10 paired repeats (seeds 0-9);
# 3 generations x 8 iterations = 24 evaluations each after the baseline; 1.2e11 FLOPs per training (about 43
# steps of the tinygpt baseline); the local model; every arm tested against random, tpe and A with Holm
# correction across all tests.
#
# Resumable: run it again with the same id and only what had not finished runs (trainings and LLM answers are
# cached). Two meta-runs at a time (one per core; they share the one local model, which serialises LLM calls).
#
#   ./benchmarks/ablation_search.sh [ABLATION_ID]       # the report lands in .bilevel/reports/<id>/
set -euo pipefail
cd "$(dirname "$0")/.."
BILEVEL_MAX_WORKERS="${BILEVEL_MAX_WORKERS:-2}" BILEVEL_BUDGET_MODE=flops .venv/bin/bilevel ablate \
    --arms A,C,llm,random,tpe,library --reference random,tpe,A --repeats "${REPEATS:-10}" \
    --generations 3 --iterations 8 --budget 1.2e11 --id "${1:-bench-search}"
