"""The generic script workload (the karpathy/autoresearch contract, for any metric): a user's training script with a
hyperparameter block, run as `python script.py` in its own run folder, measured from its last `---` summary block
(`NAME: value`) or from a `metrics.json` it writes. It needs no Python from the user."""

from __future__ import annotations

import ast
import datetime as dt
import hashlib
import json
import logging
import math
import os
import re
import shlex
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from search.early_stop import EarlyStop
from search.objective import Goal, Objective
from search.params import ParamKind
from search.pyast import parse_python
from search.run_spec import Budget, BudgetMode, EditsMode, WorkloadRef
from search.safe_json import loads_bounded
from search.trace import MAX_EXTRA_METRICS, RunOutcome
from workloads.base import Workload
from workloads.curve import CurveWatch
from workloads.hyperblock import ScriptError, apply_changes
from workloads.subprocess_run import ProcessResult, run_script, run_warm, scrubbed_environment
from workloads.train_sandbox import TrainSandbox
from workloads.warm_pool import WarmSpec, WarmStartError

logger = logging.getLogger(__name__)

TAIL_LINES = 40
METRICS_FILE = "metrics.json"
MAX_METRICS_FILE_BYTES = 1 << 20
SUMMARY_SEPARATOR = "---"
MAX_DESCRIPTION_CHARS = 700
DEFAULT_COMMAND = "{python} {script}"
MAX_METRICS_DEPTH = 8
# An extra metric is logged to MLflow as `run.NAME`: a name MLflow refuses would fail the whole batch, so only
# names it takes (letters, digits, _ . : - and inner spaces, no slash) are kept; others are dropped.
_METRIC_NAME = re.compile(r"\w[\w.: -]{0,63}")


class WorkloadError(ValueError):
    """A workload that cannot be used as configured (missing file, bad option); one line, for the user."""


def error_tail(text: str, lines: int = TAIL_LINES) -> str:
    """The last `lines` lines of the output, starting at the last traceback when it fits."""
    all_lines = text.splitlines()
    starts = [i for i, line in enumerate(all_lines) if line.startswith("Traceback (most recent call last)")]
    if starts and len(all_lines) - starts[-1] <= lines:
        return "\n".join(all_lines[starts[-1] :])
    return "\n".join(all_lines[-lines:])


def failed_outcome(result: ProcessResult, seed: int, timeout_s: float) -> RunOutcome | None:
    """The outcome of a run that timed out or exited non-zero; None when it exited cleanly."""
    common = dict(seed=seed, wall_seconds=round(result.wall_seconds, 3), log_tail=result.tail_lines(TAIL_LINES))
    if result.timed_out:
        message = f"killed after the {timeout_s:g} s timeout; last output:\n{error_tail(result.tail, TAIL_LINES - 2)}"
        return RunOutcome(status="timeout", error_tail=message, **common)
    if result.returncode != 0:
        return RunOutcome(status="crash", error_tail=f"exit code {result.returncode}\n{error_tail(result.tail)}", **common)
    return None


def last_summary_block(output: str) -> dict[str, str]:
    """The `key: value` lines after the last `---` line of the output (empty when there is none)."""
    lines = output.splitlines()
    starts = [i for i, line in enumerate(lines) if line.strip() == SUMMARY_SEPARATOR]
    if not starts:
        return {}
    fields: dict[str, str] = {}
    for line in lines[starts[-1] + 1 :]:
        key, colon, value = line.partition(":")
        key = key.strip()
        if not colon or not key or " " in key or len(key) > 64:
            break
        fields[key] = value.strip()
    return fields


def _finite(value: Any) -> float | None:
    """`value` as a finite float, None when it is not one (a bool, text, NaN, an int too large for a float)."""
    if isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        return None
    return number if math.isfinite(number) else None


def _numbers(fields: Mapping[str, Any]) -> dict[str, float]:
    found: dict[str, float] = {}
    for key, value in fields.items():
        if len(found) >= MAX_EXTRA_METRICS:
            break
        number = _finite(value)
        if number is not None and isinstance(key, str) and _METRIC_NAME.fullmatch(key):
            found[key] = number
    return found


def read_metrics_file(run_dir: Path) -> dict[str, Any] | None:
    """The JSON object the script wrote to metrics.json, None when there is none; ValueError when it is unusable."""
    path = run_dir / METRICS_FILE
    if not path.is_file():
        return None
    if path.stat().st_size > MAX_METRICS_FILE_BYTES:
        raise ValueError(f"{METRICS_FILE} is larger than {MAX_METRICS_FILE_BYTES} bytes")
    try:  # NaN and Infinity are what Python's json.dump writes for a diverged value: they are read as numbers
        data = loads_bounded(path.read_text(encoding="utf-8", errors="replace"), MAX_METRICS_FILE_BYTES,
                             MAX_METRICS_DEPTH, allow_constants=True)
    except ValueError as error:
        raise ValueError(f"{METRICS_FILE} is not usable: {str(error)[:160]}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{METRICS_FILE} must hold a JSON object of NAME: number")
    return data


