"""`bilevel ablate`: arms x paired repeats of meta-runs with the same LLM, budget, seeds and iteration count."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

from prefect import flow
from pydantic import BaseModel, Field

from flows.meta_run import meta_run
from infra.resources import Resources, meta_run_spec_from_settings
from infra.runs import write_json_atomic
from infra.settings import Settings
from search.ablation import STANDARD_ARMS, AblationManifest, ArmRuns, ArmSpec, manifest_path
from search.run_spec import MetaRunSpec
from workloads.base import Workload


class AblationSpec(BaseModel):
    """What to compare: arms (standard names), n repeats, and what every meta-run shares (the workload, budget,
    search rules, knobs), so that the arms differ only in what they are."""

    ablation_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    arms: list[str] = Field(default_factory=lambda: ["A", "C", "random"], min_length=1)
    repeats: int = Field(3, ge=1, le=100)
    template: MetaRunSpec = Field(description="The meta-run every arm and repeat starts from (its id is unused).")
    reference_arms: list[str] = Field(default_factory=lambda: ["A"], description="Arms every other arm is tested against.")

    @classmethod
    def from_settings(cls, settings: Settings, workload: Workload, *, ablation_id: str, arms: list[str], repeats: int,
                      reference_arms: list[str] | None = None) -> AblationSpec:
        """An ablation whose meta-runs follow the settings (budget, search rules, tracks, seeds) like `bilevel run`."""
        template = meta_run_spec_from_settings(settings, workload, meta_run_id="template", name="template")
        spec = cls(ablation_id=ablation_id, arms=arms, repeats=repeats, template=template,
                   reference_arms=reference_arms or [arms[0]])
        spec.arm_specs()  # unknown arm names fail here, before anything starts
        unknown = [arm for arm in spec.reference_arms if arm not in spec.arms]
        if unknown:
            raise ValueError(f"reference arms {unknown} are not among the arms {spec.arms}")
        return spec

    @property
    def needs_store(self) -> bool:
        """Whether an arm runs Level 2 (it stores and loads mechanisms)."""
        return any("2" in arm.levels for arm in self.arm_specs())

    def arm_specs(self) -> list[ArmSpec]:
        unknown = [arm for arm in self.arms if arm not in STANDARD_ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; choose from {sorted(STANDARD_ARMS)}")
        return [STANDARD_ARMS[arm] for arm in self.arms]

    def meta_run_spec(self, arm: ArmSpec, repeat: int) -> MetaRunSpec:
        """Repeat r of every arm uses seed template.seed + r: the arms are paired by seed."""
        return self.template.model_copy(update={
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
    """Every (arm, repeat) meta-run, concurrently up to settings.max_workers; a failed meta-run is reported and
    left resumable (same ids), the others carry on."""
    arms = spec.arm_specs()
    template = spec.template
    manifest = AblationManifest(
        ablation_id=spec.ablation_id, created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        workload=res.workload.name, objective=res.workload.objective, model=res.llm.model,
        budget_mode=template.budget.mode, budget=template.budget.value, generations=template.generations,
        iterations=template.iterations, seeds=[template.seed + r for r in range(spec.repeats)],
        reference_arm=spec.reference_arms[0], reference_arms=spec.reference_arms,
        arms=[ArmRuns(arm=arm, meta_run_ids=[spec.meta_run_spec(arm, r).meta_run_id for r in range(spec.repeats)])
              for arm in arms],
    )
    path = manifest_path(res.settings.state_path, spec.ablation_id)
    write_json_atomic(path, manifest.model_dump(mode="json"))
    jobs = [spec.meta_run_spec(arm, repeat) for repeat in range(spec.repeats) for arm in arms]
    runner = res.with_task_runner(meta_run)
    failures: list[str] = []

    def one(job: MetaRunSpec) -> None:
        try:
            runner(job, res)
        except Exception as error:  # one failed meta-run must not stop the others; it stays resumable
            failures.append(f"{job.meta_run_id}: {type(error).__name__}: {str(error)[:200]}")

    pool = ThreadPoolExecutor(max_workers=max(1, res.settings.max_workers))
    try:
        for future in [pool.submit(contextvars.copy_context().run, one, job) for job in jobs]:
            future.result()
    except BaseException:  # a stop (SIGTERM, Ctrl-C) does not wait for the running meta-runs; they stay resumable
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    res.emit("ablation", failures=failures)
    if failures:
        raise RuntimeError(f"{len(failures)} of {len(jobs)} meta-runs failed (resume: bilevel ablate --id "
                           f"{spec.ablation_id} again): " + "; ".join(failures))
    return manifest
