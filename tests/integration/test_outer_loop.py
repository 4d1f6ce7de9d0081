"""The outer loop end to end with the scripted LLM on the toy workload: 2 generations; Level 1.5 retunes the config
(its unsupported freeze is refused and re-asked); Level 2 draws two samples (by default half are mutants of a
parent): the fresh one, from a skeleton, breaks the policy; the mutant of a library mechanism passes (and beats
its parent, checked as it is beside it), is simulated to beat the current search (its simulated Δ and CI recorded in the
store's validation document, the MLflow tags and the run summary), is stored in SeaweedFS with a VersionId, logged
in MLflow, and in generation 2 it puts its own candidates on the table (propose) and they are trained."""

from __future__ import annotations

import re

import pytest

from flows.meta_run import meta_run
from infra.runs import RunFolder
from infra.store import MechanismStore
from search.run_spec import Budget, MetaRunSpec, WorkloadRef
from tests.fixtures_s3 import s3_server  # noqa: F401  (fixture)
from tests.integration.scripted import (
    launches,
    llm_calls,
    proposal,
    runs_of,
    scripted_settings,
    wired_resources,
    write_script,
)

pytestmark = pytest.mark.integration

REJECTED = '''import os


class PatternMove:
    name = "pattern_move"

    def screen(self, ctx, candidates):
        os.listdir("/")
        return {"choose": 0}
'''

ACCEPTED = '''import helpers as h


class PatternMove:
    """Pattern search: repeat the last improving move, one step further in the same direction."""

    name = "pattern_move"

    def __init__(self):
        self.moves = 0

    def propose(self, ctx):
        kept = [view for view in ctx["trace"] if view["kept"] and h.value_of(view) is not None]
        if len(kept) < 2:
            return None
        before, after = kept[-2]["config"], kept[-1]["config"]
        changes = {}
        for name in h.editable(ctx):
            spec = h.param(ctx, name)
            old, new = before.get(name), after.get(name)
            if spec is None or spec["kind"] not in ("int", "float") or old == new:
                continue
            if spec.get("log") and old > 0 and new > 0:
                value = new * (new / old)
            else:
                value = new + (new - old)
            value = min(max(value, spec["low"]), spec["high"])
            changes[name] = int(round(value)) if spec["kind"] == "int" else value
        if not changes:
            return None
        return [h.candidate(changes, None, "pattern move")]

    def observe(self, ctx, result):
        self.moves += 1
'''


@pytest.fixture(scope="module")
def outer(tmp_path_factory: pytest.TempPathFactory, s3_server):  # noqa: F811
    tmp = tmp_path_factory.mktemp("outer")
    script = write_script(
        tmp / "answers.json",
        answers={
            "propose": [proposal({"LEARNING_RATE": 0.05}), proposal({"MOMENTUM": 0.7}),
                        proposal({"LEARNING_RATE": 0.02}), proposal({"MOMENTUM": 0.9})],
            "adjust_config": [{"freeze": [], "unfreeze": [], "strategy": "exploit",
                               "guidance": "refine the learning rate", "reason": "it helped"}],
            "research.explore": [{"ideas": [{"problem": "improvements are not followed up", "evidence": "kept",
                                             "idea": "repeat the last improving move"}]}],
            "research.specify": [{"name": "pattern_move", "hooks": ["propose", "observe"],
                                  "state": "a counter", "behaviour": "repeat the last improving move"}],
        },
        by_key={"adjust/g0/a0": {"freeze": ["WIDTH"], "unfreeze": [], "strategy": "exploit", "guidance": "",
                                 "reason": "width is costly"},
                "research/g0/generate/r0/n0": f"```python\n{REJECTED}```",
                "research/g0/generate/r0/n10": f"```python\n{ACCEPTED}```"},  # the mutant (population.py)
    )
    settings = scripted_settings(tmp, script)
    store = MechanismStore.from_endpoint(s3_server.endpoint, "outer-loop-test", connect_timeout_s=1.0, read_timeout_s=5.0)
    store.ensure_bucket()
    spec = MetaRunSpec(meta_run_id="outer-test", workload=WorkloadRef(reference="toy"), generations=2, iterations=2,
                       levels=["1", "1.5", "2"], budget=Budget(mode="steps", value=100), seed=0, research_samples=2)
    res = wired_resources(settings, store=store)
    summary = meta_run(spec, res)
    return spec, settings, res, store, summary


def test_the_failed_sample_is_stored_as_rejected_and_never_runs(outer) -> None:
    spec, settings, res, store, summary = outer
    rejected = store.history("pattern_move", status="rejected")
    assert len(rejected) == 1 and rejected[0].generation == 0
    source, _ = store.get("pattern_move", rejected[0].version_id, status="rejected")
    assert "import os" in source
    report = store.get_document("pattern_move", rejected[0].version_id, "validation")
    assert report["ok"] is False and report["stage_failed"] == "policy"
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    assert all(m.version != rejected[0].version_id for e in trace.experiments for m in e.mechanisms)


