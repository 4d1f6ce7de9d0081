"""The outer loop end to end with the scripted LLM: 2 generations; Level 1.5 retunes the config; Level 2 writes a
mechanism that fails validation (rejected, stored as rejected, never runs), repairs it into one that passes, which is
stored in SeaweedFS with a VersionId, logged in MLflow, called in generation 2 and changes decisions there."""

from __future__ import annotations

import pytest

from flows.meta_run import meta_run
from infra.runs import read_trace
from infra.store import MechanismStore
from search.run_spec import Budget, MetaRunSpec
from tests.fixtures_s3 import s3_server  # noqa: F401  (fixture)
from tests.integration.scripted import launches, llm_calls, proposal, scripted_settings, wired_resources, write_script

pytestmark = pytest.mark.integration

REJECTED = '''import os


class ReadsFiles:
    name = "reads_files"

    def screen(self, ctx, candidates):
        os.listdir("/")
        return {"choose": 0}
'''

ACCEPTED = '''class PreferSecond:
    """Ask for two candidates and train the second one: a more exploratory sample."""

    name = "prefer_second"

    def __init__(self):
        self.seen = 0

    def plan(self, ctx):
        return {"n_candidates": 2}

    def screen(self, ctx, candidates):
        if len(candidates) > 1:
            return {"choose": len(candidates) - 1}
        return None

    def observe(self, ctx, result):
        self.seen += 1
'''


@pytest.fixture(scope="module")
def outer(tmp_path_factory: pytest.TempPathFactory, s3_server):  # noqa: F811
    tmp = tmp_path_factory.mktemp("outer")
    script = write_script(
        tmp / "answers.json",
        answers={
            "propose": [proposal({"MATRIX_LR": 0.006}), proposal({"EMBEDDING_LR": 0.01}),
                        proposal({"WARMUP_RATIO": 0.0}), proposal({"UNEMBEDDING_LR": 0.006})],
            "adjust_config": [{"freeze": ["SEQ_LEN"], "unfreeze": [], "strategy": "exploit",
                               "guidance": "refine the learning rates", "reason": "sequence length is costly"}],
            "research.explore": [{"ideas": [{"problem": "one candidate per iteration", "evidence": "keep rate",
                                             "idea": "ask for two candidates and prefer the second"}]}],
            "research.critique": [{"choice": 0, "reason": "simple"}],
            "research.specify": [{"name": "prefer_second", "hooks": ["plan", "screen", "observe"],
                                  "state": "a counter", "behaviour": "plan asks 2 candidates; screen picks the last"}],
            "research.generate": [f"```python\n{REJECTED}```", f"```python\n{ACCEPTED}```"],
        },
        by_key={"propose/g1/t0/i0/*/c1/*": proposal({"FINAL_LR_FRAC": 0.1}, "second candidate"),
                "propose/g1/t0/i1/*/c1/*": proposal({"FINAL_LR_FRAC": 0.2}, "second candidate")},
    )
    settings = scripted_settings(tmp, script)
    endpoint = s3_server.endpoint
    store = MechanismStore.from_endpoint(endpoint, "outer-loop-test", connect_timeout_s=1.0, read_timeout_s=5.0)
    store.ensure_bucket()
    spec = MetaRunSpec(meta_run_id="outer-test", generations=2, iterations=2, levels=["1", "1.5", "2"],
                       budget=Budget(mode="steps", value=6), seed=0)
    res = wired_resources(settings, store=store)
    summary = meta_run(spec, res)
    return spec, settings, res, store, summary


def test_rejected_attempt_is_stored_as_rejected_and_never_runs(outer) -> None:
    spec, settings, res, store, summary = outer
    rejected = store.history("prefer_second", status="rejected")
    assert len(rejected) == 1 and rejected[0].generation == 0
    source, _ = store.get("prefer_second", rejected[0].version_id, status="rejected")
    assert "import os" in source
    report = store.get_document("prefer_second", rejected[0].version_id, "validation")
    assert report["ok"] is False and report["stage_failed"] == "policy"
    trace = read_trace(settings.runs_dir, spec.meta_run_id)
    assert all(m.version != rejected[0].version_id for e in trace.experiments for m in e.mechanisms)


def test_accepted_mechanism_is_stored_logged_and_changes_decisions(outer) -> None:
    spec, settings, res, store, summary = outer
    accepted = store.history("prefer_second", status="accepted")
    assert len(accepted) == 1 and accepted[0].version_id and accepted[0].meta_run_id == spec.meta_run_id
    trace = read_trace(settings.runs_dir, spec.meta_run_id)
    generation_two = [e for e in trace.experiments if e.generation == 1]
    assert len(generation_two) == 2
    for experiment in generation_two:
        activity = {m.name: m for m in experiment.mechanisms}["prefer_second"]
        assert activity.version == accepted[0].version_id
        assert activity.calls["plan"] == 1 and activity.calls["screen"] == 1
        assert set(activity.changed) == {"plan", "screen"}
        assert set(experiment.changes) == {"FINAL_LR_FRAC"}  # the second candidate was trained
    assert all(not e.mechanisms for e in trace.experiments if e.generation == 0)
    runs = res.tracker.runs_of("bilevel/default", spec.meta_run_id, kind="mechanism")
    by_status = {r.data.tags["bilevel.status"]: r for r in runs}
    assert by_status["accepted"].data.tags["bilevel.version_id"] == accepted[0].version_id
    assert by_status["accepted"].data.tags["bilevel.sha256"] == accepted[0].sha256
    assert by_status["rejected"].data.tags["bilevel.store_key"].startswith("attempts/")
    research = res.tracker.runs_of("bilevel/default", spec.meta_run_id, kind="research")
    assert len(research) == 1 and "accepted prefer_second" in research[0].data.tags["bilevel.verdict"]


def test_level_15_updated_the_config_and_the_trace_persisted(outer) -> None:
    spec, settings, res, store, summary = outer
    generations = res.tracker.runs_of("bilevel/default", spec.meta_run_id, kind="generation")
    assert {g.data.tags["bilevel.level15.source"] for g in generations} == {"llm"}
    trace = read_trace(settings.runs_dir, spec.meta_run_id)
    assert len(trace.experiments) == 1 + 2 * 2
    assert len(launches(settings)) == 5
    assert summary.mechanisms and summary.mechanisms[0]["name"] == "prefer_second"
    proposals = sum(e.llm.calls for e in trace.experiments)
    answered = [call for call in llm_calls(settings) if "error" not in call]
    assert summary.llm.calls > proposals  # Level 1.5 and Level 2 calls are accounted too...
    assert summary.llm.calls == len(answered)  # ...each exactly once
