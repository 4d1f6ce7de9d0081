"""The tinygpt workload: a script workload whose train.py runs next to a fixed harness that owns data, budget and
evaluation; the objective is val_bpb (minimised), read from the harness's summary block."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from search.run_spec import Budget, BudgetMode, EditsMode, WorkloadRef
from search.trace import RunOutcome
from workloads.script import ScriptWorkload, error_tail, failed_outcome
from workloads.subprocess_run import ProcessResult, scrubbed_environment
from workloads.tinygpt import data
from workloads.tinygpt.presets import preset_source
from workloads.tinygpt.summary import SummaryError, parse_summary
from workloads.warm_pool import WarmSpec

if TYPE_CHECKING:
    from infra.settings import Settings

PACKAGE_DIR = Path(__file__).resolve().parent
HARNESS_PATH = PACKAGE_DIR / "harness.py"
TRAIN_PATH = PACKAGE_DIR / "train.py"
TAIL_LINES = 40
DEFAULT_FLOPS = 9.9e11  # = harness.DEFAULT_FLOPS (352 steps of the CPU baseline); harness.py imports torch, so not from there
# What the budget means for a search, in the prompt: in steps mode a bigger model or batch really is bought.
BUDGET_MEANING = {
    "flops": "The budget is training compute: 6 x trainable parameters x tokens per step (TOTAL_BATCH_SIZE), summed "
             "over steps. So a bigger model or batch trains for proportionally fewer steps; it cannot buy more compute.",
    "steps": "The budget is a fixed number of optimizer steps, so a bigger model or batch costs more compute per "
             "step and gets it.",
    "time": "The budget is wall-clock training time, so a bigger or slower model trains for fewer steps.",
}
Device = Literal["auto", "cpu", "cuda"]
# What a warm worker imports: torch, and torch._dynamo, which the first optimizer imports (1.2 s on this machine).
WARM_MODULES = ("numpy", "torch", "torch.nn", "torch.nn.functional", "torch.optim", "torch._dynamo")
TIMING_FIELDS = ("eval_seconds", "total_seconds")  # summary lines kept as metrics (where a run's time went)


def run_environment(base: Mapping[str, str], *, budget: Budget, seed: int, data_dir: Path, device: Device,
                    eval_bytes: int | None) -> dict[str, str]:
    """The child's environment: the parent's minus secrets and BILEVEL_* settings, plus exactly the run's variables."""
    env = scrubbed_environment(base, drop_prefixes=("BILEVEL_",))
    env.update(
        BILEVEL_BUDGET_MODE=budget.mode,
        BILEVEL_BUDGET=f"{int(budget.value)}" if budget.mode == "steps" else repr(float(budget.value)),
        BILEVEL_SEED=str(seed),
        BILEVEL_DATA_DIR=str(data_dir),
        BILEVEL_DEVICE=device,
        OMP_NUM_THREADS="1",  # one thread is as fast as two here and immune to a busy neighbour (DESIGN §11)
        MKL_NUM_THREADS="1",
        OMP_WAIT_POLICY="PASSIVE",
        PYTHONUNBUFFERED="1",
        PYTHONDONTWRITEBYTECODE="1",
    )
    if eval_bytes is not None:
        env["BILEVEL_EVAL_BYTES"] = str(eval_bytes)
    return env


def outcome_from_process(result: ProcessResult, seed: int, timeout_s: float) -> RunOutcome:
    """Turn a finished subprocess into a RunOutcome: ok with the summary, crash with the traceback, or timeout."""
    failed = failed_outcome(result, seed, timeout_s)
    if failed is not None:
        return failed
    common = dict(seed=seed, wall_seconds=round(result.wall_seconds, 3), log_tail=result.tail_lines(TAIL_LINES))
    try:
        summary = parse_summary(result.tail)
    except SummaryError as error:
        return RunOutcome(status="crash", error_tail=f"{error}\n{error_tail(result.tail)}", **common)
    return RunOutcome(
        status="ok",
        value=summary.val_bpb,
        steps=summary.steps,
        tokens=summary.tokens,
        train_seconds=summary.train_seconds,
        num_params=summary.num_params,
        train_flops=summary.train_flops,
        budget_mode=summary.budget_mode,
        peak_memory_mb=summary.peak_memory_mb,
        metrics=_timings(summary.fields),
        **common,
    )


def _timings(fields: Mapping[str, str]) -> dict[str, float]:
    found: dict[str, float] = {}
    for name in TIMING_FIELDS:
        try:
            found[name] = float(fields[name])
        except (KeyError, ValueError):
            continue
    return found


