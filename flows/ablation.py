"""`bilevel ablate`: arms x paired repeats of meta-runs with the same LLM, budget, seeds and iteration count."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from prefect import flow
from pydantic import BaseModel, Field

from flows.meta_run import meta_run
from infra.resources import Resources, meta_run_spec_from_settings
from infra.run_sync import fetch_manifest, fetch_run, publish_manifest
from infra.runs import RunFolder, write_json_atomic
from infra.settings import Settings
from infra.store import MechanismStore
from search.ablation import (
    MAX_REPEATS,
    STANDARD_ARMS,
    AblationManifest,
    ArmRuns,
    ArmSpec,
    manifest_path,
    merge_manifests,
)
from search.run_spec import MetaRunSpec
from workloads.base import Workload


class AblationSpec(BaseModel):
    """What to compare: arms (standard names), n repeats, and what every meta-run shares (the workload, budget,
    search rules, knobs), so that the arms differ only in what they are."""

    ablation_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    arms: list[str] = Field(default_factory=lambda: ["A", "C", "random"], min_length=1)
    repeats: int = Field(3, ge=1, le=MAX_REPEATS, description="The study's paired repeats (seeds template.seed..).")
    only_repeats: list[int] | None = Field(None, description="Run just these repeats (a shard); None: all of them.")
    template: MetaRunSpec = Field(description="The meta-run every arm and repeat starts from (its id is unused).")
    reference_arms: list[str] = Field(default_factory=lambda: ["A"], description="Arms every other arm is tested against.")
    comparisons: list[tuple[str, str]] = Field(default_factory=list, description="Planned (arm, reference) pairs "
                                               "(search/ablation.py parse_comparisons); empty: every arm against each "
                                               "reference arm.")

    @classmethod
    def from_settings(cls, settings: Settings, workload: Workload, *, ablation_id: str, arms: list[str], repeats: int,
                      reference_arms: list[str] | None = None, only_repeats: list[int] | None = None,
                      comparisons: list[tuple[str, str]] | None = None) -> AblationSpec:
        """An ablation whose meta-runs follow the settings (budget, search rules, tracks, seeds) like `bilevel run`."""
        template = meta_run_spec_from_settings(settings, workload, meta_run_id="template", name="template")
        spec = cls(ablation_id=ablation_id, arms=arms, repeats=repeats, template=template,
                   reference_arms=reference_arms or [arms[0]], only_repeats=only_repeats,
                   comparisons=comparisons or [])
        spec.arm_specs()  # unknown arm names fail here, before anything starts
        unknown = [arm for arm in spec.reference_arms if arm not in spec.arms]
        if unknown:
            raise ValueError(f"reference arms {unknown} are not among the arms {spec.arms}")
        return spec

    @property
    def needs_store(self) -> bool:
        """Whether an arm runs Level 2 (it stores and loads mechanisms)."""
        return any("2" in arm.levels for arm in self.arm_specs())

    @property
    def selected_repeats(self) -> list[int]:
        """The repeats this process runs: --only-repeats, or all."""
        return list(range(self.repeats)) if self.only_repeats is None else [r for r in self.only_repeats
                                                                            if 0 <= r < self.repeats]

    def arm_specs(self) -> list[ArmSpec]:
        unknown = [arm for arm in self.arms if arm not in STANDARD_ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; choose from {sorted(STANDARD_ARMS)}")
        return [STANDARD_ARMS[arm] for arm in self.arms]

    def meta_run_spec(self, arm: ArmSpec, repeat: int) -> MetaRunSpec:
        """Repeat r of every arm uses seed template.seed + r: the arms are paired by seed. Level 2's mutants start
        from the library and the meta-run's own mechanisms, never another repeat's: the repeats stay independent (a
        later repeat would otherwise inherit an earlier one's credited mechanism, and the result its run order)."""
        return self.template.model_copy(update={
            **({"population": "own"} if "2" in arm.levels else {}),
            "meta_run_id": f"{self.ablation_id}-{arm.name}-r{repeat}",
            "name": f"ablation-{self.ablation_id}",
            "levels": list(arm.levels),
            "seed": self.template.seed + repeat,
            "restart_each_generation": arm.restart_each_generation,
            "proposer": arm.proposer or self.template.proposer,
            "mechanisms": list(arm.mechanisms),
        })


@flow(name="ablation", flow_run_name="{spec.ablation_id}", validate_parameters=False)
def ablation(spec: AblationSpec, res: Resources) -> AblationManifest:
    """Every selected (repeat, arm) meta-run, concurrently up to settings.max_workers. The manifest merges with the
    one already written for this id (here or in the store), so shards accumulate arms and repeats. A meta-run that
    already finished (here, imported, or in the store) is skipped; a failed one is reported and left resumable
    (same ids), the others carry on."""
    arms = spec.arm_specs()
    manifest = _manifest(spec, res, arms)
    jobs = [spec.meta_run_spec(arm, repeat) for repeat in spec.selected_repeats for arm in arms]
    pending = [job for job in jobs if not _finished(res, job.meta_run_id)]
    res.emit("ablation_plan", jobs=len(jobs), skipped=len(jobs) - len(pending))
    runner = res.with_task_runner(meta_run)
    failures: list[str] = []

    def one(job: MetaRunSpec) -> None:
        try:
            runner(job, res)
        except Exception as error:  # one failed meta-run must not stop the others; it stays resumable
            failures.append(f"{job.meta_run_id}: {type(error).__name__}: {str(error)[:200]}")

    pool = ThreadPoolExecutor(max_workers=max(1, res.settings.max_workers))
    try:
        for future in [pool.submit(contextvars.copy_context().run, one, job) for job in pending]:
            future.result()
    except BaseException:  # a stop (SIGTERM, Ctrl-C) does not wait for the running meta-runs; they stay resumable
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    res.emit("ablation", failures=failures)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(pending)} meta-runs failed (resume: bilevel ablate --id "
                           f"{spec.ablation_id} again): " + "; ".join(failures))
    return manifest


