"""Versioned mechanism store on any S3-compatible endpoint: each put is a new VersionId with lineage metadata, verified on read.

Layout of the bucket (versioning enabled):

    mechanisms/<name>/mechanism.py                 accepted mechanisms, one S3 version per put
    attempts/<name>/mechanism.py                   rejected attempts (the data for improving Level 2)
    documents/<name>/<version_id>/<kind>.json      larger JSON about one version (validation report, transcript)
    aliases/<version_id>.json                      an imported version's VersionId on the machine it came from
    runs/<meta_run_id>/<file>.json                 a meta-run's spec, settings, trace, summary, mechanisms
    ablations/<ablation_id>/manifest.json          an ablation's manifest (its arms and repeats, merged over shards)

Documents sit under their own prefix so that listing mechanism names stays one cheap delimiter query,
and a document is addressed by (name, version_id) whatever the version's status.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import ipaddress
import json
import logging
import re
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from search.safe_json import loads_bounded

if TYPE_CHECKING:
    from infra.services import S3Endpoint

log = logging.getLogger(__name__)

Status = Literal["accepted", "rejected"]
STATUS_PREFIXES: dict[str, str] = {"accepted": "mechanisms", "rejected": "attempts"}
DOCUMENTS_PREFIX = "documents"
SOURCE_FILENAME = "mechanism.py"

NAME_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
KIND_PATTERN = re.compile(r"[a-z0-9_-]{1,64}")
META_RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# S3 VersionIds are opaque, URL-ready strings of at most 1024 bytes; we also forbid "/" and "," because
# they become a path segment (documents) and a list separator (parents).
VERSION_ID_PATTERN = re.compile(r"[A-Za-z0-9._+=-]{1,1024}")
BUCKET_PATTERN = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")

MAX_SOURCE_BYTES = 256 * 1024
MAX_DOCUMENT_BYTES = 8 * 1024 * 1024
MAX_DOCUMENT_DEPTH = 64
MAX_METADATA_BYTES = 2048  # S3's limit on user-defined metadata (keys + values)
MAX_PARENTS = 16
MAX_RECORD_BYTES = 64 * 1024 * 1024  # a trace of thousands of experiments with their log tails
RECORD_KINDS = ("runs", "ablations")
RECORD_FILES: dict[str, tuple[str, ...]] = {
    "runs": ("spec.json", "settings.json", "trace.json", "summary.json", "mechanisms.json"),
    "ablations": ("manifest.json",),
}
RECORD_ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,79}")  # infra.runs.RUN_ID_PATTERN: ids are folder names
ALIASES_PREFIX = "aliases"
MAX_MODEL_CHARS = 200

_NOT_FOUND_CODES = {"404", "NoSuchKey", "NoSuchVersion", "NotFound"}
_DENIED_CODES = {"403", "AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"}


class StoreError(RuntimeError):
    """A mechanism-store operation failed; the message names the endpoint and what to check."""


class StoreUnavailable(StoreError):
    """The S3 endpoint did not answer, even after retries."""


class StoreAccessDenied(StoreError):
    """The S3 endpoint refused our credentials."""


class MechanismNotFound(StoreError, LookupError):
    """No such mechanism name, version or document."""


class CorruptObject(StoreError):
    """An object's bytes do not match the sha256 recorded when it was stored, or its metadata is unreadable."""


def _check(pattern: re.Pattern[str], value: object, what: str) -> str:
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise ValueError(f"invalid {what} {value!r}: must match {pattern.pattern}")
    return value


def check_name(name: object) -> str:
    return _check(NAME_PATTERN, name, "mechanism name")


def check_version_id(version_id: object) -> str:
    return _check(VERSION_ID_PATTERN, version_id, "VersionId")