class TinyGPT(ScriptWorkload):
    """Byte-level GPT pretraining on Django's documentation; the metric is val_bpb on a fixed 32 KiB slice."""

    budget_modes: tuple[BudgetMode, ...] = ("flops", "steps", "time")  # type: ignore[assignment]
    read_only_files = ("harness.py",)  # data, budget and evaluation: a free-form edit may never touch it

    def __init__(
        self,
        cache_dir: Path,
        *,
        device: Device = "auto",
        preset: str = "cpu",
        python: str = sys.executable,
        launch_log: Path | None = None,
        eval_bytes: int | None = None,
        sdist: Path | None = None,
        fixed: tuple[str, ...] = (),
        warm: bool = True,
        edits: EditsMode = "block",
        max_sites: int = 12,
    ) -> None:
        """`eval_bytes` is a test knob (a smaller evaluation slice); leave it None for real measurements. `warm`:
        runs are forked from a warm worker with torch and the harness's imports done (workloads/warm_pool.py)."""
        self.cache_dir = Path(cache_dir).expanduser()
        self.warm = warm
        self.device = device
        self.preset = preset
        self.eval_bytes = eval_bytes
        self.sdist = sdist
        # Read once: every run of this workload uses these bytes, even if the file is edited meanwhile.
        self._harness = HARNESS_PATH.read_bytes()
        self.harness_sha256 = hashlib.sha256(self._harness).hexdigest()
        super().__init__(TRAIN_PATH, metric="val_bpb", goal="minimize", fixed=fixed, python=python,
                         launch_log=launch_log, source=preset_source(TRAIN_PATH.read_text(), preset), edits=edits,
                         max_sites=max_sites)
        self.name = "tinygpt"

    @classmethod
    def from_settings(cls, settings: Settings, ref: WorkloadRef | None = None) -> TinyGPT:
        """The CPU preset unless the device is explicitly cuda (then the H100 preset)."""
        preset = "h100" if settings.device == "cuda" else "cpu"
        fixed = tuple(ref.fixed) if ref is not None else ()
        edits, max_sites = (ref.edits, ref.max_sites) if ref is not None else (settings.edits, settings.max_sites)
        return cls(settings.cache_dir, device=settings.device, preset=preset, launch_log=settings.launch_log,
                   fixed=fixed, warm=settings.warm_workers, edits=edits, max_sites=max_sites)

    @property
    def ref(self) -> WorkloadRef:
        return WorkloadRef(reference="tinygpt", fixed=self.user_fixed, edits=self.edits, max_sites=self.max_sites)

    @property
    def data_dir(self) -> Path:
        return data.corpus_dir(self.cache_dir)

    def sandbox_read_paths(self) -> list[Path]:
        """The corpus too: a confined training reads it from the cache (workloads/train_sandbox.py)."""
        return [*super().sandbox_read_paths(), self.data_dir]

    def default_budget(self) -> Budget:
        if self.device == "cuda":
            return Budget(mode="time", value=300.0)  # the paper's 5 minutes of training
        return Budget(mode="flops", value=DEFAULT_FLOPS)

    def prepare(self) -> None:
        data.prepare_corpus(self.cache_dir, self.sdist)

    def describe(self, budget_mode: str) -> str:
        return (
            "tinygpt: a small byte-level GPT (vocabulary = the 256 byte values) is pretrained from scratch on "
            f"Django's documentation (reStructuredText prose and code) for a fixed budget. {BUDGET_MEANING.get(budget_mode, '')} "
            "val_bpb is the cross-entropy on a fixed 32 KiB slice of held-out documents in bits per byte: 8 is a uniform "
            "guess, lower is better. Seed-to-seed noise is about 0.05 near the baseline and 0.01 near good "
            "configurations. A run that exceeds the time limit counts as failed."
        )

    def runnable_source(self, source: str, budget: Budget, seed: int) -> str:
        return source  # the harness reads budget and seed from the environment

    def warm_spec(self) -> WarmSpec | None:
        """torch and whatever the harness imports; each run still imports its own copy of harness.py (written next
        to it), so the checked bytes are the ones that run. CPU only: a GPU run starts a new interpreter (CUDA
        does not survive a fork, and the warm path is not measured on a GPU)."""
        if self.device == "cuda" or (self.device == "auto" and Path("/dev/nvidiactl").exists()):
            return None
        return WarmSpec(modules=WARM_MODULES, prime=HARNESS_PATH)

    def environment(self, budget: Budget, seed: int, run_dir: Path) -> dict[str, str]:
        import os

        return run_environment(os.environ, budget=budget, seed=seed, data_dir=self.data_dir, device=self.device,
                               eval_bytes=self.eval_bytes)

    def write_run_files(self, run_dir: Path, source: str) -> Path:
        if not (self.data_dir / "train.bin").is_file():
            # A setup problem, not the candidate's: fail loudly instead of recording a crash.
            raise FileNotFoundError(f"tinygpt corpus not found in {self.data_dir}: call prepare() first")
        script = super().write_run_files(run_dir, source)
        (run_dir / "harness.py").write_bytes(self._harness)  # the bytes loaded at construction, whatever happens
        return script

    def outcome(self, result: ProcessResult, run_dir: Path, seed: int, timeout_s: float) -> RunOutcome:
        outcome = outcome_from_process(result, seed, timeout_s)
        if outcome.status == "ok" and data.sha256_file(run_dir / "harness.py") != self.harness_sha256:
            # The candidate rewrote the harness file while it ran: its numbers cannot be trusted.
            return outcome.model_copy(update=dict(status="crash", value=None,
                                                  error_tail="harness.py was modified during the run; result discarded"))
        return outcome
