"""MLflow tracking through MlflowClient with explicit run ids: meta-run -> generation -> iteration/research runs.

Every run carries `bilevel.*` tags and a unique `bilevel.key`, so a resumed meta-run finds its runs again
instead of duplicating them (MLflow has no root-run tag; we search by ours).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

from infra.mlflow_schema import EXPERIMENT_TAGS, KEY_TAG, tag

TERMINAL = ("FINISHED", "FAILED", "KILLED")
MAX_PARAM_CHARS = 500
SEARCH_PAGE = 1000


def _mlflow():
    from infra.settings import apply_telemetry_opt_outs

    apply_telemetry_opt_outs()  # before mlflow is imported: it reads them then
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.tracking import MlflowClient

    return MlflowClient, Metric, Param, RunTag


class Tracker:
    """Writes meta-runs to MLflow. Thread-safe for our use (one client, calls serialised by a lock)."""

    def __init__(self, tracking_uri: str, artifact_root: Path | None = None) -> None:
        client_cls, *_ = _mlflow()
        logging.getLogger("mlflow").setLevel(logging.WARNING)  # its INFO lines about migrations are noise
        if tracking_uri.startswith("sqlite:///"):
            Path(tracking_uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root
        self.client = client_cls(tracking_uri=tracking_uri)
        self._lock = threading.RLock()
        self._experiments: dict[str, str] = {}
        self._run_experiments: dict[str, str] = {}

    # -- runs ------------------------------------------------------------------------------------
    def experiment_id(self, name: str) -> str:
        with self._lock:
            if name in self._experiments:
                return self._experiments[name]
            experiment = self.client.get_experiment_by_name(name)
            if experiment is None:
                location = None
                if self.artifact_root is not None:
                    location = (self.artifact_root / name.replace("/", "_")).resolve().as_uri()
                experiment_id = self.client.create_experiment(name, artifact_location=location, tags=EXPERIMENT_TAGS)
            else:
                experiment_id = experiment.experiment_id
                for key, value in EXPERIMENT_TAGS.items():  # experiments made before the tag existed
                    if experiment.tags.get(key) != value:
                        self.client.set_experiment_tag(experiment_id, key, value)
            self._experiments[name] = experiment_id
            return experiment_id

    def find_run(self, experiment_id: str, key: str) -> Any | None:
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{KEY_TAG}` = '{key}'", max_results=2
        )
        if len(runs) > 1:
            raise RuntimeError(f"MLflow holds {len(runs)} runs with key {key}: the store was written outside bilevel")
        return runs[0] if runs else None

    def ensure_run(
        self,
        experiment_name: str,
        key: str,
        *,
        run_name: str,
        tags: dict[str, Any],
        parent_run_id: str | None = None,
    ) -> tuple[str, bool]:
        """The run with this key, created if missing. Returns (run_id, already_finished)."""
        with self._lock:
            experiment_id = self.experiment_id(experiment_name)
            existing = self.find_run(experiment_id, key)
            if existing is not None:
                return existing.info.run_id, existing.info.status in TERMINAL
            all_tags = {tag(k): str(v) for k, v in tags.items()}
            all_tags[KEY_TAG] = key
            if parent_run_id:
                all_tags["mlflow.parentRunId"] = parent_run_id
            run = self.client.create_run(experiment_id, run_name=run_name, tags=all_tags)
            return run.info.run_id, False

    def finish(self, run_id: str, status: str = "FINISHED") -> None:
        with self._lock:
            self.client.set_terminated(run_id, status=status)

    # -- logging ----------------------------------------------------------------------------------
    def log(
        self,
        run_id: str,
        *,
        metrics: dict[str, float | None] | None = None,
        params: dict[str, Any] | None = None,
        tags: dict[str, Any] | None = None,
        step: int = 0,
    ) -> None:
        """One batched write (MLflow costs ~30 ms per call on SQLite, so never log value by value)."""
        _, metric_cls, param_cls, tag_cls = _mlflow()
        now = int(time.time() * 1000)
        metric_list = [metric_cls(k, float(v), now, step) for k, v in (metrics or {}).items() if v is not None]
        param_list = [param_cls(k, _param_text(v)) for k, v in (params or {}).items()]
        tag_list = [tag_cls(tag(k), str(v)) for k, v in (tags or {}).items()]
        if metric_list or param_list or tag_list:
            with self._lock:
                self.client.log_batch(run_id, metrics=metric_list, params=param_list, tags=tag_list)

    def log_text(self, run_id: str, text: str, artifact_file: str) -> None:
        with self._lock:
            self.client.log_text(run_id, text, artifact_file)

    def log_dict(self, run_id: str, data: dict[str, Any], artifact_file: str) -> None:
        with self._lock:
            self.client.log_dict(run_id, data, artifact_file)

    def record_llm_call(self, call: dict[str, Any]) -> None:
        """One LLM call as an MLflow trace under its run (the Traces view shows what the model was asked and
        answered); calls without a run are not recorded here (the call log has them)."""
        run_id = call.get("run_id")
        if not run_id:
            return
        import mlflow

        usage = call["usage"]
        with self._lock:
            # The trace exporter writes to the process's tracking URI (synchronously: see TELEMETRY_OPT_OUTS).
            mlflow.set_tracking_uri(self.tracking_uri)
            experiment_id = self._run_experiments.get(run_id) or self.client.get_run(run_id).info.experiment_id
            self._run_experiments[run_id] = experiment_id
            span = self.client.start_trace(
                call["purpose"], span_type="LLM", inputs={"messages": call["messages"]}, experiment_id=experiment_id,
                run_id=run_id, attributes={"call_key": call["call_key"], "model": call["model"]},
            )
            self.client.end_trace(span.trace_id, outputs={"answer": call["answer"]}, attributes={
                "prompt_tokens": usage.prompt_tokens, "completion_tokens": usage.completion_tokens,
                "cost_usd": usage.cost_usd, "seconds": round(usage.seconds, 3)})

    def log_file(self, run_id: str, path: Path, artifact_path: str | None = None) -> None:
        with self._lock:
            self.client.log_artifact(run_id, str(path), artifact_path)

    # -- queries ------------------------------------------------------------------------------------
    def search(self, filter_string: str, experiment_names: list[str] | None = None) -> list[Any]:
        """Every run across experiments (all bilevel experiments by default) matching an MLflow filter, page by page."""
        if experiment_names is None:
            ids = [e.experiment_id for e in self.client.search_experiments(max_results=SEARCH_PAGE)
                   if e.name.startswith("bilevel")]
        else:
            ids = [e.experiment_id for name in experiment_names if (e := self.client.get_experiment_by_name(name))]
        if not ids:
            return []
        runs: list[Any] = []
        token = None
        while True:
            page = self.client.search_runs(ids, filter_string=filter_string, max_results=SEARCH_PAGE, page_token=token)
            runs.extend(page)
            token = page.token
            if not token:
                return runs


def _param_text(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= MAX_PARAM_CHARS else text[: MAX_PARAM_CHARS - 3] + "..."
