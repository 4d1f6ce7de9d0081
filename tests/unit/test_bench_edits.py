"""The edit-mode benchmark's collector (benchmarks/bench_edits.py): what counts as a valid LLM answer and a crash, that
earlier collections are kept, that unpaired runs are refused, the per-mode and paired statistics, and the block arm
taken from the search benchmark's arm A (`--block-from`)."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest

from benchmarks import bench_edits
from benchmarks.bench_edits import (
    borrowed_block_records,
    edit_statistics,
    llm_refusals,
    merged_records,
    pairing_problems,
    record_of,
    spec_conditions,
    trace_counts,
)
from infra.bundle import read_bundle

SEARCH_RESULTS = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "bench-search"
CONDITIONS = {"budget.mode": "flops", "budget.value": 1.2e11, "levels": ["1"], "proposer": "hybrid",
              "search.temperature": 0.7, "workload.reference": "tinygpt"}


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
            "llm_calls": asked, "llm_seconds": 1.0, "wall_seconds": 2.0, "best_changes": {}, "conditions": CONDITIONS}


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


def test_a_pair_whose_specs_differ_beyond_the_edit_mode_is_refused_naming_the_field() -> None:
    other = {**record("literals", 0, best=3.9), "conditions": {**CONDITIONS, "search.temperature": 0.5}}
    assert pairing_problems([record("block", 0, best=4.0), other]) == [
        "repeat 0: bench-edits-block-A-r0 and bench-edits-literals-A-r0 differ in more than the edit mode and id: "
        "search.temperature (0.7 vs 0.5)"]
    with pytest.raises(ValueError, match="search.temperature"):
        edit_statistics([record("block", 0, best=4.0), other])
    bare = {key: value for key, value in record("literals", 0, best=3.9).items() if key != "conditions"}
    assert pairing_problems([record("block", 0, best=4.0), bare]) == [
        "repeat 0: bench-edits-literals-A-r0 has no recorded spec conditions (collect it again from its run folder or "
        "bundle)"]


def test_two_block_runs_of_one_repeat_are_refused() -> None:
    borrowed = {**record("block", 0, best=4.1), "meta_run_id": "bench-search-A-r0"}
    assert pairing_problems([record("block", 0, best=4.0), borrowed, record("literals", 0, best=3.9)]) == [
        "repeat 0 has two block runs: bench-edits-block-A-r0 and bench-search-A-r0"]


def search_run(tmp_path: Path, meta_run_id: str = "bench-search-A-r3") -> Path:
    """A results folder holding one committed bundle of the search benchmark and its runs.json entry, plus an
    entry of another arm (not the block arm)."""
    results = tmp_path / "bench-search"
    (results / "runs").mkdir(parents=True)
    shutil.copy(SEARCH_RESULTS / "runs" / f"{meta_run_id}.tar.gz", results / "runs")
    entries = [e for e in json.loads((SEARCH_RESULTS / "runs.json").read_text())
               if e["meta_run_id"] in (meta_run_id, "bench-search-tpe-r3")]
    (results / "runs.json").write_text(json.dumps(entries))
    return results


def test_the_block_arm_is_read_from_the_search_benchmarks_bundles_with_its_recorded_commit(tmp_path: Path) -> None:
    [block] = borrowed_block_records(search_run(tmp_path), "bench-search-A")
    assert (block["meta_run_id"], block["mode"], block["repeat"], block["seed"]) == ("bench-search-A-r3", "block", 3, 3)
    assert block["commit"] == "f98a648" and block["wall_seconds"] == 931.0  # runs.json's, not the bundle's times
    assert block["model"] == "local/qwen2.5-coder-1.5b" and block["trainings"] == 24 and block["asked"] >= block["valid"]
    assert block["conditions"]["levels"] == ["1"] and "seed" not in block["conditions"]


def test_the_search_benchmarks_arm_a_pairs_with_a_literals_run_of_the_same_options(tmp_path: Path) -> None:
    results = search_run(tmp_path)
    [block] = borrowed_block_records(results, "bench-search-A")
    files = read_bundle(results / "runs" / "bench-search-A-r3.tar.gz").runs["bench-search-A-r3"].files
    spec = files["spec.json"]
    literals_spec = {**spec, "meta_run_id": "bench-edits-literals-A-r3", "name": "ablation-bench-edits-literals",
                     "workload": {**spec["workload"], "edits": "literals"}}
    literals = record_of("bench-edits-literals-A-r3", "literals", "f98a648", spec=literals_spec,
                         summary=files["summary.json"], trace=files["trace.json"], model=block["model"],
                         wall_seconds=1.0)
    assert pairing_problems([block, literals]) == []
    longer = record_of("bench-edits-literals-A-r3", "literals", "f98a648", summary=files["summary.json"],
                       spec={**literals_spec, "iterations": 6, "noise_repeats": 0}, trace=files["trace.json"],
                       model=block["model"], wall_seconds=1.0)
    assert pairing_problems([block, longer]) == [
        "iterations differs between runs: 6, 8",
        "repeat 3: bench-search-A-r3 and bench-edits-literals-A-r3 differ in more than the edit mode and id: "
        "iterations (8 vs 6), noise_repeats (2 vs 0)"]


def test_an_older_spec_without_the_edit_mode_has_the_conditions_of_a_block_run() -> None:
    spec = read_bundle(SEARCH_RESULTS / "runs" / "bench-search-A-r0.tar.gz").runs["bench-search-A-r0"].files["spec.json"]
    assert "edits" not in spec["workload"]  # written at 5ffff0e, before edit modes
    newer = {**spec, "workload": {**spec["workload"], "edits": "literals", "max_sites": 12}, "seed": 7}
    assert spec_conditions(spec) == spec_conditions(newer)
    assert spec_conditions(spec)["workload.max_sites"] == 12


def test_a_record_collected_before_a_spec_field_existed_has_its_default() -> None:
    from benchmarks.bench_edits import condition_differences, default_condition

    spec = read_bundle(SEARCH_RESULTS / "runs" / "bench-search-A-r0.tar.gz").runs["bench-search-A-r0"].files["spec.json"]
    today = spec_conditions(spec)
    older = {k: v for k, v in today.items() if k != "research_confirm_seeds"}  # collected before that field
    assert default_condition("research_confirm_seeds") == 64 and condition_differences(today, older) == []
    changed = {**today, "research_confirm_seeds": 0}
    assert condition_differences(changed, older) == ["research_confirm_seeds (0 vs 64)"]


def test_a_missing_bundle_is_one_line(tmp_path: Path) -> None:
    results = search_run(tmp_path)
    (results / "runs" / "bench-search-A-r3.tar.gz").unlink()
    with pytest.raises(SystemExit, match="no bundle at .*bench-search-A-r3.tar.gz"):
        borrowed_block_records(results, "bench-search-A")


def test_collecting_with_block_from_writes_runs_json_with_the_borrowed_block_arm(tmp_path: Path,
                                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    out, state = tmp_path / "bench-edits", tmp_path / "state"
    (state / "runs").mkdir(parents=True)
    monkeypatch.setattr(sys, "argv", ["bench_edits.py", "--state", str(state), "--commit", "f98a648", "--out", str(out),
                                      "--block-from", "bench-search-A", "--block-results", str(search_run(tmp_path))])
    bench_edits.main()
    records = json.loads((out / "runs.json").read_text())
    assert [(r["meta_run_id"], r["mode"], r["commit"]) for r in records] == [("bench-search-A-r3", "block", "f98a648")]
    stats = json.loads((out / "statistics.json").read_text())
    assert stats["missing"] == {"block": [0, 1, 2], "literals": [0, 1, 2, 3]}
    assert stats["literals_minus_block"]["pairs"] == 0
    assert not list((out / "runs").iterdir())  # the borrowed runs' bundles stay with the search benchmark