def stopped_outcome(result: ProcessResult, seed: int, curve: list[tuple[float, float]]) -> RunOutcome:
    """A run that early stopping ended: no value (it is never kept), its partial curve and why."""
    return RunOutcome(status="stopped", seed=seed, wall_seconds=round(result.wall_seconds, 3), curve=curve,
                      log_tail=result.tail_lines(TAIL_LINES), error_tail=result.stop_reason)


def measured_outcome(result: ProcessResult, run_dir: Path, objective: Objective, seed: int) -> RunOutcome:
    """The objective's value from metrics.json (when written) or the last `---` block; a crash when neither has it."""
    common = dict(seed=seed, wall_seconds=round(result.wall_seconds, 3), log_tail=result.tail_lines(TAIL_LINES))
    try:
        fields = read_metrics_file(run_dir)
    except ValueError as error:
        return RunOutcome(status="crash", error_tail=f"{error}\n{error_tail(result.tail)}", **common)
    source = METRICS_FILE
    if fields is None or objective.name not in fields:
        fields, source = last_summary_block(result.tail), "the summary block"
    if objective.name not in fields:
        message = (f"the run printed no `{objective.name}: <number>` line after a `---` line and wrote no "
                   f"{METRICS_FILE} with it")
        return RunOutcome(status="crash", error_tail=f"{message}\n{error_tail(result.tail)}", **common)
    value = _finite(fields[objective.name])
    if value is None:
        message = f"{objective.name} in {source} is {str(fields[objective.name])[:40]!r}, not a finite number (diverged?)"
        return RunOutcome(status="crash", error_tail=f"{message}\n{error_tail(result.tail)}", **common)
    extra = {k: v for k, v in _numbers(fields).items() if k != objective.name}
    return RunOutcome(status="ok", value=value, metrics=extra, steps=_int(fields.get("steps")),
                      train_seconds=extra.get("train_seconds"), **common)


def _int(value: Any) -> int | None:
    number = _finite(value)  # `steps: inf` on stdout: int(inf) would raise OverflowError
    return int(number) if number is not None else None