def test_the_valid_sample_beat_the_current_search_in_simulation_and_its_candidates_are_trained(outer) -> None:
    spec, settings, res, store, summary = outer
    accepted = store.history("pattern_move", status="accepted")
    assert len(accepted) == 1 and accepted[0].version_id and accepted[0].meta_run_id == spec.meta_run_id
    benefit = store.get_document("pattern_move", accepted[0].version_id, "validation")["benefit"]
    assert benefit["ci_high"] < 0 and benefit["iterations"] == spec.iterations and benefit["seeds"] >= 8
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    generation_two = trace.in_generation(1)
    assert len(generation_two) == 2
    trained = []
    for experiment in generation_two:
        activity = {m.name: m for m in experiment.mechanisms}["pattern_move"]
        assert activity.version == accepted[0].version_id and activity.calls["propose"] == 1
        if experiment.proposed_by == "mechanism:pattern_move":  # its candidate trained: a changed decision
            assert activity.changed == ["propose"] and experiment.hypothesis == "pattern move"
            trained.append(experiment)
        else:  # it had no move to repeat (the last change was not kept), and the LLM's candidate trained
            assert activity.changed == [] and experiment.proposed_by == "llm"
    assert trained and trained[0].changes == {"MOMENTUM": pytest.approx(0.9)}  # g0 kept MOMENTUM 0.5 -> 0.7
    assert all(not e.mechanisms for e in trace.in_generation(0))
    runs = runs_of(res.tracker, spec.meta_run_id, kind="mechanism")
    by_status = {r.data.tags["bilevel.status"]: r for r in runs}
    tags = by_status["accepted"].data.tags
    assert tags["bilevel.version_id"] == accepted[0].version_id and tags["bilevel.sha256"] == accepted[0].sha256
    assert float(tags["bilevel.simulated_delta"]) == pytest.approx(benefit["delta"], rel=1e-5)
    assert float(tags["bilevel.simulated_ci"].split(",")[1]) < 0
    assert by_status["rejected"].data.tags["bilevel.store_key"].startswith("attempts/")
    [research] = runs_of(res.tracker, spec.meta_run_id, kind="research")
    verdict = research.data.tags["bilevel.verdict"]
    # the fresh sample breaks the policy; the mutant and its parent as it is (no LLM call) are valid
    assert "accepted pattern_move" in verdict and "2 of 3 samples valid" in verdict and "simulated Δ -" in verdict
    [activated] = summary.mechanisms
    assert activated["name"] == "pattern_move" and activated["simulated"]["delta"] == pytest.approx(benefit["delta"])
    # honest novelty: how close it is to what the prompts showed, in the summary, the MLflow tags and the store
    assert activated["novelty"] == tags["bilevel.novelty"]
    assert re.fullmatch(r"(derived from|invented \(closest) (library|snippet):\w+.*similarity 0\.\d\d\)?",
                        activated["novelty"]), activated["novelty"]
    validation = store.get_document("pattern_move", accepted[0].version_id, "validation")
    assert validation["novelty"] == activated["novelty"]
    # a mutant of the library mechanism with the specified hooks: its parent in the store, the tags and the summary
    assert validation["parent"] == tags["bilevel.mutated_from"] == "library:ucb_bandit"
    assert validation["change"] == tags["bilevel.mutation"] == "rule" and "a mutant of library:ucb_bandit" in verdict
    assert activated["novelty"].startswith("derived from library:ucb_bandit (similarity ")
    rejected = [r.data.tags for r in runs if r.data.tags["bilevel.status"] == "rejected"]
    assert sorted(t.get("bilevel.mutated_from", "fresh") for t in rejected) == ["fresh", "library:ucb_bandit"]
    # the parent as it is: checked under its own name, live, but the mutant simulated better
    [itself] = [t for t in rejected if t.get("bilevel.mutation") == "as is"]
    assert itself["bilevel.mechanism"] == "ucb_bandit" and "bilevel.simulated_delta" in itself


def test_level_15_refusal_was_re_asked_and_the_trace_persisted(outer) -> None:
    spec, settings, res, store, summary = outer
    generations = runs_of(res.tracker, spec.meta_run_id, kind="generation")
    assert {g.data.tags["bilevel.level15.source"] for g in generations} == {"llm"}
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    assert trace.generations[1].config.strategy == "exploit" and trace.generations[1].config.frozen == ()
    assert len(trace.experiments) == 1 + 2 * 2
    assert len(launches(settings)) == 5
    assert summary.mechanisms and summary.mechanisms[0]["name"] == "pattern_move"
    calls = [call for call in llm_calls(settings) if "error" not in call]
    assert [c["call_key"] for c in calls if c["purpose"] == "adjust_config"][:2] == ["adjust/g0/a0", "adjust/g0/a1"]
    proposals = sum(e.llm.calls for e in trace.experiments)
    assert summary.llm.calls > proposals  # Level 1.5 and Level 2 calls are accounted too...
    assert summary.llm.calls == len(calls)  # ...each exactly once
