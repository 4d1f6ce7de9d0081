"""Reading one meta-run's files for a report (trace, summary, spec, mechanism sources), tolerating what is missing.
The folder's layout is infra.runs.RunFolder's."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from infra.runs import RunFolder
from search.objective import Objective
from search.run_spec import MetaRunSummary, StopReason
from search.state import BaselineFailed, SearchState
from search.trace import LLMUsage, ParamStats, Trace, TraceCounts

# "stopped": it has a summary, but ended at a run limit (--max-hours, --max-llm-cost) and can be resumed.
RunStatus = Literal["finished", "stopped", "incomplete", "failed", "missing"]
STOP_REASONS: dict[str, str] = {"finished": "finished", "llm_cost_limit": "LLM cost limit", "time_limit": "time limit"}


class MechanismSource(BaseModel):
    """A mechanism version's source as the meta-run recorded it in mechanisms.json."""

    name: str
    version: str
    sha256: str = ""
    source: str = ""
    origin: str = ""


@dataclass
class RunData:
    """What a report needs of one meta-run. `status` says how far it got; `problem` says what went wrong."""

    meta_run_id: str
    folder: Path
    status: RunStatus
    problem: str = ""
    trace: Trace | None = None
    state: SearchState | None = None
    summary: MetaRunSummary | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    sources: list[MechanismSource] = field(default_factory=list)

    @property
    def usable(self) -> bool:
        """Finished with a measured baseline: fit for the ablation's statistics. A run stopped at a limit made
        fewer evaluations than the others, so it is left out until it is resumed and finished."""
        return self.status == "finished" and self.state is not None

    @property
    def objective(self) -> Objective:
        """The trace's objective (old traces: val_bpb, minimised); the summary's when there is no trace."""
        if self.trace is not None:
            return self.trace.objective
        return self.summary.objective if self.summary is not None else Objective()

    @property
    def noise_floor(self) -> float | None:
        """The seed-to-seed standard deviation of the baseline, when the meta-run measured it."""
        return self.summary.noise_floor if self.summary is not None else None

    @property
    def stop_reason(self) -> StopReason | None:
        """Why the meta-run ended (None: it has not)."""
        return self.summary.stop_reason if self.summary is not None else None

    @property
    def counts(self) -> TraceCounts:
        return self.trace.counts() if self.trace is not None and self.trace.experiments else TraceCounts()

    def parameter_stats(self) -> dict[str, ParamStats]:
        """Trace.param_stats of every parameter of the baseline (and of any other a change named), in the
        baseline's order; untried ones included."""
        if self.trace is None or not self.trace.experiments:
            return {}
        names = [*self.trace.experiments[0].config, *(n for e in self.trace.decided for n in e.changes)]
        return self.trace.param_stats(list(dict.fromkeys(names)))

    @property
    def baseline(self) -> float | None:
        return self.state.baseline.value if self.state else None

    @property
    def best(self) -> float | None:
        return self.state.best.value if self.state else None

    @property
    def delta(self) -> float | None:
        return self.state.delta if self.state else None

    @property
    def llm(self) -> LLMUsage:
        """The whole run's LLM usage (research sessions included) when summarised, else the trace's sum."""
        if self.summary is not None:
            return self.summary.llm
        total = LLMUsage()
        for experiment in self.trace.experiments if self.trace else []:
            total = total + experiment.llm
        return total


def load_run(runs_dir: Path, meta_run_id: str) -> RunData:
    """The run's files as far as they exist; never raises for a missing or broken run (the report says so)."""
    try:
        folder = RunFolder(runs_dir, meta_run_id)
    except ValueError as error:
        return RunData(meta_run_id=meta_run_id, folder=runs_dir, status="missing", problem=_first_line(error))
    run = RunData(meta_run_id=meta_run_id, folder=folder.root, status="missing")
    if not folder.trace_path.is_file():
        run.problem = "no trace.json (the meta-run never started, or its folder is gone)"
        return run
    try:
        run.trace = folder.read_trace()
    except (ValidationError, ValueError) as error:
        run.status, run.problem = "failed", f"trace.json is unreadable: {_first_line(error)}"
        return run
    run.spec = _read_json_object(folder.spec_path)
    run.sources = _read_sources(folder.mechanisms_path)
    try:
        run.summary = folder.read_summary()
    except (ValidationError, ValueError) as error:
        run.status, run.problem = "failed", f"summary.json is unreadable: {_first_line(error)}"
        return run
    try:
        run.state = run.trace.state()
    except BaselineFailed as error:
        run.status, run.problem = "failed", _first_line(error)
        return run
    if run.summary is None:
        run.status, run.problem = "incomplete", "no summary.json: the meta-run has not finished (or was killed)"
    elif run.summary.stop_reason != "finished":
        detail = f": {run.summary.stop_detail}" if run.summary.stop_detail else ""
        run.status = "stopped"
        run.problem = (f"stopped at a run limit ({STOP_REASONS.get(run.summary.stop_reason, run.summary.stop_reason)}"
                       f"{detail}); `bilevel resume {meta_run_id}` with a higher limit continues it")
    else:
        run.status = "finished"
    return run


def _read_json_object(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _read_sources(path: Path) -> list[MechanismSource]:
    if not path.is_file():
        return []
    try:
        items = json.loads(path.read_text())
    except ValueError:
        return []
    sources = []
    for item in items if isinstance(items, list) else []:
        try:
            sources.append(MechanismSource.model_validate(item))
        except ValidationError:
            continue  # one malformed entry must not hide the others' sources
    return sources


def _first_line(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[0][:300] if text else type(error).__name__
