"""A small real ablation on a local Dask cluster of 2 worker processes, with the scripted LLM: trainings run in
the workers (real subprocess runs of the toy workload), the manifest lists paired meta-runs, and the report's
statistics come from the real runs."""

from __future__ import annotations

import json
import os

import psutil
import pytest

from flows.ablation import AblationSpec, ablation
from infra.runners import local_dask_cluster, task_runner_factory
from search.run_spec import Budget, MetaRunSpec, WorkloadRef
from tests.integration.scripted import launches, proposal, scripted_settings, wired_resources, write_script

pytestmark = pytest.mark.integration

REPEATS = 3


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("ablation")
    script = write_script(tmp / "answers.json", answers={"propose": [
        proposal({"LEARNING_RATE": 0.05}), proposal({"MOMENTUM": 0.8}), proposal({"WIDTH": 32})]})
    settings = scripted_settings(tmp, script, task_runner="dask", max_workers=2)
    template = MetaRunSpec(meta_run_id="template", workload=WorkloadRef(reference="toy"), generations=1, iterations=2,
                           budget=Budget(mode="steps", value=100))
    spec = AblationSpec(ablation_id="abl-test", arms=["A", "random"], repeats=REPEATS, template=template)
    with local_dask_cluster(2) as address:
        worker_pids = {p.pid for p in psutil.Process(os.getpid()).children(recursive=True)}
        res = wired_resources(settings)
        res.task_runner = task_runner_factory(settings, address)
        manifest = ablation(spec, res)
    return settings, spec, manifest, worker_pids


def test_trainings_ran_in_the_dask_workers(finished) -> None:
    settings, spec, manifest, worker_pids = finished
    entries = launches(settings)
    assert len(entries) == len(spec.arms) * REPEATS * (1 + spec.template.iterations)
    pids = {entry["pid"] for entry in entries}
    assert os.getpid() not in pids
    assert pids <= worker_pids and len(pids) == 2  # both workers trained


def test_manifest_pairs_repeats_by_seed(finished) -> None:
    settings, spec, manifest, _ = finished
    assert manifest.seeds == [0, 1, 2]
    assert [arm.arm.name for arm in manifest.arms] == ["A", "random"]
    for arm in manifest.arms:
        assert arm.meta_run_ids == [f"abl-test-{arm.arm.name}-r{r}" for r in range(REPEATS)]
        for meta_run_id in arm.meta_run_ids:
            assert (settings.runs_dir / meta_run_id / "summary.json").is_file()
    baselines = {arm.arm.name: [json.loads((settings.runs_dir / m / "summary.json").read_text())["baseline_value"]
                                for m in arm.meta_run_ids] for arm in manifest.arms}
    assert baselines["A"] == baselines["random"]  # same seed, same unedited script: paired
    assert len(set(baselines["A"])) == REPEATS  # different seeds differ


def test_report_statistics_come_from_the_real_runs(finished) -> None:
    settings, spec, manifest, _ = finished
    from reports.build import build_report

    page = build_report(settings.state_path, spec.ablation_id, settings.state_path / "reports" / spec.ablation_id)
    assert "wilcoxon" in page.read_text().lower()
    statistics = json.loads((page.parent / "statistics.json").read_text())["statistics"]
    for arm in manifest.arms:
        measured = [json.loads((settings.runs_dir / m / "summary.json").read_text()) for m in arm.meta_run_ids]
        expected = [s["best_value"] - s["baseline_value"] for s in measured]
        reported = next(a for a in statistics["arms"] if a["arm"] == arm.arm.name)
        assert reported["deltas"] == pytest.approx(expected) and reported["n"] == REPEATS
    (comparison,) = statistics["comparisons"]
    assert comparison["arm"] == "random" and comparison["n_pairs"] == REPEATS
