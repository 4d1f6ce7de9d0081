"""What the ablation report says about Level 2 (per meta-run: activations with simulated gain, novelty and credit),
the failures and costs per arm, and planned comparisons: on small synthetic traces, no services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from mechanisms.novelty import Novelty as AssessedNovelty
from reports.ablation_page import ablation_page
from reports.arm_costs import RunCost, arm_costs
from reports.build import build_ablation_report
from reports.level2 import level2_of, level2_of_runs, level2_totals, read_novelty
from reports.stats import ablation_statistics
from search.ablation import AblationManifest, merge_manifests, parse_comparisons
from search.active_set import ActiveMechanism, ActiveSet, SimulatedGain
from search.config import SearchConfig
from search.influence import mechanism_influence
from search.trace import GenerationEnd, LLMUsage, MechanismDecision, Trace, TraceCounts
from tests.unit.report_fixtures import HOSTILE, synthetic_trace, write_ablation, write_run

LONG_VERSION = "3f2a9c81d0b4e7a6c5d4e3f2a1b0c9d8"  # an S3 VersionId is longer than a label's 12 characters
NOVELTY = AssessedNovelty(closest="library:one_factor", similarity=0.93, derived=True).label


def with_level2(trace: Trace, *, verdict: str = "accepted anneal: simulated Δ -0.05", novelty: str | None = NOVELTY,
                accepted: bool = True) -> Trace:
    """The synthetic trace (anneal@v1 active from generation 1) as if Level 2 had activated anneal after generation
    0 with a simulated gain, and run a session after generation 1 that activated nothing."""
    anneal = ActiveMechanism.from_source("anneal", "class Anneal: ...", version="v1", novelty=novelty,
                                         parents=["library:one_factor"], simulated=SimulatedGain(
                                             delta=-0.05, ci_low=-0.08, ci_high=-0.02, seeds=16, iterations=8))
    first = GenerationEnd(generation=0, config=SearchConfig(), active=ActiveSet(mechanisms=[anneal]), done=True,
                          level2=MechanismDecision(verdict=verdict, accepted=anneal.label if accepted else None,
                                                   llm=LLMUsage(calls=5, seconds=40.0)))
    second = GenerationEnd(generation=1, config=SearchConfig(), active=ActiveSet(mechanisms=[anneal]), done=True,
                           level2=MechanismDecision(verdict="no sample beat the current search",
                                                    llm=LLMUsage(calls=4, seconds=30.0)))
    return trace.with_end(first).with_end(second)


def test_novelty_labels_read_back_both_shapes() -> None:
    adapted = read_novelty(AssessedNovelty(closest="library:tabu", similarity=0.81, derived=True).label)
    invented = read_novelty(AssessedNovelty(closest="snippet:live_propose", similarity=0.42, derived=False).label)
    assert (adapted.kind, adapted.reference, adapted.similarity) == ("adapted", "library:tabu", 0.81)
    assert (invented.kind, invented.reference, invented.similarity) == ("invented", "snippet:live_propose", 0.42)
    assert read_novelty(None).kind == read_novelty("made up <b>").kind == "unknown"


def test_an_activation_has_its_simulated_gain_novelty_parents_and_credit() -> None:
    trace = with_level2(synthetic_trace(3, with_mechanisms=True))
    entry = level2_of("C-r0", trace)
    assert [(s.generation, s.accepted, s.llm_seconds) for s in entry.sessions] == [(0, "anneal@v1", 40.0),
                                                                                  (1, None, 30.0)]
    [activation] = entry.activations
    assert (activation.name, activation.version, activation.generation) == ("anneal", "v1", 0)
    assert activation.simulated_delta == -0.05 and activation.simulated_ci == (-0.08, -0.02)
    assert activation.novelty.kind == "adapted" and activation.novelty.reference == "library:one_factor"
    assert activation.novelty.similarity == 0.93 and activation.parents == ["library:one_factor"]
    [influence] = [m for m in mechanism_influence({"C-r0": trace}) if m.name == "anneal"]
    assert activation.credited_delta == pytest.approx(influence.credited_delta)
    assert activation.experiments_active == influence.experiments_active == 15  # generations 1 and 2 of 23
    assert activation.experiments_influenced == influence.experiments_influenced
    assert activation.kept_influenced == sum(1 for i in influence.iterations if i.kept)


def test_a_long_version_id_is_matched_through_its_label() -> None:
    trace = with_level2(synthetic_trace(3))
    end = trace.generation_end(0)
    assert end is not None and end.level2 is not None
    mechanism = end.active.mechanisms[0].model_copy(update={"version": LONG_VERSION})
    end = end.model_copy(update={"active": ActiveSet(mechanisms=[mechanism]),
                                 "level2": end.level2.model_copy(update={"accepted": mechanism.label})})
    [activation] = level2_of("C-r0", trace.with_end(end)).activations
    assert activation.version == LONG_VERSION and activation.simulated_delta == -0.05


def test_an_imported_trace_whose_label_kept_the_old_version_id_still_finds_the_mechanism() -> None:
    """`bilevel import` into another store renames VersionIds in the run's files, not the 12-character label."""
    trace = with_level2(synthetic_trace(3))
    end = trace.generation_end(0)
    assert end is not None and end.level2 is not None
    mechanism = end.active.mechanisms[0].model_copy(update={"version": LONG_VERSION, "origin": "C-r0/g0"})
    end = end.model_copy(update={"active": ActiveSet(mechanisms=[mechanism]),
                                 "level2": end.level2.model_copy(update={"accepted": "anneal@0123456789ab"})})
    [activation] = level2_of("C-r0", trace.with_end(end)).activations
    assert activation.version == LONG_VERSION and activation.simulated_ci == (-0.08, -0.02)


