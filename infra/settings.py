"""One settings object for the whole system (BILEVEL_* env vars, optional bilevel.toml), plus telemetry opt-outs.

Importing this module changes nothing: `apply_telemetry_opt_outs()` is called by the entry points (the CLI) and
right before the libraries that phone home are imported (infra/llm.py, infra/tracking.py)."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from search.objective import Goal
from search.run_spec import (
    PROGRAM_MAX_CHARS,
    BudgetMode,
    Edits,
    Generations,
    Iterations,
    MaxHours,
    MaxLLMCost,
    MaxSites,
    NoiseMultiple,
    NoiseRepeats,
    ProposeAttempts,
    Proposer,
    ResearchConfirmSeeds,
    ResearchEvery,
    ResearchMutants,
    ResearchRepairs,
    ResearchSamples,
    Seed,
    Tracks,
    WorkloadRef,
)

# Telemetry of the libraries we use reaches the internet unless switched off (DESIGN §11).
# Applied by the entry points and before those libraries are imported, never overriding a user's choice.
TELEMETRY_OPT_OUTS = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "MLFLOW_DISABLE_TELEMETRY": "true",
    "DO_NOT_TRACK": "1",
    "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
    "PREFECT_UI_ENABLED": "false",
    "HF_HUB_OFFLINE": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "OMP_WAIT_POLICY": "PASSIVE",
    "TOKENIZERS_PARALLELISM": "false",
    # LLM calls are recorded as MLflow traces when they happen; an async export queue would lose the last ones
    # at exit and write to whatever tracking URI is current when it flushes.
    "MLFLOW_ENABLE_ASYNC_TRACE_LOGGING": "false",
}


def apply_telemetry_opt_outs() -> None:
    """Switch off library telemetry in this process (and its children) unless the user set the variable."""
    for key, value in TELEMETRY_OPT_OUTS.items():
        os.environ.setdefault(key, value)

LOCAL_MODEL = "local/qwen2.5-coder-1.5b"
LEVEL_CHOICES = ("1", "1.5", "2")


class Settings(BaseSettings):
    """Every knob of the system. Read from BILEVEL_* env vars, then ./bilevel.toml, then defaults."""

    model_config = SettingsConfigDict(
        env_prefix="BILEVEL_",
        toml_file="bilevel.toml",
        extra="forbid",
        validate_default=True,
    )

    # -- where local state lives --------------------------------------------------------------
    state_dir: Path = Field(Path(".bilevel"), description="All local state: MLflow, Prefect, S3 data, logs.")
    cache_dir: Path = Field(
        Path(os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))) / "bilevel",
        description="Large shared downloads (local model, corpus), shared between projects.",
    )

    # -- LLM ------------------------------------------------------------------------------------
    model: str = Field(LOCAL_MODEL, description="Any litellm model string; the default is the embedded local model.")
    api_base: str | None = Field(None, description="Optional API base for OpenAI-compatible servers.")
    llm_timeout_s: float = Field(120.0, gt=0, le=3600)
    llm_retries: int = Field(2, ge=0, le=10)
    llm_temperature: float = Field(0.7, ge=0.0, le=2.0)
    llm_max_tokens: int = Field(512, ge=16, le=32768)
    local_model_path: Path | None = Field(None, description="A GGUF file to use instead of the provisioned Qwen model.")
    llm_threads: int = Field(2, ge=1, le=256, description="CPU threads of the local model.")
    llm_context: int = Field(4096, ge=512, le=131072)
    llm_prefix_cache_mb: int = Field(512, ge=0, le=65536, description="RAM for the local model's KV states of earlier "
                                     "prompts, so that interleaved tracks and levels start warm (0: off).")
    llm_prefix_disk_mb: int = Field(512, ge=0, le=65536, description="Disk (under cache_dir/kv) for KV states of long "
                                    "prompts, so that a new process's first prompt starts warm (0: off).")
    scripted_answers: Path | None = Field(None, description="Answers file for the scripted test provider.")

    # -- tracking and storage ----------------------------------------------------------------------
    mlflow_tracking_uri: str | None = Field(None, description="Default: sqlite under state_dir.")
    s3_endpoint_url: str | None = Field(None, description="Default: an embedded SeaweedFS on 127.0.0.1.")
    s3_access_key: SecretStr = Field(SecretStr("bilevel-local"), description="Credentials of the S3 endpoint.")
    s3_secret_key: SecretStr = Field(SecretStr("bilevel-local-secret"))
    s3_region: str = "us-east-1"
    s3_bucket: str = "bilevel-mechanisms"
    s3_port: int = Field(8333, ge=1024, le=55531, description="Port of the embedded S3 server.")
    store_runs: Literal["auto", "always", "never"] = Field(
        "auto", description="Copy a meta-run's spec, trace and summary to the S3 store after every decision, so that "
        "`bilevel resume` on another machine finds it. auto: when an S3 endpoint is configured, or the run uses the "
        "store anyway (Level 2, stored mechanisms); always: also starts the embedded S3 server for other runs; never.")

    # -- orchestration ----------------------------------------------------------------------------
    task_runner: Literal["threads", "dask", "ray"] = "threads"
    dask_address: str | None = Field(None, description="An existing Dask scheduler; default: a local cluster.")
    ray_address: str | None = Field(None, description="An existing Ray cluster (ray://...); default: a local Ray.")
    max_workers: int = Field(2, ge=1, le=1024, description="Bound on concurrent tasks (trainings, tracks).")

    # -- workload -------------------------------------------------------------------------------
    workload: str = Field("tinygpt", min_length=1, description="A registered name (tinygpt, toy, an entry point), "
                          "package.module:Class, or a path to a script.")
    metric: str | None = Field(None, description="A script workload's metric (its `NAME: value` summary line).")
    goal: Goal | None = Field(None, description="minimize (default) or maximize.")
    fixed: list[str] = Field(default_factory=list, description="Parameters no level may change (comma list).")
    budget_param: str | None = Field(None, description="A script's literal set from the budget (steps).")
    seed_param: str | None = Field(None, description="A script's literal set from the run's seed.")
    command: str | None = Field(None, description="How a script runs: {python} and {script} are replaced.")
    edits: Edits = "block"
    max_sites: MaxSites = 12
    budget_mode: BudgetMode | None = Field(
        None, description="Default: the workload's (tinygpt: flops, deterministic and compute-fair; time on cuda). "
        "steps: optimizer steps (deterministic); time: seconds of training; fixed: the script's own budget.")
    budget: float | None = Field(None, gt=0, description="FLOPs, steps or seconds per experiment; default: the "
                                 "workload's (tinygpt: 9.9e11 FLOPs = 352 steps of its CPU baseline).")
    device: Literal["auto", "cpu", "cuda"] = "auto"
    train_timeout_s: float = Field(600.0, gt=0, le=7 * 24 * 3600, description="Hard wall-clock limit of one training.")
    warm_workers: bool = Field(True, description="Fork each tinygpt training from a warm worker process that has "
                               "torch imported (same environment, timeout and metric, bit for bit); false: a new "
                               "interpreter per training. User scripts always start a new interpreter.")
    early_stop: bool = Field(False, description="Stop a candidate whose training loss at 25/50/75% of the budget "
                             "is worse than the incumbent's at the same point by more than early_stop_margin.")
    early_stop_margin: float = Field(0.2, ge=0.0, le=10.0, description="Margin of early stopping, in the "
                                     "checkpoint loss's units (tinygpt: training bits per byte).")
    seed: Seed = 0

    # -- search -------------------------------------------------------------------------------
    iterations: Iterations = 6
    generations: Generations = 2
    research_every: ResearchEvery = 1
    levels: str = Field("1,1.5,2", description="Comma list of levels: 1, 1.5, 2.")
    tracks: Tracks = 1
    min_improvement: float = Field(0.0, ge=0.0, le=10.0)
    confirm_seed: int | None = Field(None, ge=0, description="If set, a kept candidate is re-run with this seed first.")
    propose_attempts: ProposeAttempts = 3
    research_samples: ResearchSamples = 4
    research_repairs: ResearchRepairs = 2
    research_mutants: ResearchMutants = 2
    research_confirm_seeds: ResearchConfirmSeeds = 64
    proposer: Proposer = Field("hybrid", description="Who proposes in Level 1: hybrid (Optuna TPE's suggestions "
                               "offered to the LLM, which picks, edits or overrides them; a suggestion trains when "
                               "the LLM gives nothing valid), llm, or a control: random, tpe, cmaes.")
    program: Path | None = Field(None, description="A text file of research direction every level's prompt includes.")
    max_llm_cost_usd: MaxLLMCost = None
    max_hours: MaxHours = None
    noise_repeats: NoiseRepeats = Field(0, description="Measure the noise floor: the baseline again on this many "
                                        "other seeds (0: off; the nightly flow uses 2).")
    noise_multiple: NoiseMultiple = 0.0
    near_repeat: float = Field(0.05, ge=0.0, le=0.5, description="Refuse a candidate within this relative distance "
                               "of a tried configuration (0: only exact repeats).")
    max_changes: int = Field(4, ge=1, le=8, description="Parameters one proposal may change at once.")

    # -- mechanism sandbox ------------------------------------------------------------------------
    sandbox_allow_weak: bool = Field(
        False, description="Run generated mechanisms even where the sandbox's OS layer is incomplete (e.g. no user "
        "namespaces): `bilevel doctor` lists what is missing. Off by default: such mechanisms are not activated.")
    train_sandbox: Literal["auto", "always", "never"] = Field(
        "auto", description="Run trainings in the training sandbox (no network, no secrets, a file system read-only "
        "but for the run folder and a private temporary directory, rlimits, nothing left running; "
        "workloads/train_launcher.py). auto: when the LLM writes code (edits = code); always: every training (a "
        "new interpreter per training, no warm workers); never. A machine without the protections refuses unless "
        "sandbox_allow_weak.")
    mechanism_time_budget_s: float = Field(
        20.0, gt=0, le=24 * 3600, description="Hook wall time one mechanism may use per generation and track (its "
        "load and the replay of the trace included); past it, the mechanism is quarantined. A mechanism normally "
        "needs a few milliseconds per hook call.")

    @field_validator("levels")
    @classmethod
    def _check_levels(cls, value: str) -> str:
        parts = [p.strip() for p in value.split(",") if p.strip()]
        bad = [p for p in parts if p not in LEVEL_CHOICES]
        if bad or "1" not in parts:
            raise ValueError(f"levels must be a comma list of {LEVEL_CHOICES} including 1, got {value!r}")
        return ",".join(p for p in LEVEL_CHOICES if p in parts)

    @field_validator("fixed", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        if isinstance(value, str):
            return [item.strip() for item in value.split(",") if item.strip()]
        return value

    @field_validator("model")
    @classmethod
    def _known_provider(cls, value: str) -> str:
        from infra.model_names import check_model  # offline: a typo fails before any service starts

        return check_model(value)

    @field_validator("budget")
    @classmethod
    def _finite_budget(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"the budget must be a finite number, got {value!r}")
        return value

    @property
    def level_set(self) -> frozenset[str]:
        return frozenset(self.levels.split(","))

    @property
    def workload_ref(self) -> WorkloadRef:
        """The workload these settings name, with the script options."""
        return WorkloadRef(reference=self.workload, metric=self.metric, goal=self.goal, fixed=tuple(self.fixed),
                           budget_param=self.budget_param, seed_param=self.seed_param, command=self.command,
                           edits=self.edits, max_sites=self.max_sites)

    def program_text(self) -> str:
        """The research-direction text, read from its file ('' when none); ValueError for a missing or huge file."""
        if self.program is None:
            return ""
        path = self.program.expanduser()
        if not path.is_file():
            raise ValueError(f"program file {path} not found")
        text = path.read_text(encoding="utf-8", errors="replace").strip()
        if len(text) > PROGRAM_MAX_CHARS:
            raise ValueError(f"program file {path} has {len(text)} characters; keep it under {PROGRAM_MAX_CHARS}")
        return text

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    # -- derived paths ------------------------------------------------------------------------
    @property
    def state_path(self) -> Path:
        return self.state_dir.expanduser().resolve()

    @property
    def resolved_tracking_uri(self) -> str:
        if self.mlflow_tracking_uri:
            return self.mlflow_tracking_uri
        return f"sqlite:///{self.state_path / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> Path:
        return self.state_path / "mlflow" / "artifacts"

    @property
    def prefect_home(self) -> Path:
        return self.state_path / "prefect"

    @property
    def runs_dir(self) -> Path:
        return self.state_path / "runs"

    @property
    def s3_data_dir(self) -> Path:
        return self.state_path / "s3"

    @property
    def logs_dir(self) -> Path:
        return self.state_path / "logs"

    @property
    def launch_log(self) -> Path:
        """One JSON line per training launch (what resume tests count)."""
        return self.logs_dir / "launches.jsonl"


def load_settings(**overrides: object) -> Settings:
    """Build settings from the environment and bilevel.toml, with explicit overrides on top."""
    return Settings(**{k: v for k, v in overrides.items() if v is not None})
