"""Sharded ablations, the pure parts: repeat ranges, merging manifests of shards, and which repeats are complete."""

from __future__ import annotations

import pytest

from search.ablation import (
    STANDARD_ARMS,
    AblationManifest,
    ArmRuns,
    format_repeats,
    merge_manifests,
    parse_repeats,
    repeat_coverage,
)


@pytest.mark.parametrize(("text", "expected"), [
    ("3-5", [3, 4, 5]), ("3,5,7", [3, 5, 7]), ("0-2,7", [0, 1, 2, 7]), (" 4 ", [4]), ("5,3,3-4", [3, 4, 5]),
])
def test_repeat_ranges(text: str, expected: list[int]) -> None:
    assert parse_repeats(text, 10) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("", "needs repeat numbers"), ("a-b", "not a repeat number"), ("5-3", "runs backwards"), ("-1", "not a repeat"),
    ("3-12", "beyond --repeats 10"), ("1,,2", "not a repeat number"), ("3-", "not a repeat number"),
])
def test_bad_repeat_ranges_fail_in_one_line(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message) as error:
        parse_repeats(text, 10)
    assert "\n" not in str(error.value)


def test_format_repeats_joins_runs_of_numbers() -> None:
    assert format_repeats([0, 1, 2, 5, 7, 8]) == "0-2, 5, 7-8"
    assert format_repeats([]) == ""


def _manifest(arms: list[str], repeats: int, **overrides: object) -> AblationManifest:
    data = dict(ablation_id="abl", created="2025-01-01T00:00:00", workload="toy", model="scripted/replay",
                budget_mode="steps", budget=100, generations=1, iterations=2, seeds=list(range(repeats)),
                reference_arm=arms[0], reference_arms=[arms[0]],
                arms=[ArmRuns(arm=STANDARD_ARMS[a], meta_run_ids=[f"abl-{a}-r{r}" for r in range(repeats)])
                      for a in arms])
    return AblationManifest.model_validate({**data, **overrides})


def test_shards_accumulate_arms_and_repeats() -> None:
    first = _manifest(["A", "random"], 3)
    second = _manifest(["random", "tpe"], 5, created="2025-02-02T00:00:00", reference_arm="random",
                       reference_arms=["random"])
    merged = merge_manifests(first, second)
    assert [item.arm.name for item in merged.arms] == ["A", "random", "tpe"]
    assert merged.seeds == [0, 1, 2, 3, 4]
    ids = {item.arm.name: item.meta_run_ids for item in merged.arms}
    assert ids["random"] == [f"abl-random-r{r}" for r in range(5)] and ids["A"] == [f"abl-A-r{r}" for r in range(3)]
    assert (merged.created, merged.reference_arms) == (first.created, ["A"])  # the first manifest's stay
    assert merge_manifests(merged, first) == merged  # merging an older shard again changes nothing


@pytest.mark.parametrize(("change", "message"), [
    ({"budget": 200}, "budget"), ({"model": "other/model"}, "model"), ({"workload": "tinygpt"}, "workload"),
    ({"seeds": [10, 11, 12]}, "not be paired"), ({"ablation_id": "other"}, "cannot merge"),
])
def test_shards_under_other_conditions_are_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        merge_manifests(_manifest(["A"], 3), _manifest(["A"], 3, **change))


def test_an_arm_redefined_between_shards_is_refused() -> None:
    other = _manifest(["A"], 3)
    other.arms[0] = ArmRuns(arm=STANDARD_ARMS["A"].model_copy(update={"proposer": "tpe"}),
                            meta_run_ids=other.arms[0].meta_run_ids)
    with pytest.raises(ValueError, match="defined differently"):
        merge_manifests(_manifest(["A"], 3), other)


def test_complete_repeats_need_every_arm_finished() -> None:
    coverage = repeat_coverage({"A": [None, None, "failed: boom", None], "C": [None, "incomplete", None]}, 4)
    assert coverage.complete == [0]
    assert coverage.missing == {1: {"C": "incomplete"}, 2: {"A": "failed: boom"}, 3: {"C": "not started"}}
    assert coverage.partial and coverage.describe() == "1 complete repeat(s) (0); missing: 1-3"
    whole = repeat_coverage({"A": [None, None], "C": [None, None]}, 2)
    assert whole.complete == [0, 1] and not whole.partial


def test_a_report_of_incomplete_repeats_says_it_is_partial_and_uses_complete_repeats_only(tmp_path) -> None:
    import json

    from reports.build import build_ablation_report
    from tests.unit.report_fixtures import write_ablation

    write_ablation(tmp_path, "abl", repeats=4, gains={"A": 0.0, "C": 0.03}, missing=[("C", 2)],
                   unfinished=[("A", 3)])
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    assert 'id="partial"' in page and "This report is partial." in page
    assert "complete repeats only (every arm finished for that seed): 0-1" in page and "Missing: 2-3" in page
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert data["partial"] is True and data["complete_repeats"] == [0, 1]
    assert set(data["missing_repeats"]) == {"2", "3"} and data["missing_repeats"]["2"]["C"].startswith("missing: no trace.json")
    assert data["missing_repeats"]["3"]["A"].startswith("incomplete")
    arms = {a["arm"]: a for a in data["statistics"]["arms"]}
    # A's repeat 2 finished, but C's did not: repeat 2 leaves the statistics of both arms (pairs stay paired).
    assert arms["A"]["n"] == 2 and arms["C"]["n"] == 2 and arms["A"]["deltas"][2] is None


def test_a_complete_ablation_report_is_not_partial(tmp_path) -> None:
    import json

    from reports.build import build_ablation_report
    from tests.unit.report_fixtures import write_ablation

    write_ablation(tmp_path, "abl", repeats=2, gains={"A": 0.0, "C": 0.03})
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert 'id="partial"' not in page and data["partial"] is False and data["complete_repeats"] == [0, 1]
