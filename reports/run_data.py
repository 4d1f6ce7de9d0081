"""Reading one meta-run's files for a report (trace, summary, spec, mechanism sources), tolerating what is missing."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from search.run_spec import MetaRunSummary
from search.state import BaselineFailed, SearchState
from search.trace import LLMUsage, Trace

RunStatus = Literal["finished", "incomplete", "failed", "missing"]
MECHANISMS_FILE = "mechanisms.json"


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
        """Finished with a measured baseline: fit for the ablation's statistics."""
        return self.status == "finished" and self.state is not None

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
    folder = runs_dir / meta_run_id
    run = RunData(meta_run_id=meta_run_id, folder=folder, status="missing")
    trace_path = folder / "trace.json"
    if not trace_path.is_file():
        run.problem = "no trace.json (the meta-run never started, or its folder is gone)"
        return run
    try:
        run.trace = Trace.model_validate_json(trace_path.read_text())
    except (ValidationError, ValueError) as error:
        run.status, run.problem = "failed", f"trace.json is unreadable: {_first_line(error)}"
        return run
    run.spec = _read_json_object(folder / "spec.json")
    run.sources = _read_sources(folder / MECHANISMS_FILE)
    summary_path = folder / "summary.json"
    try:
        run.summary = MetaRunSummary.model_validate_json(summary_path.read_text()) if summary_path.is_file() else None
    except (ValidationError, ValueError) as error:
        run.status, run.problem = "failed", f"summary.json is unreadable: {_first_line(error)}"
        return run
    try:
        run.state = run.trace.state()
    except BaselineFailed as error:
        run.status, run.problem = "failed", _first_line(error)
        return run
    run.status = "finished" if run.summary is not None else "incomplete"
    if run.status == "incomplete":
        run.problem = "no summary.json: the meta-run has not finished (or stopped early)"
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
