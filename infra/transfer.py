"""`bilevel export` and `bilevel import`: a meta-run or an ablation from a state directory (and the mechanism store)
into a bundle, and a bundle into another state directory, its store and its MLflow. The bundle's layout and checks
are infra/bundle.py's; this module gathers and registers."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.bundle import (
    RUN_FILES,
    Bundle,
    BundledRun,
    BundleError,
    BundleIndex,
    MechanismEntry,
    created_now,
    find_secret,
    index_bytes,
    read_bundle,
    scrub,
    secret_values,
    write_bundle,
)
from infra.mlflow_schema import MetricNames, experiment_name, run_key, run_tags
from infra.runs import RunFolder, write_json_atomic
from infra.store import MechanismNotFound, StoredVersion
from search.ablation import AblationManifest, manifest_path, merge_manifests
from search.active_set import LABEL_CHARS
from search.trace import Trace

if TYPE_CHECKING:
    from infra.settings import Settings
    from infra.store import MechanismStore
    from infra.tracking import Tracker

StoreFactory = Callable[[], "MechanismStore"]
MAX_PARENT_DEPTH = 8


# -- export -----------------------------------------------------------------------------------------


def export_target(settings: Settings, target: str, to: Path, store: StoreFactory | None) -> Path:
    """Write the bundle of a meta-run or an ablation (with all its runs that exist here) to `to`. `store` opens the
    mechanism store; it is called only when a run used stored mechanisms."""
    state = settings.state_path
    path = manifest_path(state, target)
    members: dict[str, bytes] = {}
    if path.is_file():
        manifest = AblationManifest.model_validate_json(path.read_text())
        # a meta-run that has no trace yet (still at its baseline, or running elsewhere) decided nothing to carry
        runs = [m for item in manifest.arms for m in item.meta_run_ids
                if (RunFolder(settings.runs_dir, m).root / "trace.json").is_file()]
        members[f"ablations/{target}/manifest.json"] = _json_bytes(scrub(manifest.model_dump(mode="json")))
        kind = "ablation"
    else:
        if not RunFolder(settings.runs_dir, target).exists():
            raise BundleError(f"{target!r} is neither a meta-run nor an ablation under {state} (see: bilevel runs)")
        runs, kind = [target], "run"
    for meta_run_id in runs:
        members.update(_run_members(RunFolder(settings.runs_dir, meta_run_id)))
    mechanisms = _mechanism_versions(settings.runs_dir, runs, store)
    for entry, source in mechanisms:
        members[entry.member] = source.encode("utf-8")
    report = state / "reports" / target
    has_report = _add_report(members, report, target)
    index = BundleIndex(kind=kind, id=target, created=created_now(), runs=runs,
                        mechanisms=[entry for entry, _ in mechanisms], has_report=has_report)
    members["bundle.json"] = index_bytes(index)
    secrets = secret_values(os.environ, [settings.s3_access_key.get_secret_value(),
                                         settings.s3_secret_key.get_secret_value()])
    leak = find_secret(members, secrets)
    if leak is not None:
        raise BundleError(f"refusing to export: {leak[0]} contains the value of {leak[1]} (a secret); remove it from "
                          "the run's files or unset it, then export again")
    return write_bundle(to, members)


def _json_bytes(data: Any) -> bytes:
    return json.dumps(data, indent=1, ensure_ascii=False, allow_nan=False).encode("utf-8")


def _run_members(folder: RunFolder) -> dict[str, bytes]:
    members = {}
    for filename in RUN_FILES:
        path = folder.root / filename
        if path.is_file():
            data = json.loads(path.read_text())
            members[f"runs/{folder.meta_run_id}/{filename}"] = _json_bytes(scrub(data))
    return members


def _referenced_versions(runs_dir: Path, runs: Iterable[str]) -> set[tuple[str, str]]:
    """(name, VersionId) of every stored mechanism a run started from or ran (library code is not stored)."""
    found: set[tuple[str, str]] = set()
    for meta_run_id in runs:
        folder = RunFolder(runs_dir, meta_run_id)
        for item in folder.read_spec().mechanisms:
            name, _, version = item.partition("@")
            if version and not item.startswith("library:"):
                found.add((name, version))
        if folder.mechanisms_path.is_file():
            for item in json.loads(folder.mechanisms_path.read_text()):
                if isinstance(item, dict) and item.get("origin") == "store":
                    found.add((str(item.get("name")), str(item.get("version"))))
    return found


def _mechanism_versions(runs_dir: Path, runs: list[str], store: StoreFactory | None) -> list[tuple[MechanismEntry, str]]:
    """Every stored version the runs used or produced (accepted and rejected), with the parents they descend from."""
    referenced = _referenced_versions(runs_dir, runs)
    produces = any(RunFolder(runs_dir, r).read_spec().has_level("2") for r in runs)
    if not referenced and not produces:
        return []
    if store is None:
        raise BundleError("the run used stored mechanisms, but no mechanism store is available to export them from")
    opened = store()
    versions: dict[str, StoredVersion] = {}
    if produces:
        wanted = set(runs)
        for status in ("accepted", "rejected"):
            for name in opened.names(status=status):  # type: ignore[arg-type]
                for version in opened.history(name, status=status):  # type: ignore[arg-type]
                    if version.meta_run_id in wanted:
                        versions[version.version_id] = version
    for name, version_id in referenced:
        try:
            versions[version_id] = opened.head(name, version_id)
        except MechanismNotFound:
            raise BundleError(f"mechanism {name}@{version_id} is not in the store any more; cannot export it") from None
    frontier = list(versions.values())
    for _ in range(MAX_PARENT_DEPTH):  # lineage: the parents, so the tree still walks on the new machine
        parents = [p for v in frontier for p in v.parents if p not in versions]
        frontier = [found for found in (opened.find(p) for p in dict.fromkeys(parents)) if found is not None]
        versions.update({v.version_id: v for v in frontier})
        if not frontier:
            break
    result = []
    for version in sorted(versions.values(), key=lambda v: (v.created_at, v.version_id)):
        source, stored = opened.get(version.name, version.version_id, status=version.status)
        result.append((MechanismEntry(name=stored.name, version_id=stored.version_id, status=stored.status,
                                      sha256=stored.sha256, meta_run_id=stored.meta_run_id,
                                      generation=stored.generation, parents=stored.parents, model=stored.model),
                       source))
    return result


def _add_report(members: dict[str, bytes], report: Path, target: str) -> bool:
    """The report's files that fit the bundle layout (the page, statistics.json, the PNGs, the per-run pages)."""
    from infra.bundle import MEMBER_PATTERNS

    if not report.is_dir():
        return False
    added = False
    for path in sorted(report.rglob("*")):
        name = f"reports/{target}/{path.relative_to(report).as_posix()}"
        if path.is_file() and not path.is_symlink() and MEMBER_PATTERNS["report"].fullmatch(name):
            members[name] = path.read_bytes()
            added = True
    return added


