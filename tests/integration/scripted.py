"""Helpers for integration tests: scripted LLM answers and resources wired around real local services."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from infra.mlflow_schema import tag_equals
from infra.resources import Resources, build_llm
from infra.settings import Settings
from infra.tracking import Tracker
from search.run_spec import WorkloadRef
from workloads.base import Workload
from workloads.registry import load_workload
from workloads.tinygpt.workload import TinyGPT

EVAL_BYTES = 4096  # a small evaluation slice keeps test trainings at a few seconds


def proposal(changes: dict[str, Any], hypothesis: str = "scripted") -> dict[str, Any]:
    return {"changes": changes, "hypothesis": hypothesis}


def write_script(path: Path, answers: dict[str, list[Any]], by_key: dict[str, Any] | None = None) -> Path:
    path.write_text(json.dumps({"answers": answers, "by_key": by_key or {}}))
    return path


def scripted_settings(tmp_path: Path, script: Path, **overrides: Any) -> Settings:
    return Settings(state_dir=tmp_path / "state", model="scripted/replay", scripted_answers=script,
                    llm_retries=1, **overrides)


def tinygpt(settings: Settings) -> TinyGPT:
    """Real tinygpt training with a tiny evaluation slice."""
    return TinyGPT(settings.cache_dir, device="cpu", eval_bytes=EVAL_BYTES, launch_log=settings.launch_log)


def toy(settings: Settings) -> Workload:
    """The toy script workload: real subprocess runs of a script that trains in milliseconds."""
    return load_workload(WorkloadRef(reference="toy"), settings)


def wired_resources(settings: Settings, store: Any = None, workload: Workload | None = None) -> Resources:
    """Real runs (the toy workload unless given), real MLflow on SQLite, the scripted LLM."""
    workload = workload or toy(settings)
    workload.prepare()
    llm = build_llm(settings)
    llm.backoff_s = 0.0
    tracker = Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root)
    llm.recorder = tracker.record_llm_call  # as infra/resources.py wires it
    return Resources(settings=settings, workload=workload, llm=llm, tracker=tracker, store=store)


def runs_of(tracker: Tracker, meta_run_id: str, kind: str | None = None) -> list[Any]:
    """Every MLflow run of one meta-run (optionally of one kind)."""
    query = tag_equals("meta_run_id", meta_run_id) + (f" and {tag_equals('kind', kind)}" if kind else "")
    return tracker.search(query)


def launches(settings: Settings) -> list[dict[str, Any]]:
    path = settings.launch_log
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def llm_calls(settings: Settings) -> list[dict[str, Any]]:
    path = settings.logs_dir / "llm_calls.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
