"""benchmarks/level2_repairs.py reads a session record's repairs: where each started, where it ended, and whether it
behaved exactly as a sample before it."""

from __future__ import annotations

from benchmarks.level2_repairs import repairs


def sample(round_index: int, stage: str | None, per_seed: list[float] | None = None, parent: str | None = None) -> dict:
    simulated = {"per_seed": per_seed} if per_seed is not None else None
    return {"round": round_index, "stage_failed": stage, "simulated": simulated, "parent": parent}


def test_a_repair_is_read_with_its_start_its_end_and_whether_it_changed_the_simulated_outcome() -> None:
    record = {"fixture": "f", "samples": [sample(0, "smoke"), sample(0, "benefit", [0.0, 0.1]),
                                          sample(1, "benefit", [0.0, 0.1], parent="library:tabu"),
                                          sample(2, "benefit", [0.0, 0.2]), sample(2, "policy")]}
    rows = repairs(record)
    assert [(r["round"], r["started_from"], r["ended"], r["same_outcome"], r["mutant"]) for r in rows] == [
        (1, "benefit", "benefit", True, True), (2, "benefit", "benefit", False, False),
        (2, "benefit", "policy", False, False)]


def test_a_retry_after_a_round_without_any_class_is_not_a_repair() -> None:
    assert repairs({"fixture": "f", "samples": [sample(1, None, [-0.1])]}) == []
