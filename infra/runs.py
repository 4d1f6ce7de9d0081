"""The folder of a meta-run under state_dir/runs/<id>/ (the one place that knows its layout): the spec and settings
it ran with, the trace (the single source of truth), the summary, the mechanisms it used, and one folder per
training. Also the listing of all meta-runs, which reports an unreadable run as failed instead of stopping."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from search.iteration import merge_tracks
from search.objective import Objective
from search.run_spec import MetaRunSpec, MetaRunSummary
from search.state import BaselineFailed
from search.trace import Experiment, Trace

RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")  # always fullmatch: `$` would let "id\n" through


def write_json_atomic(path: Path, data: Any) -> None:
    """Write JSON so that a reader (or a crash) never sees half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w") as out:
        json.dump(data, out, indent=1, default=str)
    os.replace(temp, path)


@dataclass(frozen=True)
class RunFolder:
    """One meta-run's files. Its id is checked, so the folder always lies inside the runs directory."""

    runs_dir: Path
    meta_run_id: str

    def __post_init__(self) -> None:
        if not isinstance(self.meta_run_id, str) or not RUN_ID_PATTERN.fullmatch(self.meta_run_id):
            raise ValueError(f"{self.meta_run_id!r} is not a meta-run id (letters, digits, _ . -; at most 80)")

    @property
    def root(self) -> Path:
        return self.runs_dir / self.meta_run_id

    @property
    def spec_path(self) -> Path:
        return self.root / "spec.json"

    @property
    def settings_path(self) -> Path:
        return self.root / "settings.json"

    @property
    def trace_path(self) -> Path:
        return self.root / "trace.json"

    @property
    def summary_path(self) -> Path:
        return self.root / "summary.json"

    @property
    def mechanisms_path(self) -> Path:
        return self.root / "mechanisms.json"

    def training_dir(self, label: str) -> Path:
        return self.root / label

    def exists(self) -> bool:
        return self.spec_path.is_file()

    # -- writing -------------------------------------------------------------------------------------

    def write_spec(self, spec: MetaRunSpec, settings: dict[str, Any]) -> None:
        """What `bilevel resume` and `bilevel runs` read: the spec, and the settings (no secrets) it ran with."""
        write_json_atomic(self.spec_path, spec.model_dump(mode="json"))
        write_json_atomic(self.settings_path, settings)

    def write_trace(self, trace: Trace) -> Path:
        write_json_atomic(self.trace_path, trace.model_dump(mode="json"))
        return self.trace_path

    def write_summary(self, summary: MetaRunSummary) -> None:
        write_json_atomic(self.summary_path, summary.model_dump(mode="json"))

    def write_mechanisms(self, mechanisms: list[BaseModel]) -> None:
        """Every mechanism version that was active during the meta-run, with its source (for reports)."""
        write_json_atomic(self.mechanisms_path, [m.model_dump(mode="json") for m in mechanisms])

    # -- reading -------------------------------------------------------------------------------------

    def read_spec(self) -> MetaRunSpec:
        return MetaRunSpec.model_validate_json(self.spec_path.read_text())

    def read_settings(self) -> dict[str, Any]:
        data = json.loads(self.settings_path.read_text()) if self.settings_path.is_file() else {}
        return data if isinstance(data, dict) else {}

    def read_trace(self) -> Trace:
        if not self.trace_path.is_file():
            raise FileNotFoundError(f"no trace for meta-run {self.meta_run_id!r} at {self.trace_path}")
        return Trace.model_validate_json(self.trace_path.read_text())

    def read_trace_if_any(self) -> Trace | None:
        """The trace a resume continues from, or None for a run that has not written one yet."""
        return self.read_trace() if self.trace_path.is_file() else None

    def read_summary(self) -> MetaRunSummary | None:
        return MetaRunSummary.model_validate_json(self.summary_path.read_text()) if self.summary_path.is_file() else None


TraceHook = Callable[[RunFolder, Trace], None]