# -- import -----------------------------------------------------------------------------------------


@dataclass
class ImportResult:
    """What an import did, for the command's output."""

    bundle: Bundle
    written: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)  # runs already here and at least as far along: left as they were
    mechanisms_new: int = 0
    mechanisms_present: int = 0
    renamed: dict[str, str] = field(default_factory=dict)  # VersionIds of the source store -> this store's


def import_bundle(settings: Settings, path: Path, store: StoreFactory | None, tracker: Tracker) -> ImportResult:
    """Check the whole bundle, then register its mechanism versions in the store (VersionIds this store gives them
    replace the old ones in the runs' files), write its runs under the state directory, give each run its MLflow
    parent run, and merge an ablation's manifest with the one here."""
    bundle = read_bundle(path)  # every check first: a refused bundle writes nothing
    result = ImportResult(bundle)
    if bundle.index.mechanisms:
        if store is None:
            raise BundleError("the bundle holds mechanism versions, but no mechanism store is available")
        _register_mechanisms(bundle, store(), result)
    for meta_run_id, run in bundle.runs.items():
        folder = RunFolder(settings.runs_dir, meta_run_id)
        if _keep_local(folder, run):
            result.kept.append(meta_run_id)
            continue
        files = _renamed(run.files, result.renamed)
        produced = [entry.model_copy(update={"version_id": result.renamed.get(entry.version_id, entry.version_id),
                                             "parents": [result.renamed.get(p, p) for p in entry.parents]})
                    for entry in bundle.index.mechanisms if entry.meta_run_id == meta_run_id]
        mlflow_run_id = _register_in_mlflow(tracker, BundledRun(meta_run_id, files), produced)
        summary = files.get("summary.json")
        if isinstance(summary, dict):
            files["summary.json"] = {**summary, "mlflow_run_id": mlflow_run_id, "trace_path": str(folder.trace_path)}
        for filename, data in files.items():
            write_json_atomic(folder.root / filename, data)
        result.written.append(meta_run_id)
    if bundle.manifest is not None:
        target = manifest_path(settings.state_path, bundle.manifest.ablation_id)
        manifest = bundle.manifest
        if target.is_file():
            manifest = merge_manifests(AblationManifest.model_validate_json(target.read_text()), manifest)
        write_json_atomic(target, manifest.model_dump(mode="json"))
    return result