def _manifest(spec: AblationSpec, res: Resources, arms: list[ArmSpec]) -> AblationManifest:
    """This run's manifest merged with the one written before for the same id (locally and in the store), written
    back to both: arms and repeats accumulate over shards; conflicting conditions are refused before anything runs."""
    template = spec.template
    manifest = AblationManifest(
        ablation_id=spec.ablation_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        workload=res.workload.name, objective=res.workload.objective, model=res.llm.model,
        budget_mode=template.budget.mode, budget=template.budget.value, generations=template.generations,
        iterations=template.iterations, seeds=[template.seed + r for r in range(spec.repeats)],
        reference_arm=spec.reference_arms[0], reference_arms=spec.reference_arms, comparisons=spec.comparisons,
        arms=[ArmRuns(arm=arm, meta_run_ids=[spec.meta_run_spec(arm, r).meta_run_id for r in range(spec.repeats)])
              for arm in arms],
    )
    path = manifest_path(res.settings.state_path, spec.ablation_id)
    earlier = [AblationManifest.model_validate_json(path.read_text())] if path.is_file() else []
    store = _run_store(res)
    if store is not None:
        earlier += [m for m in [fetch_manifest(store, spec.ablation_id)] if m is not None]
    for previous in reversed(earlier):  # the store's first (shared), then this machine's
        manifest = merge_manifests(previous, manifest)
    write_json_atomic(path, manifest.model_dump(mode="json"))
    if store is not None:
        publish_manifest(store, res.settings.state_path, spec.ablation_id)
    return manifest


def _run_store(res: Resources) -> MechanismStore | None:
    return res.store if res.store is not None and res.settings.store_runs != "never" else None


def _finished(res: Resources, meta_run_id: str) -> bool:
    """Whether a meta-run already finished: its summary says so here (run or imported), or in the store (then it is
    downloaded, so the report finds it)."""
    folder = RunFolder(res.settings.runs_dir, meta_run_id)
    if not _finished_here(folder):
        store = _run_store(res)
        if store is None or not fetch_run(store, res.settings.runs_dir, meta_run_id, only_finished=True):
            return False
    return _finished_here(folder)


def _finished_here(folder: RunFolder) -> bool:
    try:
        summary = folder.read_summary()
    except ValueError:  # unreadable: run it again (resume), it rewrites the summary
        return False
    return summary is not None and summary.stop_reason == "finished"
