"""The export bundle (a .tar.gz of a meta-run or an ablation with its runs): its layout, the scrubbing of secrets
on the way out, and the checks on the way in. A bundle is untrusted input: bounded sizes and member count, regular
files only, names matched against the layout (so nothing can land outside the state directory), JSON parsed with
bounds and validated by the models that read it, ids checked like the run folders check them. Any damage is one
BundleError line. Holds JSON, mechanism sources, and the report's HTML and PNGs; never pickles.

Layout:

    bundle.json                                   what the bundle holds: kind, id, runs, mechanism versions
    runs/<meta_run_id>/<spec|settings|trace|summary|mechanisms>.json
    ablations/<ablation_id>/manifest.json         an ablation bundle only
    mechanisms/<name>/<version_id>.py             one stored mechanism version (its metadata is in bundle.json)
    reports/<id>/[runs/<meta_run_id>/]<index.html|statistics.json|NAME.png>   the report, for reading
"""

from __future__ import annotations

import io
import os
import re
import tarfile
import tempfile
import time
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from infra.runs import RUN_ID_PATTERN
from infra.store import MAX_RECORD_BYTES, MAX_SOURCE_BYTES, NAME_PATTERN, VERSION_ID_PATTERN, VersionMeta, sha256_hex
from search.ablation import AblationManifest
from search.run_spec import MetaRunSpec, MetaRunSummary
from search.safe_json import loads_bounded
from search.trace import Trace
from workloads.subprocess_run import looks_secret  # the training environment's rule, one home for it

FORMAT = "bilevel-bundle"
FORMAT_VERSION = 1
INDEX = "bundle.json"
RUN_FILES = ("spec.json", "settings.json", "trace.json", "summary.json", "mechanisms.json")

MAX_BUNDLE_BYTES = 256 * 1024 * 1024  # the .tar.gz on disk
MAX_TOTAL_BYTES = 512 * 1024 * 1024  # all members, uncompressed
MAX_MEMBERS = 20_000
MAX_JSON_BYTES = 8 * 1024 * 1024  # every JSON member but a trace
MAX_TRACE_BYTES = MAX_RECORD_BYTES
MAX_REPORT_FILE_BYTES = 32 * 1024 * 1024
MAX_JSON_DEPTH = 64
MAX_RUNS = 2_000
MAX_MECHANISMS = 2_000

_ID = r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}"  # RUN_ID_PATTERN, as a fragment
_REPORT_FILE = r"(?:index\.html|statistics\.json|[a-z0-9_]{1,64}\.png)"
MEMBER_PATTERNS: dict[str, re.Pattern[str]] = {
    "index": re.compile(re.escape(INDEX)),
    "run": re.compile(rf"runs/(?P<id>{_ID})/(?P<file>{'|'.join(re.escape(f) for f in RUN_FILES)})"),
    "manifest": re.compile(rf"ablations/(?P<id>{_ID})/manifest\.json"),
    "mechanism": re.compile(rf"mechanisms/(?P<name>{NAME_PATTERN.pattern})/(?P<version>{VERSION_ID_PATTERN.pattern})\.py"),
    "report": re.compile(rf"reports/(?P<id>{_ID})/(?:runs/{_ID}/)?{_REPORT_FILE}"),
}

SCRUBBED = "***"
_URL_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)[^/@\s:]+(?::[^/@\s]*)?@")
MIN_SECRET_CHARS = 8  # shorter environment values ("1", "true") would match everywhere


class BundleError(ValueError):
    """A bundle that cannot be read or written; the message is one line a user can act on."""