class VersionMeta(BaseModel):
    """What the caller says about a version when storing it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    meta_run_id: str = Field(pattern=META_RUN_ID_PATTERN.pattern)
    generation: int = Field(ge=0, le=1_000_000)
    parents: tuple[str, ...] = Field(default=(), max_length=MAX_PARENTS)
    status: Status = "accepted"
    model: str = Field("", max_length=MAX_MODEL_CHARS)

    @field_validator("parents")
    @classmethod
    def _check_parents(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for parent in value:
            check_version_id(parent)
        return value

    @field_validator("model")
    @classmethod
    def _check_model(cls, value: str) -> str:
        # Metadata travels as HTTP headers: printable ASCII only.
        if not all(32 <= ord(ch) < 127 for ch in value):
            raise ValueError(f"model name must be printable ASCII, got {value!r}")
        return value


class StoredVersion(BaseModel):
    """One stored version of a mechanism, as read back from S3."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: str
    version_id: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    meta_run_id: str
    generation: int = Field(ge=0)
    parents: list[str]
    status: Status
    model: str
    created_at: datetime
    size: int


class StoredDocument(BaseModel):
    """A JSON document attached to one mechanism version."""

    model_config = ConfigDict(frozen=True)

    name: str
    version_id: str  # the mechanism version it belongs to
    kind: str
    key: str
    document_version_id: str
    sha256: str
    size: int


# -- pure helpers -------------------------------------------------------------------------------


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def mechanism_key(name: str, status: Status) -> str:
    if status not in STATUS_PREFIXES:
        raise ValueError(f"invalid status {status!r}: must be one of {sorted(STATUS_PREFIXES)}")
    return f"{STATUS_PREFIXES[status]}/{check_name(name)}/{SOURCE_FILENAME}"


def document_key(name: str, version_id: str, kind: str) -> str:
    kind = _check(KIND_PATTERN, kind, "document kind")
    return f"{DOCUMENTS_PREFIX}/{check_name(name)}/{check_version_id(version_id)}/{kind}.json"


def record_key(kind: str, record_id: str, filename: str) -> str:
    """Key of one file of a meta-run (`runs`) or an ablation (`ablations`) in the bucket."""
    if kind not in RECORD_FILES:
        raise ValueError(f"invalid record kind {kind!r}: must be one of {RECORD_KINDS}")
    if filename not in RECORD_FILES[kind]:
        raise ValueError(f"invalid {kind} file {filename!r}: must be one of {RECORD_FILES[kind]}")
    return f"{kind}/{_check(RECORD_ID_PATTERN, record_id, 'run or ablation id')}/{filename}"


def alias_key(version_id: str) -> str:
    return f"{ALIASES_PREFIX}/{check_version_id(version_id)}.json"


def encode_metadata(sha256: str, meta: VersionMeta, created_at: datetime) -> dict[str, str]:
    """User metadata of a version; refuses anything over S3's 2 KB limit instead of letting the server truncate."""
    metadata = {
        "sha256": sha256,
        "meta-run-id": meta.meta_run_id,
        "generation": str(meta.generation),
        "parents": ",".join(meta.parents),
        "status": meta.status,
        "model": meta.model,
        "created-at": created_at.astimezone(UTC).isoformat(),
    }
    size = sum(len(k) + len(v) for k, v in metadata.items())
    if size > MAX_METADATA_BYTES:
        raise ValueError(
            f"version metadata is {size} bytes, over S3's {MAX_METADATA_BYTES}: fewer parents or a shorter model name"
        )
    return metadata


def decode_metadata(name: str, key: str, version_id: str, metadata: Mapping[str, str], size: int) -> StoredVersion:
    """A StoredVersion from S3 user metadata; an object we did not write (or a mangled one) is CorruptObject."""
    meta = {k.lower(): v for k, v in metadata.items()}
    try:
        parents = [p for p in meta.get("parents", "").split(",") if p]
        return StoredVersion(
            name=name,
            key=key,
            version_id=version_id,
            sha256=meta["sha256"],
            meta_run_id=meta["meta-run-id"],
            generation=int(meta["generation"]),
            parents=parents,
            status=meta["status"],
            model=meta.get("model", ""),
            created_at=datetime.fromisoformat(meta["created-at"]),
            size=size,
        )
    except (KeyError, ValueError, ValidationError) as exc:
        raise CorruptObject(
            f"{key} version {version_id} has no valid bilevel metadata ({exc!s:.200}); it was not written by this store"
        ) from exc