class TraceWriter:
    """The one writer of a running meta-run's trace.json: every decision (an experiment of any track, the start of a
    generation, Level 1.5, Level 2) goes through `_write`, which writes the whole trace atomically and then calls
    `on_write` (e.g. a copy to the S3 store). While a generation's tracks run in parallel threads, their experiments
    are merged as `merge_tracks` will merge them, so the file always holds every decided experiment."""

    def __init__(self, folder: RunFolder, trace: Trace, on_write: TraceHook | None = None) -> None:
        self.folder = folder
        self.on_write = on_write
        self._trace = trace
        self._tracks: dict[int, list[Experiment]] | None = None  # the open generation's tracks
        self._lock = threading.Lock()
        self._session_start = time.monotonic()
        self._elapsed_before = trace.elapsed_s  # what earlier sessions worked (the run's time limit counts it)

    @property
    def trace(self) -> Trace:
        return self._trace

    # Prefect serialises a flow's parameters with the task context it sends to a Dask or Ray worker, so the writer
    # must pickle; a copy there is detached (no lock, no hook: the hook holds the resources) and refuses to write.
    def __getstate__(self) -> dict:
        state = {**self.__dict__, "on_write": None, "_detached": True}
        state.pop("_lock", None)
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def commit(self, trace: Trace) -> Path:
        """Record `trace` as it stands (a baseline, a generation's start or end, the merged tracks)."""
        with self._lock:
            self._trace, self._tracks = trace, None
            return self._write()

    def open_tracks(self, base: Trace, decided: dict[int, list[Experiment]]) -> None:
        """The tracks of a generation start from `base` (the trace before it), with their decided experiments."""
        with self._lock:
            self._trace, self._tracks = base, {track: list(experiments) for track, experiments in decided.items()}

    def decided(self, track: int, experiment: Experiment) -> Path:
        """One more decided experiment of `track` in the open generation."""
        with self._lock:
            if self._tracks is None:
                raise RuntimeError("no generation is open: call open_tracks first")
            self._tracks.setdefault(track, []).append(experiment)
            return self._write()

    def _write(self) -> Path:
        if self.__dict__.get("_detached"):
            raise RuntimeError("a copy of a meta-run's trace writer cannot write: only the flow's own writer records "
                               "decisions")
        trace = self._trace
        if self._tracks is not None:
            trace = merge_tracks(trace, [self._tracks[t] for t in sorted(self._tracks)])
        trace = trace.model_copy(update={"elapsed_s": self.elapsed_s()})
        path = self.folder.write_trace(trace)
        if self.on_write is not None:
            self.on_write(self.folder, trace)
        return path

    def elapsed_s(self) -> float:
        """Seconds the meta-run has worked, this session included."""
        return self._elapsed_before + time.monotonic() - self._session_start


class RunListing(BaseModel):
    """One line of `bilevel runs`."""

    id: str
    state: str  # finished | stopped (a run limit) | incomplete | failed
    objective: Objective = Objective()
    experiments: int = 0
    baseline: float | None = None
    best: float | None = None
    delta: float | None = None
    started: str = ""
    problem: str = ""


def list_meta_runs(runs_dir: Path) -> list[RunListing]:
    """Every meta-run under runs_dir, newest first, with its state read from its files; a run whose files cannot
    be read is listed as failed, with the reason."""
    items = []
    if not runs_dir.is_dir():
        return items
    for path in runs_dir.iterdir():
        if not RUN_ID_PATTERN.fullmatch(path.name) or not (path / "spec.json").is_file():
            continue
        items.append(_listing(RunFolder(runs_dir, path.name)))
    return sorted(items, key=lambda i: i.started, reverse=True)


def _listing(folder: RunFolder) -> RunListing:
    item = RunListing(id=folder.meta_run_id, state="incomplete", started=_mtime(folder.spec_path))
    try:
        summary = folder.read_summary()
        if summary is not None:
            item.state = "finished" if summary.stop_reason == "finished" else f"stopped ({summary.stop_reason})"
            item.objective, item.experiments = summary.objective, summary.experiments
            item.baseline, item.best, item.delta = summary.baseline_value, summary.best_value, summary.delta
            return item
        if folder.trace_path.is_file():
            trace = folder.read_trace()
            state = trace.state()
            item.objective, item.experiments = trace.objective, len(trace.decided)
            item.baseline, item.best, item.delta = state.baseline.value, state.best.value, state.delta
    except (ValidationError, ValueError, OSError, BaselineFailed) as error:
        item.state, item.problem = "failed", f"{type(error).__name__}: {str(error).splitlines()[0][:200] if str(error) else ''}"
    return item


def _mtime(path: Path) -> str:
    return datetime.fromtimestamp(path.stat().st_mtime).strftime("%Y-%m-%d %H:%M")


def read_traces(runs_dir: Path) -> dict[str, Trace]:
    """The trace of every meta-run under runs_dir that has a readable one (for influence and lineage)."""
    traces: dict[str, Trace] = {}
    if not runs_dir.is_dir():
        return traces
    for path in sorted(runs_dir.iterdir()):
        if not RUN_ID_PATTERN.fullmatch(path.name) or not (path / "trace.json").is_file():
            continue
        try:
            traces[path.name] = RunFolder(runs_dir, path.name).read_trace()
        except (ValidationError, ValueError, OSError):
            continue  # `bilevel runs` reports it as failed; influence comes from the readable ones
    return traces