class MechanismEntry(BaseModel):
    """One mechanism version in bundle.json: what the store it came from recorded."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=rf"^{NAME_PATTERN.pattern}$")
    version_id: str = Field(pattern=rf"^{VERSION_ID_PATTERN.pattern}$")
    status: Literal["accepted", "rejected"] = "accepted"
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    meta_run_id: str = Field(pattern=r"^[A-Za-z0-9._:-]{1,128}$")
    generation: int = Field(ge=0, le=1_000_000)
    parents: list[str] = Field(default_factory=list, max_length=16)
    model: str = Field("", max_length=200)

    def meta(self, parents: Iterable[str] | None = None) -> VersionMeta:
        return VersionMeta(meta_run_id=self.meta_run_id, generation=self.generation, status=self.status,
                           parents=tuple(self.parents if parents is None else parents), model=self.model)

    @property
    def member(self) -> str:
        return f"mechanisms/{self.name}/{self.version_id}.py"


class BundleIndex(BaseModel):
    """bundle.json."""

    model_config = ConfigDict(extra="forbid")

    format: Literal["bilevel-bundle"] = FORMAT
    format_version: int = Field(FORMAT_VERSION, ge=1, le=FORMAT_VERSION)
    kind: Literal["run", "ablation"]
    id: str = Field(pattern=rf"^{_ID}$")
    created: str = Field("", max_length=64)
    runs: list[str] = Field(default_factory=list, max_length=MAX_RUNS)
    mechanisms: list[MechanismEntry] = Field(default_factory=list, max_length=MAX_MECHANISMS)
    has_report: bool = False


@dataclass
class BundledRun:
    """One meta-run read from a bundle: its files as validated JSON objects."""

    meta_run_id: str
    files: dict[str, Any]

    @property
    def spec(self) -> MetaRunSpec:
        return MetaRunSpec.model_validate(self.files["spec.json"])

    @property
    def summary(self) -> MetaRunSummary | None:
        data = self.files.get("summary.json")
        return None if data is None else MetaRunSummary.model_validate(data)

    @property
    def finished(self) -> bool:
        summary = self.files.get("summary.json")
        return isinstance(summary, dict) and summary.get("stop_reason", "finished") == "finished"


@dataclass
class Bundle:
    """A bundle's content after every check."""

    index: BundleIndex
    runs: dict[str, BundledRun] = field(default_factory=dict)
    manifest: AblationManifest | None = None
    sources: dict[str, str] = field(default_factory=dict)  # by version_id
    report_files: int = 0


# -- secrets ----------------------------------------------------------------------------------------


def scrub(data: Any) -> Any:
    """JSON data without credentials: text under a key that names a secret (the training environment's rule: *KEY*,
    *TOKEN*, *SECRET*, ...) becomes '***', and a URL's user:password@ is dropped from every text value. Numbers and
    flags under such keys (llm_max_tokens) are not secrets and stay."""
    if isinstance(data, dict):
        return {key: (SCRUBBED if isinstance(value, str) and value and looks_secret(str(key)) else scrub(value))
                for key, value in data.items()}
    if isinstance(data, list):
        return [scrub(item) for item in data]
    if isinstance(data, str):
        return _URL_USERINFO.sub(lambda m: m.group("scheme"), data)
    return data


def secret_values(environ: Mapping[str, str], extra: Iterable[str] = ()) -> dict[str, str]:
    """Values that must never appear in a bundle, by the name they are known under (never printed)."""
    found = {name: value for name, value in environ.items() if looks_secret(name) and len(value) >= MIN_SECRET_CHARS}
    found.update({f"setting {i}": value for i, value in enumerate(extra) if len(value) >= MIN_SECRET_CHARS})
    return found


def find_secret(members: Mapping[str, bytes], secrets: Mapping[str, str]) -> tuple[str, str] | None:
    """(member, secret's name) of the first member that contains a secret's value, or None."""
    for member, body in members.items():
        for name, value in secrets.items():
            if value.encode() in body:
                return member, name
    return None


# -- writing ----------------------------------------------------------------------------------------


def write_bundle(path: Path, members: Mapping[str, bytes]) -> Path:
    """Write the members into a new .tar.gz at `path` (refusing to replace a file): regular files only, names
    checked against the layout, written to a temporary file first so a crash leaves no half bundle."""
    if path.exists():
        raise BundleError(f"{path} already exists: remove it or choose another --to")
    if INDEX not in members:
        raise BundleError("a bundle needs its bundle.json")
    for name in members:
        _member_kind(name)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz", format=tarfile.PAX_FORMAT) as tar:
            now = int(time.time())
            for name in sorted(members, key=lambda n: (n != INDEX, n)):  # the index first: a reader learns the kind
                info = tarfile.TarInfo(name)
                info.size, info.mode, info.mtime, info.type = len(members[name]), 0o644, now, tarfile.REGTYPE
                tar.addfile(info, io.BytesIO(members[name]))
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    return path


def index_bytes(index: BundleIndex) -> bytes:
    return index.model_dump_json(indent=1).encode()


def created_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# -- reading ----------------------------------------------------------------------------------------


def read_bundle(path: Path) -> Bundle:
    """Every member of the bundle at `path`, checked; BundleError (one line) for anything damaged or unexpected.
    Nothing is written anywhere."""
    if not path.is_file():
        raise BundleError(f"no bundle at {path}")
    size = path.stat().st_size
    if size > MAX_BUNDLE_BYTES:
        raise BundleError(f"{path.name} is {size} bytes, over the {MAX_BUNDLE_BYTES}-byte limit of a bundle")
    members = _read_members(path)
    return _parse(path.name, members)


