"""Meta-runs and ablation manifests kept in the S3 store next to the mechanisms: uploaded after every decision,
downloaded by `bilevel resume` or `bilevel ablate` on a machine that lacks the run folder."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING

from infra.runs import RunFolder, write_json_atomic
from infra.store import RECORD_FILES, StoreError
from search.ablation import AblationManifest, manifest_path
from search.safe_json import loads_bounded

if TYPE_CHECKING:
    from infra.resources import Resources
    from infra.settings import Settings
    from infra.store import MechanismStore

log = logging.getLogger(__name__)

MAX_JSON_DEPTH = 64


def runs_kept_in_store(settings: Settings) -> bool:
    """Whether a command should open the store to keep its runs there, whatever else it needs (settings.store_runs):
    `auto` with a configured endpoint (a shared S3 outlives the machine; the embedded one lives in the state
    directory and would not), or `always`."""
    return settings.store_runs == "always" or (settings.store_runs == "auto" and bool(settings.s3_endpoint_url))


def publish_run(res: Resources, folder: RunFolder) -> None:
    """Copy the run's files to the store after a decision, when the run has a store and the settings keep runs
    there. A store failure is logged and does not stop the run: the files are on disk, and the next decision
    uploads them again."""
    if res.store is None or res.settings.store_runs == "never":
        return
    try:
        upload_run(res.store, folder)
    except (StoreError, OSError) as error:
        log.warning("could not copy meta-run %s to the store (the next decision tries again): %s",
                    folder.meta_run_id, error)
        res.emit("store_warning", meta_run_id=folder.meta_run_id, error=str(error)[:300])


def upload_run(store: MechanismStore, folder: RunFolder) -> int:
    """Upload every file of the run folder that exists (spec, settings, trace, summary, mechanisms); unchanged files
    are not written again. Returns how many new versions were written."""
    written = 0
    for filename in RECORD_FILES["runs"]:
        path = folder.root / filename
        if path.is_file() and store.put_record("runs", folder.meta_run_id, filename, path.read_bytes()) is not None:
            written += 1
    return written


def fetch_run(store: MechanismStore, runs_dir: Path, meta_run_id: str, *, only_finished: bool = False) -> bool:
    """Download a meta-run from the store into runs_dir/<id> (False when the store has no spec for it, or, with
    `only_finished`, no summary of a finished run). Every file is checked as JSON (bounded) before anything is
    written; each file is replaced atomically."""
    folder = RunFolder(runs_dir, meta_run_id)
    files: dict[str, object] = {}
    for filename in RECORD_FILES["runs"]:
        body = store.get_record("runs", meta_run_id, filename)
        if body is not None:
            try:
                files[filename] = loads_bounded(body, len(body), MAX_JSON_DEPTH)
            except ValueError as error:
                raise StoreError(f"runs/{meta_run_id}/{filename} in the store is not usable JSON: {error}") from None
    if "spec.json" not in files:
        return False
    summary = files.get("summary.json")
    if only_finished and not (isinstance(summary, dict) and summary.get("stop_reason") == "finished"):
        return False
    for filename, data in files.items():
        write_json_atomic(folder.root / filename, data)
    return True


def publish_manifest(store: MechanismStore, state_dir: Path, ablation_id: str) -> None:
    path = manifest_path(state_dir, ablation_id)
    store.put_record("ablations", ablation_id, "manifest.json", path.read_bytes())


def fetch_manifest(store: MechanismStore, ablation_id: str) -> AblationManifest | None:
    body = store.get_record("ablations", ablation_id, "manifest.json")
    if body is None:
        return None
    try:
        return AblationManifest.model_validate(loads_bounded(body, len(body), MAX_JSON_DEPTH))
    except ValueError as error:  # pydantic's ValidationError is a ValueError
        raise StoreError(f"ablations/{ablation_id}/manifest.json in the store is not a manifest: "
                         f"{str(error).splitlines()[0][:200]}") from None


def sync_ablation(store: MechanismStore, state_dir: Path, ablation_id: str) -> int:
    """Bring an ablation's shards from the store: its manifest merged with the one here, and every finished
    meta-run it lists that this machine lacks (or has unfinished). Returns how many runs were downloaded."""
    from search.ablation import merge_manifests

    remote = fetch_manifest(store, ablation_id)
    if remote is None:
        return 0
    path = manifest_path(state_dir, ablation_id)
    manifest = remote
    if path.is_file():
        manifest = merge_manifests(AblationManifest.model_validate_json(path.read_text()), remote)
    write_json_atomic(path, manifest.model_dump(mode="json"))
    runs_dir = state_dir / "runs"
    fetched = 0
    for meta_run_id in (m for item in manifest.arms for m in item.meta_run_ids):
        folder = RunFolder(runs_dir, meta_run_id)
        summary = folder.read_summary() if folder.summary_path.is_file() else None
        if summary is not None and summary.stop_reason == "finished":
            continue
        fetched += fetch_run(store, runs_dir, meta_run_id, only_finished=True)
    return fetched