def test_runs_without_a_session_are_left_out_and_totals_add_up() -> None:
    runs = level2_of_runs({"A-r0": synthetic_trace(1), "C-r0": with_level2(synthetic_trace(1, with_mechanisms=True)),
                           "C-r1": with_level2(synthetic_trace(2), accepted=False)})
    assert [r.meta_run_id for r in runs] == ["C-r0", "C-r1"]
    totals = level2_totals(runs)
    assert (totals.meta_runs, totals.sessions, totals.activations, totals.adapted, totals.invented) == (2, 4, 1, 1, 0)
    assert totals.mean_simulated_delta == -0.05 and totals.credited_delta == runs[0].activations[0].credited_delta


def test_arm_costs_rates_and_medians() -> None:
    def run(experiments: int, crashes: int, invalid: int, seconds: float, wall: float | None) -> RunCost:
        return RunCost(counts=TraceCounts(experiments=experiments, crashes=crashes, invalid=invalid),
                       llm=LLMUsage(calls=3, seconds=seconds), wall_seconds=wall)

    [a, tpe] = arm_costs({"A": [run(24, 2, 1, 100.0, 600.0), run(24, 0, 3, 300.0, None), run(24, 1, 0, 200.0, 900.0)],
                          "tpe": []})
    assert (a.meta_runs, a.experiments, a.crashes, a.invalid) == (3, 72, 3, 4)
    assert a.crash_rate == pytest.approx(3 / 72) and a.invalid_rate == pytest.approx(4 / 72)
    assert (a.llm_calls, a.llm_seconds_total, a.llm_seconds_median) == (9, 600.0, 200.0)
    # the run without a clock is left out, and counted
    assert (a.wall_seconds_total, a.wall_seconds_median, a.wall_seconds_runs) == (1500.0, 750.0, 2)
    assert tpe.crash_rate is None and tpe.wall_seconds_median is None


# -- planned comparisons -----------------------------------------------------------------------------------------

BASELINES = [2.86, 2.90, 2.83, 2.88, 2.85]
PLANNED = [("C", "A"), ("C", "library"), ("C", "random"), ("C", "tpe"), ("A", "tpe")]


def repeats(deltas: list[float]) -> list[tuple[float, float] | None]:
    return [(b, b + d) for b, d in zip(BASELINES, deltas, strict=True)]


def test_planned_comparisons_without_c_are_listed_as_not_run_and_left_out_of_holm() -> None:
    arms = {"A": repeats([-1.0, -1.1, -0.9, -1.2, -1.05]), "library": repeats([-1.7, -1.8, -1.75, -1.9, -1.6]),
            "random": repeats([-0.9, -0.95, -0.8, -1.0, -0.85]), "tpe": repeats([-1.3, -1.35, -1.2, -1.4, -1.33])}
    result = ablation_statistics(arms, references=["A"], pairs=PLANNED,
                                 noise_floors={arm: [0.02, 0.03, 0.04, 0.05, 0.06] for arm in arms})
    assert result.planned and [(c.arm, c.reference) for c in result.comparisons] == PLANNED
    for comparison in result.comparisons[:4]:
        assert comparison.test == "none" and comparison.p_holm is None
        assert comparison.reason == "not run yet: C has no finished repeat"
    a_tpe = result.comparison("A", "tpe")
    assert result.tests == 1 and a_tpe.p_holm == a_tpe.p_value  # a family of the one test made
    assert a_tpe.mean_difference == pytest.approx(0.266) and a_tpe.noise_floor == pytest.approx(0.04)


def test_with_c_the_planned_family_is_holm_corrected_together() -> None:
    arms = {name: repeats([-1.0 - 0.1 * i - 0.01 * k for k in range(5)])
            for i, name in enumerate(["A", "C", "library", "random", "tpe"])}
    result = ablation_statistics(arms, references=["A"], pairs=PLANNED)
    assert result.tests == 5
    raw = [c.p_value for c in result.comparisons]
    assert all(p is not None for p in raw)
    assert min(c.p_holm or 1.0 for c in result.comparisons) == pytest.approx(min(1.0, 5 * min(raw)))  # type: ignore[type-var]


