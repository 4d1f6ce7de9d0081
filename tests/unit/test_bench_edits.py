"""The edit-mode benchmark's collector (benchmarks/bench_edits.py): what counts as a valid LLM answer and a crash, that
earlier collections are kept, that unpaired runs are refused, and the per-mode and paired statistics."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks.bench_edits import edit_statistics, llm_refusals, merged_records, pairing_problems, trace_counts


def experiment(status: str, attempts: int, errors: list[str], proposed_by: str = "llm") -> dict[str, Any]:
    return {"outcome": {"status": status}, "proposal_attempts": attempts, "proposal_errors": errors,
            "proposed_by": proposed_by}


def record(mode: str, repeat: int, *, best: float, asked: int = 4, valid: int = 4, trainings: int = 3,
           crashes: int = 0, seed: int | None = None, budget: float = 1.2e11, commit: str = "abc") -> dict[str, Any]:
    return {"meta_run_id": f"bench-edits-{mode}-A-r{repeat}", "mode": mode, "repeat": repeat,
            "seed": repeat if seed is None else seed, "commit": commit, "workload": "tinygpt", "budget_mode": "flops",
            "budget": budget, "generations": 3, "iterations": 8, "model": "local", "proposer": "hybrid",
            "objective": {"name": "val_bpb", "goal": "minimize"}, "baseline": 4.5, "best": best,
            "delta": best - 4.5, "noise_floor": 0.02, "asked": asked, "valid": valid, "experiments": 3,
            "invalid": 0, "trainings": trainings, "crashes": crashes, "llm_trained": trainings, "kept": 1,
            "llm_calls": asked, "llm_seconds": 1.0, "wall_seconds": 2.0, "best_changes": {}}


def test_optimiser_notes_are_not_refused_llm_answers() -> None:
    errors = ["unknown parameter 'main:13'", "optuna TPE found no valid untried configuration in 50 asks (last: x)",
              "fix: the edit does not parse", "no valid untried configuration in 200 random draws (last: y)"]
    assert llm_refusals(errors) == 2


def test_trace_counts_answers_trainings_and_crashes_after_the_baseline() -> None:
    trace = {"experiments": [
        experiment("ok", 0, []),  # the baseline: not counted
        experiment("ok", 2, ["unknown parameter 'main:13'"]),  # refused once, then a valid answer trained
        experiment("invalid", 3, ["a", "b", "c"], proposed_by=""),  # nothing trained
        experiment("crash", 1, []),
        experiment("timeout", 1, ["optuna TPE found no valid untried configuration (last: z)"], proposed_by="tpe"),
    ]}
    assert trace_counts(trace) == {"asked": 7, "valid": 3, "experiments": 4, "invalid": 1, "trainings": 3,
                                   "crashes": 2, "llm_trained": 2}


def test_a_collection_keeps_earlier_records_and_their_commits() -> None:
    earlier = [record("block", 0, best=4.0, commit="old"), record("literals", 0, best=3.9, commit="old")]
    found = [record("block", 0, best=4.0, commit="new"), record("block", 1, best=4.1, commit="new")]
    merged = merged_records(earlier, found)
    assert [(r["meta_run_id"], r["commit"]) for r in merged] == [
        ("bench-edits-block-A-r0", "old"), ("bench-edits-block-A-r1", "new"), ("bench-edits-literals-A-r0", "old")]


def test_runs_on_different_seeds_or_budgets_are_not_one_paired_study() -> None:
    paired = [record("block", 0, best=4.0), record("literals", 0, best=3.9)]
    assert pairing_problems(paired) == []
    assert pairing_problems([record("block", 0, best=4.0), record("literals", 0, best=3.9, seed=7)]) == [
        "repeat 0 ran on different seeds: {'block': 0, 'literals': 7}"]
    budgets = pairing_problems([record("block", 0, best=4.0), record("literals", 0, best=3.9, budget=6e10)])
    assert len(budgets) == 1 and budgets[0].startswith("budget differs")
    with pytest.raises(ValueError, match="not one paired study"):
        edit_statistics([record("block", 0, best=4.0), record("literals", 0, best=3.9, seed=7)])


def test_statistics_per_mode_and_paired_differences() -> None:
    records = [
        record("block", 0, best=4.0, asked=4, valid=4), record("block", 1, best=4.2, asked=4, valid=2),
        record("block", 2, best=4.1, asked=5, valid=4, crashes=1),
        record("literals", 0, best=3.8, asked=6, valid=3, crashes=1), record("literals", 1, best=4.1, asked=4, valid=4),
        record("literals", 2, best=3.9, asked=4, valid=3, crashes=2),
    ]
    stats = edit_statistics(records)
    block, literals = stats["modes"]["block"], stats["modes"]["literals"]
    assert (block["valid"], block["asked"]) == (10, 13) and block["valid_share"] == pytest.approx(10 / 13)
    assert literals["crash_rate"] == pytest.approx(3 / 9) and block["crash_rate"] == pytest.approx(1 / 9)
    assert block["delta_mean"] == pytest.approx(-0.4) and literals["delta_mean"] == pytest.approx(-1.7 / 3)
    assert block["delta_ci"] is not None and block["noise_floor"] == pytest.approx(0.02)
    diff = stats["literals_minus_block"]
    assert diff["pairs"] == 3 and diff["delta"]["test"] == "wilcoxon signed-rank"
    assert diff["delta"]["mean_difference"] == pytest.approx(-0.5 / 3)  # (-0.2, -0.1, -0.2) per pair
    assert diff["valid_share"]["per_pair"] == pytest.approx([0.5 - 1.0, 1.0 - 0.5, 0.75 - 0.8])
    assert diff["crash_rate"]["mean"] == pytest.approx((1 / 3 + 0 + (2 / 3 - 1 / 3)) / 3)
    assert diff["delta"]["ci"]["high"] < 0 and stats["missing"] == {}
    assert diff["delta_mean"] == pytest.approx(-0.5 / 3) and diff["baselines_differ"] == []


def test_a_missing_repeat_is_reported_and_left_out_of_the_pairs() -> None:
    stats = edit_statistics([record("block", 0, best=4.0), record("block", 1, best=4.1),
                             record("literals", 0, best=3.9)])
    assert stats["missing"] == {"literals": [1]} and stats["literals_minus_block"]["pairs"] == 1
    assert stats["literals_minus_block"]["delta"]["test"] == "none"  # one pair decides nothing
    assert stats["modes"]["block"]["delta_ci"] is None
    assert stats["literals_minus_block"]["delta_mean"] == pytest.approx(-0.1)  # shown even below 3 pairs


def test_pairs_whose_baselines_differ_are_named() -> None:
    records = [record("block", 0, best=4.0), {**record("literals", 0, best=3.9), "baseline": 4.6}]
    assert edit_statistics(records)["literals_minus_block"]["baselines_differ"] == [0]