class ScriptWorkload(Workload):
    """A user's script with a hyperparameter block; the objective, fixed names and budget/seed literals are options."""

    supports_early_stop = True
    warm = False  # user scripts run cold: a workload that knows its imports (tinygpt) turns warm runs on
    train_sandbox = TrainSandbox()  # never, until the registry applies the settings (set_train_sandbox)

    def __init__(
        self,
        path: str | Path,
        *,
        metric: str,
        goal: Goal = "minimize",
        fixed: Sequence[str] = (),
        budget_param: str | None = None,
        seed_param: str | None = None,
        command: str | None = None,
        python: str = sys.executable,
        launch_log: Path | None = None,
        source: str | None = None,
        reference: str | None = None,
        edits: EditsMode = "block",
        max_sites: int = 12,
    ) -> None:
        """`source` replaces the file's text (a preset of a packaged script); the file still names it. `reference`
        is the registered name of a built-in script workload (its name and how a meta-run finds it again). `edits`
        and `max_sites`: whether (and how many) literal sites outside the block are searched too."""
        self.path = Path(path).expanduser().resolve()
        if source is None:
            if not self.path.is_file():
                raise WorkloadError(f"workload script {path} does not exist (or is not a file)")
            source = self.path.read_text(encoding="utf-8")
        self._source = source
        self.registered_as = reference
        self.name = reference or self.path.stem
        self.script_name = self.path.name
        try:
            self.objective = Objective(name=metric, goal=goal)
        except ValueError:
            raise WorkloadError(f"metric {metric!r} is not a valid name (letters, digits, _ . -)") from None
        self.user_fixed = tuple(dict.fromkeys(fixed))
        self.budget_param = budget_param
        self.seed_param = seed_param
        self.command = command or DEFAULT_COMMAND
        self.python = python
        self.launch_log = launch_log
        self.fixed = tuple(dict.fromkeys([*self.user_fixed, *(p for p in (budget_param, seed_param) if p)]))
        self.edits, self.max_sites = edits, max_sites
        self._check_options()

    def _check_options(self) -> None:
        try:
            block = self.block
        except ScriptError as error:
            raise WorkloadError(f"{self.path.name}: {error}") from None
        names = {spec.name for spec in block.params}
        for label, value in (("budget parameter", self.budget_param), ("seed parameter", self.seed_param)):
            if value is not None and value not in names:
                raise WorkloadError(f"{label} {value!r} is not in the hyperparameter block of {self.path.name} "
                                    f"(it has {', '.join(sorted(names))})")
        if self.budget_param is not None and block.spec(self.budget_param).kind is not ParamKind.INT:
            raise WorkloadError(f"budget parameter {self.budget_param} must be an int literal (a number of steps)")
        if "{script}" not in self.command:
            raise WorkloadError("the command must contain {script}, e.g. '{python} {script}'")
        try:
            _ = self.space
        except ValueError as error:
            raise WorkloadError(str(error)) from None
        if not self.space.params:
            raise WorkloadError(f"{self.path.name}: no searchable parameter is left in the hyperparameter block "
                                f"(fixed: {', '.join(self.fixed) or 'none'})")

    @property
    def budget_modes(self) -> tuple[BudgetMode, ...]:  # type: ignore[override]
        return ("steps",) if self.budget_param else ("fixed",)

    @property
    def ref(self) -> WorkloadRef:
        if self.registered_as:
            return WorkloadRef(reference=self.registered_as, fixed=self.user_fixed, edits=self.edits,
                               max_sites=self.max_sites)
        return WorkloadRef(reference=str(self.path), metric=self.objective.name, goal=self.objective.goal,
                           fixed=self.user_fixed, budget_param=self.budget_param, seed_param=self.seed_param,
                           command=None if self.command == DEFAULT_COMMAND else self.command,
                           script_sha256=hashlib.sha256(self._source.encode()).hexdigest(), edits=self.edits,
                           max_sites=self.max_sites)

    def editable_source(self) -> str:
        return self._source

    def default_budget(self) -> Budget:
        if self.budget_param:
            return Budget(mode="steps", value=float(self.block.spec(self.budget_param).value))  # type: ignore[arg-type]
        return Budget(mode="fixed", value=1)

    def prepare(self) -> None:
        """A user script provisions its own data (nothing to do here)."""

    def describe(self, budget_mode: str) -> str:
        budget = (f"Each run trains for the same budget ({self.budget_param} is set by the system)."
                  if self.budget_param else "Each run trains for the script's own fixed budget.")
        about = _docstring(self._source)
        text = f"{self.path.name}: a training script. The objective is to {self.objective.describe()}. {budget}"
        return f"{text} About the script: {about}" if about else text

    # -- one run -----------------------------------------------------------------------------------

    def runnable_source(self, source: str, budget: Budget, seed: int) -> str:
        """`source` with the budget and seed literals set by the system."""
        system: dict[str, Any] = {}
        if self.budget_param and budget.mode == "steps":
            system[self.budget_param] = int(budget.value)
        if self.seed_param:
            system[self.seed_param] = int(seed)
        return apply_changes(source, system) if system else source

    def environment(self, budget: Budget, seed: int, run_dir: Path) -> dict[str, str]:
        """The child's environment: the parent's minus secrets and BILEVEL_* settings, plus the run's variables."""
        env = scrubbed_environment(os.environ, drop_prefixes=("BILEVEL_",))
        env.update(
            BILEVEL_SEED=str(seed),
            BILEVEL_BUDGET_MODE=budget.mode,
            BILEVEL_BUDGET=f"{int(budget.value)}" if budget.mode == "steps" else repr(float(budget.value)),
            BILEVEL_RUN_DIR=str(run_dir),
            BILEVEL_SCRIPT_DIR=str(self.path.parent),
            PYTHONPATH=str(self.path.parent),  # modules next to the script import as they do at home
            OMP_NUM_THREADS="1",  # one thread per run: parallel runs on a small machine stay fair (DESIGN §11)
            MKL_NUM_THREADS="1",
            OMP_WAIT_POLICY="PASSIVE",
            PYTHONUNBUFFERED="1",
            PYTHONDONTWRITEBYTECODE="1",
        )
        return env

    def write_run_files(self, run_dir: Path, source: str) -> Path:
        """Write what one run needs into its folder; returns the script's path there."""
        script = run_dir / self.path.name
        script.write_text(source, encoding="utf-8")
        return script

    def argv(self, script: Path) -> list[str]:
        return [part.replace("{python}", self.python).replace("{script}", script.name)
                for part in shlex.split(self.command)]

    def outcome(self, result: ProcessResult, run_dir: Path, seed: int, timeout_s: float) -> RunOutcome:
        return failed_outcome(result, seed, timeout_s) or measured_outcome(result, run_dir, self.objective, seed)

    def set_train_sandbox(self, sandbox: TrainSandbox) -> None:
        """Whether (and how) trainings run confined (workloads/train_sandbox.py)."""
        self.train_sandbox = sandbox

    @property
    def sandboxed(self) -> bool:
        """Whether the next training runs in the training sandbox."""
        return self.train_sandbox.applies(self.edits)

    def sandbox_read_paths(self) -> list[Path]:
        """What a confined training may read besides its interpreter and the system: the script's folder (its
        modules import from there). A workload that reads data elsewhere adds it."""
        return [self.path.parent]

    def warm_spec(self) -> WarmSpec | None:
        """What a warm worker preloads for this workload's runs; None: every run starts a new interpreter."""
        return None

    def run(self, source: str, budget: Budget, seed: int, run_dir: Path, timeout_s: float,
            early_stop: EarlyStop | None = None) -> RunOutcome:
        """One run; with `early_stop`, a run whose `checkpoint:` loss is hopeless is stopped (status `stopped`)."""
        self.check_budget(budget)
        run_dir = Path(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        runnable = self.runnable_source(source, budget, seed)
        script = self.write_run_files(run_dir, runnable)
        # A confined training starts a new interpreter: a warm worker's forked child is not confined.
        spec = self.warm_spec() if self.warm and self.command == DEFAULT_COMMAND and not self.sandboxed else None
        self._log_launch(run_dir, runnable, budget, seed, timeout_s, warm=spec is not None)
        watch = CurveWatch(early_stop)
        result = self._launch(script, run_dir, self.environment(budget, seed, run_dir), timeout_s, watch, spec)
        if result.stopped:
            return stopped_outcome(result, seed, watch.curve)
        outcome = self.outcome(result, run_dir, seed, timeout_s)
        return outcome.model_copy(update={"curve": watch.curve}) if watch.curve else outcome

    def _launch(self, script: Path, run_dir: Path, env: dict[str, str], timeout_s: float, watch: CurveWatch,
                spec: WarmSpec | None) -> ProcessResult:
        """Forked from a warm worker when `spec` is given and one can take it, else in a new interpreter."""
        log_path = run_dir / "train.log"
        if self.sandboxed:
            return self._launch_confined(script, run_dir, env, timeout_s, watch, log_path)
        if spec is not None:
            try:
                return run_warm(Path(script.name), python=self.python, spec=spec, cwd=run_dir, env=env,
                                timeout_s=timeout_s, log_path=log_path, watch=watch)
            except WarmStartError as error:
                logger.warning("%s; this run starts a new interpreter", error)
        return run_script(self.argv(script), cwd=run_dir, env=env, timeout_s=timeout_s, log_path=log_path,
                          watch=watch)

    def _launch_confined(self, script: Path, run_dir: Path, env: dict[str, str], timeout_s: float,
                         watch: CurveWatch, log_path: Path) -> ProcessResult:
        """In the training sandbox, with a private temporary directory removed afterwards; TrainSandboxRefused (a
        WorkloadError-like one line) when this machine cannot confine it and weak sandboxes are not allowed."""
        self.train_sandbox.check(self.python, env)
        tmp_dir = Path(tempfile.mkdtemp(prefix="bilevel-train-"))
        try:
            argv = self.train_sandbox.command(self.argv(script), python=self.python, run_dir=run_dir,
                                              tmp_dir=tmp_dir, read_paths=self.sandbox_read_paths())
            return run_script(argv, cwd=run_dir, env=env, timeout_s=timeout_s, log_path=log_path, watch=watch)
        finally:
            shutil.rmtree(tmp_dir, ignore_errors=True)

    def _log_launch(self, run_dir: Path, source: str, budget: Budget, seed: int, timeout_s: float,
                    warm: bool = False) -> None:
        if self.launch_log is None:
            return
        entry = {
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
            "workload": self.name,
            "run_dir": str(run_dir),
            "source_sha256": hashlib.sha256(source.encode()).hexdigest(),
            "budget": budget.model_dump(),
            "seed": seed,
            "timeout_s": timeout_s,
            "pid": os.getpid(),
            "warm": warm,
            "sandboxed": self.sandboxed,
        }
        self.launch_log.parent.mkdir(parents=True, exist_ok=True)
        with open(self.launch_log, "a", encoding="utf-8") as log:
            log.write(json.dumps(entry) + "\n")


def _docstring(source: str) -> str:
    try:
        text = ast.get_docstring(parse_python(source)) or ""
    except SyntaxError:
        return ""
    first = text.strip().split("\n\n")[0].replace("\n", " ")
    return first if len(first) <= MAX_DESCRIPTION_CHARS else first[: MAX_DESCRIPTION_CHARS - 3] + "..."