def _register_mechanisms(bundle: Bundle, store: MechanismStore, result: ImportResult) -> None:
    """Parents before children, so a child's parents are named by this store's VersionIds."""
    pending = list(bundle.index.mechanisms)
    listed = {entry.version_id for entry in pending}
    while pending:
        ready = [e for e in pending if all(p not in listed or p in result.renamed for p in e.parents)] or pending[:1]
        for entry in ready:
            pending.remove(entry)
            parents = [result.renamed.get(p, p) for p in entry.parents]
            stored = store.import_version(entry.name, bundle.sources[entry.version_id], entry.meta(parents),
                                          entry.version_id)
            result.renamed[entry.version_id] = stored.version_id
            if stored.version_id == entry.version_id:
                result.mechanisms_present += 1
            else:
                result.mechanisms_new += 1
    result.renamed = {old: new for old, new in result.renamed.items() if old != new}


def _renamed(data: Any, renamed: dict[str, str]) -> Any:
    """The run's JSON with the source store's VersionIds replaced by this store's: whole ids, `name@id`, and the
    labels `name@<first 12 characters>` (ActiveMechanism.label), also inside text such as a Level-2 verdict."""
    if not renamed:
        return data
    if isinstance(data, dict):
        return {key: _renamed(value, renamed) for key, value in data.items()}
    if isinstance(data, list):
        return [_renamed(item, renamed) for item in data]
    if isinstance(data, str):
        if data in renamed:
            return renamed[data]
        name, at, version = data.rpartition("@")
        if at and version in renamed:
            return f"{name}@{renamed[version]}"
        if "@" in data:
            for old, new in renamed.items():
                data = re.sub(rf"@{re.escape(old[:LABEL_CHARS])}(?![0-9A-Za-z])", f"@{new[:LABEL_CHARS]}", data)
    return data


def _keep_local(folder: RunFolder, run: BundledRun) -> bool:
    """A run already here is replaced only by a bundle that finished it while this copy did not."""
    if not folder.exists():
        return False
    try:
        local = folder.read_summary()
    except ValueError:
        local = None
    return (local is not None and local.stop_reason == "finished") or not run.finished


def _register_in_mlflow(tracker: Tracker, run: BundledRun, produced: list[MechanismEntry]) -> str:
    """The meta-run's parent run in this MLflow (found by key, so a resume continues it): its parameters, the
    convergence curve, the final metrics, and a run per mechanism version it produced, all tagged as imported.
    Per-iteration runs and their artifacts are not recreated (the trace holds them; the report reads it)."""
    spec = run.spec
    summary = run.summary
    trace = Trace.model_validate(run.files["trace.json"])
    name = experiment_name(spec.name)
    run_id, finished = tracker.ensure_run(name, run_key(spec.meta_run_id), run_name=spec.meta_run_id,
                                          tags={**run_tags("meta_run", spec.meta_run_id), "imported": "true"})
    if finished:
        return run_id
    names = MetricNames(trace.objective)
    tracker.log(run_id, params={"workload": spec.workload.reference, "generations": spec.generations,
                                "iterations": spec.iterations, "levels": ",".join(spec.levels), "seed": spec.seed,
                                "proposer": spec.proposer, "budget": f"{spec.budget.mode}:{spec.budget.value:g}",
                                "mechanisms": ",".join(spec.mechanisms) or "none"},
                tags={"seed_mechanisms": ",".join(spec.mechanisms) or "none"})
    for experiment, best in zip(trace.experiments, trace.best_so_far(), strict=True):
        tracker.log(run_id, metrics={names.value: experiment.measured, names.best: best}, step=experiment.index)
    if summary is not None:
        tracker.log(run_id, metrics={names.delta: summary.delta, names.final_best: summary.best_value})
    for entry in produced:
        mechanism_run, done = tracker.ensure_run(
            name, run_key(spec.meta_run_id, f"g{entry.generation}", "mechanism", f"imported-{entry.version_id[:64]}"),
            run_name=f"mechanism {entry.name} ({entry.status}, imported)",
            tags={**run_tags("mechanism", spec.meta_run_id, generation=entry.generation, mechanism=entry.name,
                             status=entry.status, version_id=entry.version_id, sha256=entry.sha256,
                             parents=",".join(entry.parents) or "none"), "imported": "true"},
            parent_run_id=run_id)
        if not done:
            tracker.finish(mechanism_run, "FINISHED" if entry.status == "accepted" else "FAILED")
    tracker.finish(run_id, "FINISHED" if run.finished and summary is not None else "KILLED")
    return run_id
