"""Early stopping in a real Level-1 meta-run (scripted LLM, real tinygpt trainings, Prefect and MLflow): a hopeless
candidate is stopped at its first checkpoint against the baseline's curve and recorded as `stopped` (not a crash,
never kept, its partial curve kept); the next candidate trains to the end; trainings run warm."""

from __future__ import annotations

import json

import pytest

from flows.meta_run import meta_run
from infra.runs import RunFolder
from search.run_spec import Budget, MetaRunSpec
from tests.integration.scripted import proposal, scripted_settings, tinygpt, wired_resources, write_script

pytestmark = pytest.mark.integration

HOPELESS = {"MATRIX_LR": 0.0001, "EMBEDDING_LR": 0.0001, "UNEMBEDDING_LR": 0.0001}


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("early-stop")
    script = write_script(tmp / "answers.json", answers={"propose": [
        proposal(HOPELESS, "tiny learning rates"), proposal({"MATRIX_LR": 0.006}, "a little higher")]})
    settings = scripted_settings(tmp, script, early_stop=True, early_stop_margin=0.1)
    spec = MetaRunSpec(meta_run_id="early-stop-test", generations=1, iterations=2, levels=["1"],
                       budget=Budget(mode="steps", value=24), seed=0)
    res = wired_resources(settings, workload=tinygpt(settings))
    summary = meta_run(spec, res)
    return settings, spec, summary


def test_a_hopeless_candidate_is_stopped_and_recorded_as_stopped(finished) -> None:
    settings, spec, summary = finished
    baseline, hopeless, better = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace().experiments
    assert baseline.outcome.ok and [f for f, _ in baseline.outcome.curve] == [0.25, 0.5, 0.75]
    assert hopeless.changes == HOPELESS and hopeless.outcome.status == "stopped" and not hopeless.kept
    assert hopeless.outcome.value is None and not hopeless.crashed
    (fraction, loss), = hopeless.outcome.curve
    assert fraction == 0.25 and loss > baseline.outcome.curve[0][1] + 0.1
    assert "25% of the budget" in (hopeless.outcome.error_tail or "")
    assert better.outcome.ok and len(better.outcome.curve) == 3  # within the margin: trained to the end
    assert (summary.stopped, summary.crashes, summary.experiments) == (1, 0, 2)


def test_the_trainings_ran_warm(finished) -> None:
    settings, _, _ = finished
    entries = [json.loads(line) for line in settings.launch_log.read_text().splitlines()]
    assert len(entries) == 3 and all(entry["warm"] for entry in entries)