def test_parse_comparisons_and_its_one_line_refusals() -> None:
    assert parse_comparisons("C-A, C-library,A-tpe") == [("C", "A"), ("C", "library"), ("A", "tpe")]
    for text, message in [("C", "is not a pair"), ("C-A-B", "is not a pair"), ("C-nope", "unknown arm 'nope'"),
                          ("C-C", "with itself"), ("C-A,A-C", "compared twice"), ("", "is not a pair")]:
        with pytest.raises(ValueError, match=message):
            parse_comparisons(text)


def test_planned_comparisons_join_a_manifest_once_and_cannot_change(tmp_path: Path) -> None:
    first = AblationManifest.model_validate_json(write_ablation(tmp_path, "m", gains={"A": 0.0}).read_text())
    planned = first.model_copy(update={"comparisons": PLANNED})
    assert merge_manifests(first, planned).comparisons == PLANNED  # a later shard plans them
    assert merge_manifests(planned, first).comparisons == PLANNED  # a shard without --compare keeps them
    with pytest.raises(ValueError, match="tests are fixed once"):
        merge_manifests(planned, planned.model_copy(update={"comparisons": PLANNED[:2]}))


# -- the page and statistics.json ----------------------------------------------------------------------------------


def test_report_of_control_arms_with_a_planned_c_says_not_run_yet(tmp_path: Path) -> None:
    path = write_ablation(tmp_path, "bench", gains={"A": 0.0, "library": 0.03, "random": 0.0, "tpe": 0.01})
    manifest = AblationManifest.model_validate_json(path.read_text())
    path.write_text(manifest.model_copy(update={"comparisons": PLANNED}).model_dump_json())
    page = build_ablation_report(tmp_path, "bench", tmp_path / "out", run_pages=False)
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert data["level2"] == [] and [c["arm"] for c in data["arm_costs"]] == ["A", "library", "random", "tpe"]
    assert all(c["meta_runs"] == 3 and c["experiments"] == 69 for c in data["arm_costs"])
    assert [c["reason"] for c in data["statistics"]["comparisons"][:4]] == ["not run yet: C has no finished repeat"] * 4
    html = page.read_text()
    assert "Planned comparisons" in html and 'id="level2"' in html and "Not run yet: no meta-run of C" in html


def test_report_of_an_ablation_with_c_shows_what_level2_did(tmp_path: Path) -> None:
    write_ablation(tmp_path, "abl", repeats=3)  # arms A, C, random; C runs anneal@v1 from generation 1
    runs = tmp_path / "runs"
    for repeat in range(3):
        folder = f"abl-C-s{repeat}"
        trace = Trace.model_validate_json((runs / folder / "trace.json").read_text())
        write_run(runs, folder, with_level2(trace, verdict=f"accepted anneal {HOSTILE}"), seed=repeat,
                  levels=("1", "1.5", "2"))
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert [(e["meta_run_id"], e["arm"]) for e in data["level2"]] == [(f"abl-C-s{r}", "C") for r in range(3)]
    activation = data["level2"][0]["activations"][0]
    assert activation["simulated_ci"] == [-0.08, -0.02] and activation["novelty"]["kind"] == "adapted"
    assert "anneal@v1" in page and "adapted from library:one_factor (similarity 0.93)" in page
    assert HOSTILE not in page and "&lt;script&gt;" in page  # the verdict is untrusted text
    assert 'id="costs"' in page and not data["statistics"]["planned"]


def test_a_page_without_level2_arms_has_no_level2_section() -> None:
    statistics = ablation_statistics({"A": repeats([-1.0] * 5), "tpe": repeats([-1.2] * 5)}, references=["A"])
    assert 'id="level2"' not in ablation_page("x", statistics)


def test_an_ablations_level2_repeats_draw_parents_from_their_own_run_only(tmp_path: Path) -> None:
    from flows.ablation import AblationSpec
    from search.ablation import STANDARD_ARMS
    from search.run_spec import Budget, MetaRunSpec, WorkloadRef

    template = MetaRunSpec(meta_run_id="template", workload=WorkloadRef(reference="toy"), budget=Budget(mode="steps",
                                                                                                       value=100))
    spec = AblationSpec(ablation_id="x", arms=["A", "C"], template=template)
    assert template.population == "all"  # a nightly run keeps its cross-night memory
    assert spec.meta_run_spec(STANDARD_ARMS["C"], 1).population == "own"
    assert spec.meta_run_spec(STANDARD_ARMS["A"], 1).population == "all"