def _read_members(path: Path) -> dict[str, bytes]:
    """The members' bytes (reports: counted, not kept), streamed, with every limit checked before reading."""
    members: dict[str, bytes] = {}
    seen: set[str] = set()
    total = 0
    try:
        with tarfile.open(path, mode="r|gz") as tar:
            for count, member in enumerate(tar, start=1):
                if count > MAX_MEMBERS:
                    raise BundleError(f"damaged bundle {path.name}: more than {MAX_MEMBERS} members")
                name = member.name
                if not member.isreg() or member.issparse():
                    what = ("a symbolic link" if member.issym() else "a hard link" if member.islnk() else
                            "a directory" if member.isdir() else "a device or fifo" if member.isdev() or
                            member.isfifo() else "not a regular file")
                    raise BundleError(f"damaged bundle {path.name}: member {name[:120]!r} is {what}; a bundle holds "
                                      "regular files only")
                kind = _member_kind(name, path.name)
                if name in seen:
                    raise BundleError(f"damaged bundle {path.name}: member {name!r} appears twice")
                seen.add(name)
                limit = _member_limit(kind, name)
                if member.size > limit:
                    raise BundleError(f"damaged bundle {path.name}: member {name!r} is {member.size} bytes, over its "
                                      f"{limit}-byte limit")
                total += member.size
                if total > MAX_TOTAL_BYTES:
                    raise BundleError(f"damaged bundle {path.name}: its members add up to over {MAX_TOTAL_BYTES} bytes")
                handle = tar.extractfile(member)
                if handle is None:
                    raise BundleError(f"damaged bundle {path.name}: member {name!r} cannot be read")
                body = handle.read(limit + 1)
                if len(body) != member.size:
                    raise BundleError(f"damaged bundle {path.name}: member {name!r} is truncated")
                members[name] = b"" if kind == "report" else body
    except BundleError:
        raise
    except (tarfile.TarError, EOFError, zlib.error, OSError) as error:
        reason = str(error).splitlines()[0][:160] if str(error) else type(error).__name__
        raise BundleError(f"damaged bundle {path.name}: not a complete .tar.gz ({reason}); export it again") from None
    return members


def _member_kind(name: str, bundle: str = "bundle") -> str:
    """Which part of the layout a member name belongs to; refuses absolute paths, '..' and anything unexpected."""
    if not isinstance(name, str) or name.startswith(("/", "\\")) or "\\" in name or ".." in name.split("/"):
        raise BundleError(f"damaged bundle {bundle}: member {str(name)[:120]!r} would leave the state directory")
    for kind, pattern in MEMBER_PATTERNS.items():
        if pattern.fullmatch(name):
            return kind
    raise BundleError(f"damaged bundle {bundle}: unexpected member {name[:120]!r} (not in the bundle layout)")


def _member_limit(kind: str, name: str) -> int:
    if kind == "mechanism":
        return MAX_SOURCE_BYTES
    if kind == "report":
        return MAX_REPORT_FILE_BYTES
    return MAX_TRACE_BYTES if name.endswith("/trace.json") else MAX_JSON_BYTES


def _json(bundle: str, name: str, body: bytes) -> Any:
    try:
        return loads_bounded(body, len(body), MAX_JSON_DEPTH)
    except ValueError as error:
        raise BundleError(f"damaged bundle {bundle}: {name}: {error}") from None


def _model(bundle: str, name: str, model: Any, data: Any) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise BundleError(f"damaged bundle {bundle}: {name}: {where}: {first['msg']} ({error.error_count()} "
                          "problem(s))") from None


