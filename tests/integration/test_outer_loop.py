"""The outer loop end to end with the scripted LLM on the toy workload: 2 generations; Level 1.5 retunes the config
(its unsupported freeze is refused and re-asked); Level 2 generates two samples from a skeleton (best-of-N): one
breaks the policy and one passes, the valid one is stored in SeaweedFS with a VersionId, logged in MLflow, and in
generation 2 it puts its own candidates on the table (propose) and they are trained."""

from __future__ import annotations

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


class TryUntried:
    name = "try_untried"

    def screen(self, ctx, candidates):
        os.listdir("/")
        return {"choose": 0}
'''

ACCEPTED = '''import random

import helpers as h


class TryUntried:
    """Put the first untried parameter on the table, at a nearby value."""

    name = "try_untried"

    def __init__(self):
        self.proposed = 0

    def propose(self, ctx):
        untried = h.untried(ctx)
        if not untried:
            return None
        rng = random.Random(ctx["seed"])
        value = h.neighbour(ctx, untried[0], rng)
        return [h.candidate(untried[0], value, "never tried")]

    def observe(self, ctx, result):
        self.proposed += 1
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
            "research.explore": [{"ideas": [{"problem": "parameters never tried", "evidence": "untouched_params",
                                             "idea": "propose an untried parameter"}]}],
            "research.critique": [{"choice": 0, "reason": "simple"}],
            "research.specify": [{"name": "try_untried", "hooks": ["propose", "observe"],
                                  "state": "a counter", "behaviour": "propose the first untried parameter"}],
        },
        by_key={"adjust/g0/a0": {"freeze": ["WIDTH"], "unfreeze": [], "strategy": "exploit", "guidance": "",
                                 "reason": "width is costly"},
                "research/g0/generate/r0/n0": f"```python\n{REJECTED}```",
                "research/g0/generate/r0/n1": f"```python\n{ACCEPTED}```"},
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
    rejected = store.history("try_untried", status="rejected")
    assert len(rejected) == 1 and rejected[0].generation == 0
    source, _ = store.get("try_untried", rejected[0].version_id, status="rejected")
    assert "import os" in source
    report = store.get_document("try_untried", rejected[0].version_id, "validation")
    assert report["ok"] is False and report["stage_failed"] == "policy"
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    assert all(m.version != rejected[0].version_id for e in trace.experiments for m in e.mechanisms)


def test_the_valid_sample_is_stored_logged_and_its_candidates_are_trained(outer) -> None:
    spec, settings, res, store, summary = outer
    accepted = store.history("try_untried", status="accepted")
    assert len(accepted) == 1 and accepted[0].version_id and accepted[0].meta_run_id == spec.meta_run_id
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    generation_two = trace.in_generation(1)
    assert len(generation_two) == 2
    trained = []
    for experiment in generation_two:
        activity = {m.name: m for m in experiment.mechanisms}["try_untried"]
        assert activity.version == accepted[0].version_id and activity.calls["propose"] == 1
        if experiment.proposed_by == "mechanism:try_untried":  # its candidate trained: a changed decision
            assert activity.changed == ["propose"] and experiment.hypothesis == "never tried"
            trained.append(experiment)
        else:  # its candidate broke a constraint, was refused like an LLM proposal, and the LLM's trained instead
            assert activity.changed == [] and experiment.proposed_by == "llm"
            assert any(e.startswith("try_untried: the constraint") for e in experiment.proposal_errors)
    assert trained  # at least once its candidate was on the table and trained
    tried_in_g0 = {name for e in trace.in_generation(0) for name in e.changes}
    assert not tried_in_g0 & set(trained[0].changes)  # an untried parameter was put on the table
    assert all(not e.mechanisms for e in trace.in_generation(0))
    runs = runs_of(res.tracker, spec.meta_run_id, kind="mechanism")
    by_status = {r.data.tags["bilevel.status"]: r for r in runs}
    assert by_status["accepted"].data.tags["bilevel.version_id"] == accepted[0].version_id
    assert by_status["accepted"].data.tags["bilevel.sha256"] == accepted[0].sha256
    assert by_status["rejected"].data.tags["bilevel.store_key"].startswith("attempts/")
    [research] = runs_of(res.tracker, spec.meta_run_id, kind="research")
    verdict = research.data.tags["bilevel.verdict"]
    assert "accepted try_untried" in verdict and "1 of 2 samples valid" in verdict


def test_level_15_refusal_was_re_asked_and_the_trace_persisted(outer) -> None:
    spec, settings, res, store, summary = outer
    generations = runs_of(res.tracker, spec.meta_run_id, kind="generation")
    assert {g.data.tags["bilevel.level15.source"] for g in generations} == {"llm"}
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    assert trace.generations[1].config.strategy == "exploit" and trace.generations[1].config.frozen == ()
    assert len(trace.experiments) == 1 + 2 * 2
    assert len(launches(settings)) == 5
    assert summary.mechanisms and summary.mechanisms[0]["name"] == "try_untried"
    calls = [call for call in llm_calls(settings) if "error" not in call]
    assert [c["call_key"] for c in calls if c["purpose"] == "adjust_config"][:2] == ["adjust/g0/a0", "adjust/g0/a1"]
    proposals = sum(e.llm.calls for e in trace.experiments)
    assert summary.llm.calls > proposals  # Level 1.5 and Level 2 calls are accounted too...
    assert summary.llm.calls == len(calls)  # ...each exactly once