def content_md5(data: bytes) -> str:
    """Content-MD5 header value: the server rejects the upload if the bytes arrived damaged."""
    return base64.b64encode(hashlib.md5(data, usedforsecurity=False).digest()).decode()


def _is_loopback(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def build_s3_client(
    endpoint: S3Endpoint,
    *,
    connect_timeout_s: float = 3.0,
    read_timeout_s: float = 20.0,
    max_attempts: int = 4,
) -> Any:
    """A boto3 S3 client for any S3-compatible endpoint: path-style, bounded timeouts, standard retries."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=connect_timeout_s,
        read_timeout=read_timeout_s,
        retries={"mode": "standard", "total_max_attempts": max_attempts},  # attempts, first one included
        s3={"addressing_style": "path"},
        # Only the checksums S3 itself requires: third-party S3 servers differ in support for the newer
        # ones; integrity is covered by Content-MD5 on write and our own sha256 on read.
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        # A local server is never behind a proxy; an HTTP_PROXY in the environment would swallow it.
        proxies={} if _is_loopback(endpoint.url) else None,
    )
    return boto3.client(
        "s3",
        endpoint_url=endpoint.url,
        aws_access_key_id=endpoint.access_key,
        aws_secret_access_key=endpoint.secret_key,
        region_name=endpoint.region,
        config=config,
    )


# -- the store ------------------------------------------------------------------------------------


class MechanismStore:
    """Mechanism versions in one versioned bucket. The boto3 client is injected (or built from an S3Endpoint)."""

    def __init__(self, client: Any, bucket: str, *, page_size: int = 1000) -> None:
        self.client = client
        self.bucket = _check(BUCKET_PATTERN, bucket, "bucket name")
        self.page_size = page_size
        self.endpoint_url: str = getattr(getattr(client, "meta", None), "endpoint_url", "?")
        self._versioning_checked = False

    @classmethod
    def from_endpoint(cls, endpoint: S3Endpoint, bucket: str, **client_options: Any) -> MechanismStore:
        return cls(build_s3_client(endpoint, **client_options), bucket)

    def __repr__(self) -> str:
        return f"MechanismStore(endpoint={self.endpoint_url!r}, bucket={self.bucket!r})"

    # -- error translation --------------------------------------------------------------------

    @contextlib.contextmanager
    def _s3(self, operation: str) -> Iterator[None]:
        """Turn botocore errors into StoreErrors that say which endpoint and what to check (never a credential)."""
        from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

        where = f"S3 endpoint {self.endpoint_url} (bucket {self.bucket!r})"
        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "?"))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            message = str(error.get("Message", ""))[:300]
            if code in _DENIED_CODES:
                raise StoreAccessDenied(
                    f"{where} refused {operation}: {code} {message}. "
                    "Check BILEVEL_S3_ACCESS_KEY and BILEVEL_S3_SECRET_KEY (and the bucket policy)."
                ) from exc
            if code == "NoSuchBucket":
                raise StoreError(f"{where}: the bucket does not exist ({operation}); call ensure_bucket() first") from exc
            if status >= 500:
                raise StoreUnavailable(
                    f"{where} failed {operation} with HTTP {status} after retries: {code} {message}"
                ) from exc
            raise StoreError(f"{where} failed {operation}: {code} {message}") from exc
        except (ConnectionError, HTTPClientError) as exc:
            raise StoreUnavailable(
                f"{where} unreachable during {operation} after retries ({exc}). Check that the server runs "
                "(`bilevel doctor`) or that BILEVEL_S3_ENDPOINT_URL points to a reachable S3 service."
            ) from exc
        except BotoCoreError as exc:
            raise StoreError(f"{where} failed {operation}: {exc}") from exc

    @staticmethod
    def _is_not_found(exc: BaseException) -> bool:
        cause = exc.__cause__
        response = getattr(cause, "response", None)
        return isinstance(response, dict) and str(response.get("Error", {}).get("Code")) in _NOT_FOUND_CODES

    # -- bucket -----------------------------------------------------------------------------

    def ensure_bucket(self) -> None:
        """Create the bucket if missing and enable versioning; raise if the endpoint cannot version."""
        from botocore.exceptions import ClientError

        with self._s3("CreateBucket"):
            try:
                region = self.client.meta.region_name
                # us-east-1 is the one region that refuses an explicit LocationConstraint.
                location = {} if region in (None, "us-east-1") else {"LocationConstraint": region}
                extra = {"CreateBucketConfiguration": location} if location else {}
                self.client.create_bucket(Bucket=self.bucket, **extra)
                log.info("created bucket %s on %s", self.bucket, self.endpoint_url)
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        with self._s3("PutBucketVersioning"):
            self.client.put_bucket_versioning(Bucket=self.bucket, VersioningConfiguration={"Status": "Enabled"})
        self._versioning_checked = False
        self._require_versioning()

    def _require_versioning(self) -> None:
        """Refuse to write into an unversioned bucket: a put there would overwrite history."""
        if self._versioning_checked:
            return
        with self._s3("GetBucketVersioning"):
            status = self.client.get_bucket_versioning(Bucket=self.bucket).get("Status")
        if status != "Enabled":
            raise StoreError(
                f"bucket {self.bucket!r} on {self.endpoint_url} has versioning {status or 'never enabled'}, "
                "not Enabled: call ensure_bucket(), or use an S3 service that supports versioning"
            )
        self._versioning_checked = True

    # -- mechanism versions -------------------------------------------------------------------

    def put(self, name: str, source: str, meta: VersionMeta | Mapping[str, Any]) -> StoredVersion:
        """Store a new version (a new VersionId), unless the latest one already holds this source for this run and generation."""
        meta = meta if isinstance(meta, VersionMeta) else VersionMeta.model_validate(meta)
        key = mechanism_key(name, meta.status)
        if not isinstance(source, str) or not source.strip():
            raise ValueError(f"mechanism {name!r}: source must be a non-empty string")
        body = source.encode("utf-8")
        if len(body) > MAX_SOURCE_BYTES:
            raise ValueError(f"mechanism {name!r}: source is {len(body)} bytes, over the {MAX_SOURCE_BYTES}-byte limit")
        digest = sha256_hex(body)

        try:
            latest = self._head_or_none(name, key, version_id=None)
        except CorruptObject as exc:
            log.warning("latest version of %s is unreadable, writing a new one over it: %s", key, exc)
            latest = None
        if latest and (latest.sha256, latest.meta_run_id, latest.generation) == (digest, meta.meta_run_id, meta.generation):
            log.info("%s already holds this source for %s g%d: %s", key, meta.meta_run_id, meta.generation, latest.version_id)
            return latest

        created_at = datetime.now(UTC)
        metadata = encode_metadata(digest, meta, created_at)
        version_id = self._put_versioned(key, body, "text/x-python; charset=utf-8", metadata)
        log.info("stored %s version %s (sha256 %s…)", key, version_id, digest[:12])
        return decode_metadata(name, key, version_id, metadata, len(body))

    def _put_versioned(self, key: str, body: bytes, content_type: str, metadata: dict[str, str]) -> str:
        """PutObject into the versioned bucket (integrity-checked by Content-MD5); the new VersionId."""
        self._require_versioning()
        with self._s3(f"PutObject {key}"):
            response = self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ContentMD5=content_md5(body),
                                              ContentType=content_type, Metadata=metadata)
        version_id = response.get("VersionId")
        if not version_id or version_id == "null":
            raise StoreError(
                f"{self.endpoint_url} stored {key} without a VersionId: versioning is not in effect on {self.bucket!r}"
            )
        return version_id

    def head(self, name: str, version_id: str | None = None, status: Status = "accepted") -> StoredVersion:
        """Metadata of one version (the latest if none given), without the source."""
        key = mechanism_key(name, status)
        stored = self._head_or_none(name, key, version_id)
        if stored is None:
            raise MechanismNotFound(self._not_found_message(name, status, version_id))
        return stored

    def get(self, name: str, version_id: str | None = None, status: Status = "accepted") -> tuple[str, StoredVersion]:
        """Source and metadata of one version (the latest if none given), checked against its sha256."""
        key = mechanism_key(name, status)
        kwargs = {"VersionId": check_version_id(version_id)} if version_id is not None else {}
        try:
            with self._s3(f"GetObject {key}"):
                response = self.client.get_object(Bucket=self.bucket, Key=key, **kwargs)
                body = response["Body"].read(MAX_SOURCE_BYTES + 1)
        except StoreError as exc:
            if self._is_not_found(exc):
                raise MechanismNotFound(self._not_found_message(name, status, version_id)) from exc
            raise
        actual_version = response.get("VersionId") or version_id or "?"
        stored = decode_metadata(name, key, actual_version, response.get("Metadata", {}), len(body))
        if len(body) > MAX_SOURCE_BYTES or sha256_hex(body) != stored.sha256:
            raise CorruptObject(
                f"{key} version {stored.version_id} on {self.endpoint_url}: content sha256 {sha256_hex(body)[:16]}… "
                f"does not match the recorded {stored.sha256[:16]}…; the object is damaged, refusing to use it"
            )
        try:
            source = body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise CorruptObject(f"{key} version {stored.version_id} is not UTF-8 text") from exc
        return source, stored

    def history(self, name: str, status: Status = "accepted", limit: int | None = None) -> list[StoredVersion]:
        """Versions of one mechanism, newest first (S3 lists versions of a key newest first)."""
        key = mechanism_key(name, status)
        version_ids = [v["VersionId"] for v in self._list_versions(key) if v["Key"] == key]
        if limit is not None:
            version_ids = version_ids[: max(0, limit)]
        # Listings carry no user metadata: one HEAD per version.
        return [self.head(name, vid, status) for vid in version_ids]

    def names(self, status: Status = "accepted") -> list[str]:
        """Names that have at least one current version with this status, sorted."""
        prefix = f"{STATUS_PREFIXES[status]}/"
        found: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        with self._s3(f"ListObjectsV2 {prefix}"):
            pages = paginator.paginate(
                Bucket=self.bucket, Prefix=prefix, Delimiter="/", PaginationConfig={"PageSize": self.page_size}
            )
            for page in pages:
                for common in page.get("CommonPrefixes", []):
                    candidate = common["Prefix"][len(prefix) :].rstrip("/")
                    if NAME_PATTERN.fullmatch(candidate):
                        found.add(candidate)
        return sorted(found)

    def find(self, version_id: str) -> StoredVersion | None:
        """The version with this VersionId, whatever its name or status (scans every version), or None."""
        check_version_id(version_id)
        for status, prefix in STATUS_PREFIXES.items():
            for version in self._list_versions(f"{prefix}/"):
                key = version["Key"]
                parts = key.split("/")
                if version["VersionId"] == version_id and len(parts) == 3 and parts[2] == SOURCE_FILENAME:
                    return self.head(parts[1], version_id, status)  # type: ignore[arg-type]
        return None

    # -- documents -------------------------------------------------------------------------------

    def put_document(self, name: str, version_id: str, kind: str, data: Any) -> StoredDocument:
        """Attach a JSON document to an existing mechanism version (idempotent: same content, no new version)."""
        key = document_key(name, version_id, kind)
        self._owning_status(name, version_id)  # the version must exist: no orphan documents
        try:
            body = json.dumps(data, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=1).encode("utf-8")
        except (TypeError, ValueError) as exc:
            raise ValueError(f"document {kind!r} of {name!r} is not JSON-serialisable: {exc}") from exc
        if len(body) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"document {kind!r} of {name!r} is {len(body)} bytes, over the {MAX_DOCUMENT_BYTES}-byte limit")
        digest = sha256_hex(body)
        existing = self._head_document_or_none(key)
        stored = {"name": name, "version_id": version_id, "kind": kind, "key": key, "sha256": digest, "size": len(body)}
        if existing is not None and existing[1].get("sha256") == digest:
            return StoredDocument(document_version_id=existing[0], **stored)
        metadata = {"sha256": digest, "mechanism-version-id": version_id, "kind": kind}
        document_version_id = self._put_versioned(key, body, "application/json", metadata)
        return StoredDocument(document_version_id=document_version_id, **stored)

    def get_document(self, name: str, version_id: str, kind: str) -> Any:
        """The latest JSON document of this kind for a mechanism version, checked against its sha256."""
        key = document_key(name, version_id, kind)
        try:
            with self._s3(f"GetObject {key}"):
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"].read(MAX_DOCUMENT_BYTES + 1)
        except StoreError as exc:
            if self._is_not_found(exc):
                raise MechanismNotFound(
                    f"no {kind!r} document for {name!r} version {version_id} in bucket {self.bucket!r}"
                ) from exc
            raise
        recorded = {k.lower(): v for k, v in response.get("Metadata", {}).items()}.get("sha256")
        if recorded != sha256_hex(body):
            raise CorruptObject(f"{key} on {self.endpoint_url}: content does not match its recorded sha256; refusing to use it")
        try:  # read back like any untrusted answer: whoever can write the bucket can write this
            return loads_bounded(body, MAX_DOCUMENT_BYTES, MAX_DOCUMENT_DEPTH)
        except ValueError as exc:
            raise CorruptObject(f"{key} on {self.endpoint_url}: {exc}") from None

    # -- meta-runs and ablations (the trace is the unit of portability) -----------------------------

    def put_record(self, kind: str, record_id: str, filename: str, body: bytes) -> str | None:
        """Store one file of a meta-run or ablation as a new version; None when the latest version already holds
        these bytes (nothing written). Returns the new VersionId."""
        key = record_key(kind, record_id, filename)
        if len(body) > MAX_RECORD_BYTES:
            raise ValueError(f"{key} is {len(body)} bytes, over the {MAX_RECORD_BYTES}-byte limit")
        digest = sha256_hex(body)
        existing = self._head_document_or_none(key)
        if existing is not None and existing[1].get("sha256") == digest:
            return None
        return self._put_versioned(key, body, "application/json", {"sha256": digest})

    def get_record(self, kind: str, record_id: str, filename: str) -> bytes | None:
        """The latest bytes of one file of a meta-run or ablation, checked against their sha256; None if absent."""
        key = record_key(kind, record_id, filename)
        try:
            with self._s3(f"GetObject {key}"):
                response = self.client.get_object(Bucket=self.bucket, Key=key)
                body = response["Body"].read(MAX_RECORD_BYTES + 1)
        except StoreError as exc:
            if self._is_not_found(exc):
                return None
            raise
        recorded = {k.lower(): v for k, v in response.get("Metadata", {}).items()}.get("sha256")
        if len(body) > MAX_RECORD_BYTES or recorded != sha256_hex(body):
            raise CorruptObject(f"{key} on {self.endpoint_url}: content does not match its recorded sha256 (or is "
                                f"over {MAX_RECORD_BYTES} bytes); refusing to use it")
        return body

    def record_ids(self, kind: str) -> list[str]:
        """Ids of the meta-runs (`runs`) or ablations (`ablations`) that have files in the store, sorted."""
        if kind not in RECORD_FILES:
            raise ValueError(f"invalid record kind {kind!r}: must be one of {RECORD_KINDS}")
        prefix = f"{kind}/"
        found: set[str] = set()
        paginator = self.client.get_paginator("list_objects_v2")
        with self._s3(f"ListObjectsV2 {prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, Delimiter="/",
                                           PaginationConfig={"PageSize": self.page_size}):
                for common in page.get("CommonPrefixes", []):
                    candidate = common["Prefix"][len(prefix):].rstrip("/")
                    if RECORD_ID_PATTERN.fullmatch(candidate):
                        found.add(candidate)
        return sorted(found)

    # -- imported versions ------------------------------------------------------------------------

    def import_version(self, name: str, source: str, meta: VersionMeta, origin_version_id: str) -> StoredVersion:
        """A mechanism version that another store called `origin_version_id`, made present here: the same
        version if this store already holds it (a shared S3), the one an earlier import made (its alias), or a
        new version with an alias from the old id. Its source must match what the other store recorded."""
        key = mechanism_key(name, meta.status)
        digest = sha256_hex(source.encode("utf-8"))
        here = self._head_or_none(name, key, origin_version_id)
        if here is not None and here.sha256 == digest:
            return here
        aliased = self.resolve_alias(origin_version_id)
        if aliased is not None and aliased.name == name and aliased.sha256 == digest:
            return aliased
        stored = self.put(name, source, meta)
        alias = {"name": name, "status": meta.status, "version_id": stored.version_id, "sha256": digest}
        body = json.dumps(alias, sort_keys=True).encode()
        self._put_versioned(alias_key(origin_version_id), body, "application/json", {"sha256": sha256_hex(body)})
        return stored

    def resolve_alias(self, origin_version_id: str) -> StoredVersion | None:
        """The version an import made from `origin_version_id` (another store's VersionId), or None."""
        key = alias_key(origin_version_id)
        try:
            with self._s3(f"GetObject {key}"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"].read(4096)
        except StoreError as exc:
            if self._is_not_found(exc):
                return None
            raise
        try:
            alias = json.loads(body)
            name, status, version_id = check_name(alias["name"]), alias["status"], check_version_id(alias["version_id"])
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptObject(f"{key} on {self.endpoint_url} is not an alias this store wrote ({exc!s:.100})") from exc
        if status not in STATUS_PREFIXES:
            raise CorruptObject(f"{key} on {self.endpoint_url} names an unknown status {status!r}")
        return self._head_or_none(name, mechanism_key(name, status), version_id)

    # -- internals ------------------------------------------------------------------------------

    def _list_versions(self, prefix: str) -> Iterator[dict[str, Any]]:
        paginator = self.client.get_paginator("list_object_versions")
        with self._s3(f"ListObjectVersions {prefix}"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix, PaginationConfig={"PageSize": self.page_size}):
                yield from page.get("Versions", [])

    def _head_or_none(self, name: str, key: str, version_id: str | None) -> StoredVersion | None:
        kwargs = {"VersionId": check_version_id(version_id)} if version_id is not None else {}
        try:
            with self._s3(f"HeadObject {key}"):
                response = self.client.head_object(Bucket=self.bucket, Key=key, **kwargs)
        except StoreError as exc:
            if self._is_not_found(exc):
                return None
            raise
        return decode_metadata(
            name,
            key,
            response.get("VersionId") or version_id or "?",
            response.get("Metadata", {}),
            int(response.get("ContentLength", 0)),
        )

    def _head_document_or_none(self, key: str) -> tuple[str, dict[str, str]] | None:
        try:
            with self._s3(f"HeadObject {key}"):
                response = self.client.head_object(Bucket=self.bucket, Key=key)
        except StoreError as exc:
            if self._is_not_found(exc):
                return None
            raise
        return response.get("VersionId") or "null", {k.lower(): v for k, v in response.get("Metadata", {}).items()}

    def _owning_status(self, name: str, version_id: str) -> Status:
        for status in STATUS_PREFIXES:
            if self._head_or_none(name, mechanism_key(name, status), version_id) is not None:  # type: ignore[arg-type]
                return status  # type: ignore[return-value]
        raise MechanismNotFound(
            f"no version {version_id} of mechanism {name!r} in bucket {self.bucket!r} (accepted or rejected)"
        )

    def _not_found_message(self, name: str, status: Status, version_id: str | None) -> str:
        which = f"version {version_id} of " if version_id else ""
        return f"no {which}{status} mechanism {name!r} in bucket {self.bucket!r} on {self.endpoint_url}"