def _parse(bundle: str, members: dict[str, bytes]) -> Bundle:
    if INDEX not in members:
        raise BundleError(f"damaged bundle {bundle}: no {INDEX} (is it a bilevel export?)")
    index: BundleIndex = _model(bundle, INDEX, BundleIndex, _json(bundle, INDEX, members[INDEX]))
    result = Bundle(index=index)
    for name in index.runs:
        if not RUN_ID_PATTERN.fullmatch(name):
            raise BundleError(f"damaged bundle {bundle}: {name[:80]!r} is not a meta-run id")
    if index.kind == "run" and index.runs != [index.id]:
        raise BundleError(f"damaged bundle {bundle}: a run bundle of {index.id!r} must hold that run alone")
    files: dict[str, dict[str, Any]] = {run: {} for run in index.runs}
    for name, body in members.items():
        kind = _member_kind(name, bundle)
        if kind == "run":
            match = MEMBER_PATTERNS["run"].fullmatch(name)
            assert match is not None
            if match["id"] not in files:
                raise BundleError(f"damaged bundle {bundle}: {name} belongs to no run listed in {INDEX}")
            files[match["id"]][match["file"]] = _json(bundle, name, body)
        elif kind == "manifest":
            match = MEMBER_PATTERNS["manifest"].fullmatch(name)
            assert match is not None
            if index.kind != "ablation" or match["id"] != index.id:
                raise BundleError(f"damaged bundle {bundle}: {name} does not belong to this {index.kind} bundle")
            result.manifest = _model(bundle, name, AblationManifest, _json(bundle, name, body))
        elif kind == "report":
            result.report_files += 1
    for run, run_files in files.items():
        _check_run(bundle, run, run_files)
        result.runs[run] = BundledRun(run, run_files)
    if index.kind == "ablation":
        _check_manifest(bundle, index, result.manifest)
    result.sources = _sources(bundle, index, members)
    return result


def _check_run(bundle: str, run: str, files: dict[str, Any]) -> None:
    where = f"runs/{run}"
    for required in ("spec.json", "trace.json"):
        if required not in files:
            raise BundleError(f"damaged bundle {bundle}: {where}/{required} is missing")
    spec = _model(bundle, f"{where}/spec.json", MetaRunSpec, files["spec.json"])
    if spec.meta_run_id != run:
        raise BundleError(f"damaged bundle {bundle}: {where}/spec.json names meta-run {spec.meta_run_id!r}")
    _model(bundle, f"{where}/trace.json", Trace, files["trace.json"])
    if "summary.json" in files:
        summary = _model(bundle, f"{where}/summary.json", MetaRunSummary, files["summary.json"])
        if summary.meta_run_id != run:
            raise BundleError(f"damaged bundle {bundle}: {where}/summary.json names meta-run {summary.meta_run_id!r}")
    if not isinstance(files.get("settings.json", {}), dict):
        raise BundleError(f"damaged bundle {bundle}: {where}/settings.json is not an object")
    if not isinstance(files.get("mechanisms.json", []), list):
        raise BundleError(f"damaged bundle {bundle}: {where}/mechanisms.json is not a list")


def _check_manifest(bundle: str, index: BundleIndex, manifest: AblationManifest | None) -> None:
    if manifest is None:
        raise BundleError(f"damaged bundle {bundle}: ablations/{index.id}/manifest.json is missing")
    if manifest.ablation_id != index.id:
        raise BundleError(f"damaged bundle {bundle}: the manifest names ablation {manifest.ablation_id!r}")
    for item in manifest.arms:
        for meta_run_id in item.meta_run_ids:
            if not RUN_ID_PATTERN.fullmatch(meta_run_id):
                raise BundleError(f"damaged bundle {bundle}: the manifest lists {meta_run_id[:80]!r}, not a meta-run id")
    listed = {m for item in manifest.arms for m in item.meta_run_ids}
    strays = [run for run in index.runs if run not in listed]
    if strays:
        raise BundleError(f"damaged bundle {bundle}: runs {strays[:3]} are not in the ablation's manifest")


def _sources(bundle: str, index: BundleIndex, members: dict[str, bytes]) -> dict[str, str]:
    listed = {entry.member: entry for entry in index.mechanisms}
    if len(listed) != len(index.mechanisms) or len({e.version_id for e in index.mechanisms}) != len(listed):
        raise BundleError(f"damaged bundle {bundle}: {INDEX} lists a mechanism version twice")
    present = {name for name in members if MEMBER_PATTERNS["mechanism"].fullmatch(name)}
    if present != set(listed):
        odd = sorted(present ^ set(listed))[:3]
        raise BundleError(f"damaged bundle {bundle}: mechanism sources and {INDEX} disagree ({', '.join(odd)})")
    sources = {}
    for member, entry in listed.items():
        body = members[member]
        if sha256_hex(body) != entry.sha256:
            raise BundleError(f"damaged bundle {bundle}: {member} does not match its recorded sha256")
        try:
            sources[entry.version_id] = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BundleError(f"damaged bundle {bundle}: {member} is not UTF-8 text") from None
        try:
            entry.meta()
        except ValidationError as error:
            raise BundleError(f"damaged bundle {bundle}: {member}: {error.errors()[0]['msg']}") from None
    return sources
