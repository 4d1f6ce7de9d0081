"""The one place where resources are built from settings (like Dagster's definitions): flows take them, tests pass their own."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from infra.flow_log import log_event
from infra.llm import LLMClient
from infra.settings import LOCAL_MODEL, Settings
from infra.tracking import Tracker
from search.config import SearchConfig
from search.run_spec import Budget, MetaRunSpec, WorkloadRef

if TYPE_CHECKING:
    from infra.runs import TraceHook
    from infra.store import MechanismStore
    from workloads.base import Workload


class Resources:
    """Everything a meta-run touches outside pure Python. Created once, passed down explicitly.

    A plain class, not a dataclass: Prefect dumps flow parameters with pydantic, which would turn a dataclass
    into a dict of its (unpicklable) fields instead of calling `__reduce__`."""

    def __init__(
        self,
        settings: Settings,
        workload: Workload,
        llm: LLMClient,
        tracker: Tracker,
        store: MechanismStore | None = None,
        task_runner: Callable[[], Any] | None = None,
        on_event: Callable[[str, dict[str, Any]], None] | None = None,
        on_trace_written: TraceHook | None = None,
    ) -> None:
        self.settings = settings
        self.workload = workload
        self.llm = llm
        self.tracker = tracker
        self.store = store
        self.task_runner = task_runner  # makes the runner of inner loops and meta-runs (None: Prefect's default)
        self.on_event = on_event
        # Called after every write of a meta-run's trace.json (every decision), e.g. to copy it to the S3 store.
        self.on_trace_written = on_trace_written

    def __reduce__(self) -> tuple[Any, tuple[Settings]]:
        # Prefect sends a flow run's parameters along with every task submitted to a remote runner (Dask, Ray).
        # Resources are process-local (locks, clients, servers), so they travel as a stub that refuses use.
        return (DetachedResources, (self.settings,))

    def with_task_runner(self, flow: Any) -> Any:
        """`flow` set up to run its tasks on the configured runner (Dask, Ray), or as it is (Prefect's default)."""
        return flow if self.task_runner is None else flow.with_options(task_runner=self.task_runner())

    def emit(self, event: str, **data: Any) -> None:
        """Tell the flow run's log (Prefect UI) and the user interface (progress display) what happened."""
        log_event(event, data)
        if self.on_event is not None:
            self.on_event(event, data)


class DetachedResources:
    """What Resources become in another process: the settings, and a clear error for anything else."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def __getattr__(self, name: str) -> Any:
        if name.startswith("__"):  # protocol lookups (pickle's __setstate__ and the like) must see "absent"
            raise AttributeError(name)
        raise RuntimeError(f"resources are process-local: '{name}' is not available in a remote worker; "
                           "pass what the task needs as its own arguments")


def register_llm_providers(settings: Settings) -> None:
    """Make the model string of settings answerable: the scripted test provider or the local model."""
    provider = settings.model.split("/", 1)[0]
    if provider == "scripted":
        from infra.scripted_llm import register_scripted_provider

        if settings.scripted_answers is None:
            raise ValueError("model 'scripted/...' needs BILEVEL_SCRIPTED_ANSWERS pointing at an answers file")
        register_scripted_provider(settings.scripted_answers)
    elif provider == LOCAL_MODEL.split("/", 1)[0]:
        from infra.local_llm import register_local_provider

        register_local_provider(settings)


def build_llm(settings: Settings) -> LLMClient:
    register_llm_providers(settings)
    return LLMClient(
        settings.model,
        api_base=settings.api_base,
        timeout_s=settings.llm_timeout_s,
        retries=settings.llm_retries,
        temperature=settings.llm_temperature,
        max_tokens=settings.llm_max_tokens,
        call_log=settings.logs_dir / "llm_calls.jsonl",
    )


def build_store(settings: Settings) -> MechanismStore:
    """The mechanism store; starts the embedded S3 server when no endpoint is configured."""
    from infra.services import ensure_s3
    from infra.store import MechanismStore

    endpoint = ensure_s3(settings)
    store = MechanismStore.from_endpoint(endpoint, bucket=settings.s3_bucket)
    store.ensure_bucket()
    return store


@contextlib.contextmanager
def store_service(settings: Settings, needed: bool = True) -> Iterator[None]:
    """The embedded S3 server for the duration of a command or flow, when needed and no endpoint is configured;
    a server started here is stopped on exit (one that was already running is left running)."""
    if not needed or settings.s3_endpoint_url:
        yield
        return
    from infra.services import embedded_s3

    with embedded_s3(settings):
        yield


def build_workload(settings: Settings, ref: WorkloadRef | None = None) -> Workload:
    """The workload `ref` (default: the one the settings name); WorkloadError (one line) when it cannot be found."""
    from workloads.registry import load_workload

    return load_workload(ref or settings.workload_ref, settings)


def build_resources(settings: Settings, *, with_store: bool | None = None, workload: Workload | None = None) -> Resources:
    """All resources of a meta-run from settings. The store is built only when Level 2 or a seed needs it."""
    settings.state_path.mkdir(parents=True, exist_ok=True)
    workload = workload or build_workload(settings)
    need_store = "2" in settings.level_set if with_store is None else with_store
    tracker = Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root)
    llm = build_llm(settings)
    llm.recorder = tracker.record_llm_call  # every answered call becomes an MLflow trace under its run
    return Resources(settings=settings, workload=workload, llm=llm, tracker=tracker,
                     store=build_store(settings) if need_store else None)


@contextlib.contextmanager
def open_resources(settings: Settings, *, with_store: bool | None = None, workload: Workload | None = None,
                   on_event: Callable[[str, dict[str, Any]], None] | None = None) -> Iterator[Resources]:
    """Resources for one command or scheduled flow: the task runner (a local Dask cluster when asked for), the
    embedded S3 server when the store is needed, and everything `build_resources` makes; services started here
    are stopped on exit."""
    from infra.run_sync import runs_kept_in_store
    from infra.runners import runner_for

    need_store = ("2" in settings.level_set if with_store is None else with_store) or runs_kept_in_store(settings)
    with runner_for(settings) as task_runner, store_service(settings, need_store):
        res = build_resources(settings, with_store=need_store, workload=workload)
        res.task_runner = task_runner
        res.on_event = on_event
        yield res


def search_config_from_settings(settings: Settings) -> SearchConfig:
    """The search rules the settings choose (temperature, minimum improvement, confirmation seed)."""
    return SearchConfig(temperature=settings.llm_temperature, min_improvement=settings.min_improvement,
                        confirm_seed=settings.confirm_seed, near_repeat=settings.near_repeat,
                        max_changes=settings.max_changes)


def budget_from_settings(settings: Settings, workload: Workload) -> Budget:
    """The settings' budget, or the workload's default for what they leave open; checked against the workload."""
    default = workload.default_budget()
    mode = settings.budget_mode or default.mode
    if mode == "fixed" and settings.budget is not None:  # it would be ignored without a word
        raise ValueError(f"workload {workload.name} trains for its script's own budget: --budget does not apply to it "
                         "(name the script's steps literal with --budget-param to set it)")
    value = settings.budget if settings.budget is not None else (default.value if mode == default.mode else None)
    if value is None:
        raise ValueError(f"budget mode {mode!r} needs a budget value (--budget); the workload's default is "
                         f"{default.describe()}")
    budget = Budget(mode=mode, value=value)
    workload.check_budget(budget)
    return budget


def meta_run_spec_from_settings(settings: Settings, workload: Workload, meta_run_id: str, name: str,
                                mechanisms: list[str] | None = None) -> MetaRunSpec:
    """One meta-run as the settings describe it: the single source for `bilevel run` and the nightly flow."""
    return MetaRunSpec(
        meta_run_id=meta_run_id,
        name=name,
        workload=workload.ref,
        generations=settings.generations,
        iterations=settings.iterations,
        research_every=settings.research_every,
        levels=settings.levels.split(","),
        tracks=settings.tracks,
        budget=budget_from_settings(settings, workload),
        seed=settings.seed,
        search=search_config_from_settings(settings),
        mechanisms=mechanisms or [],
        propose_attempts=settings.propose_attempts,
        research_samples=settings.research_samples,
        research_repairs=settings.research_repairs,
        research_mutants=settings.research_mutants,
        research_confirm_seeds=settings.research_confirm_seeds,
        proposer=settings.proposer,
        program=settings.program_text(),
        max_llm_cost_usd=settings.max_llm_cost_usd,
        max_hours=settings.max_hours,
        noise_repeats=settings.noise_repeats,
        noise_multiple=settings.noise_multiple,
    )


def needs_store(spec: MetaRunSpec, requested_mechanisms: str | None = None) -> bool:
    """Whether a meta-run needs the mechanism store: Level 2, or mechanisms to load from it."""
    return (spec.has_level("2") or requested_mechanisms not in (None, "", "none")
            or any(not m.startswith("library:") for m in spec.mechanisms))


def resolve_mechanisms(requested: str | None, res: Resources) -> list[str]:
    """`none`, `best` (the versions with the best measured effect so far), or a comma list of
    `name`, `name@VersionId`, `library:name`."""
    if requested in (None, "", "none"):
        return []
    if requested == "best":
        if res.store is None:
            return []
        from infra.lineage import best_versions

        return best_versions(res.store, res.settings.runs_dir)
    return [item.strip() for item in requested.split(",") if item.strip()]
