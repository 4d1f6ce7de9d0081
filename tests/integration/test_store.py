"""The versioned mechanism store against a real S3 (SeaweedFS): versions, lineage metadata, integrity, failures."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from infra.services import S3Endpoint, find_free_s3_port
from infra.store import (
    MAX_METADATA_BYTES,
    CorruptObject,
    MechanismNotFound,
    MechanismStore,
    StoreAccessDenied,
    StoreError,
    StoreUnavailable,
    VersionMeta,
    decode_metadata,
    document_key,
    encode_metadata,
    mechanism_key,
    sha256_hex,
)
from tests.fixtures_s3 import S3TestServer, mechanism_store, s3_bucket, s3_server  # noqa: F401  (fixtures)

SOURCE_V1 = "class Tabu:\n    name = 'tabu'\n"
SOURCE_V2 = "class Tabu:\n    name = 'tabu'\n\n    def plan(self, ctx):\n        return None\n"


def _meta(generation: int = 0, **overrides: object) -> VersionMeta:
    return VersionMeta.model_validate({"meta_run_id": "run-1", "generation": generation, "model": "local/qwen", **overrides})


# -- pure parts ------------------------------------------------------------------------------------


def test_keys_separate_accepted_rejected_and_documents() -> None:
    assert mechanism_key("tabu", "accepted") == "mechanisms/tabu/mechanism.py"
    assert mechanism_key("tabu", "rejected") == "attempts/tabu/mechanism.py"
    assert document_key("tabu", "abc123", "validation") == "documents/tabu/abc123/validation.json"


@pytest.mark.parametrize("name", ["", "Tabu", "a/b", "../x", "x" * 65, "tabu.py", "ta bu"])
def test_names_outside_the_pattern_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match="mechanism name"):
        mechanism_key(name, "accepted")


def test_version_ids_that_would_break_keys_or_lists_are_refused() -> None:
    for bad in ("a/b", "a,b", ""):
        with pytest.raises(ValueError):
            VersionMeta(meta_run_id="r", generation=0, parents=(bad,))


def test_metadata_round_trip_and_size_limit() -> None:
    created = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    meta = _meta(3, parents=("v1", "v2"), status="rejected")
    encoded = encode_metadata("ab" * 32, meta, created)
    stored = decode_metadata("tabu", "attempts/tabu/mechanism.py", "v3", {k.title(): v for k, v in encoded.items()}, 10)
    assert (stored.parents, stored.generation, stored.status, stored.created_at) == (["v1", "v2"], 3, "rejected", created)
    too_many = _meta(parents=tuple("p" * 200 for _ in range(12)))
    with pytest.raises(ValueError, match=str(MAX_METADATA_BYTES)):
        encode_metadata("ab" * 32, too_many, created)


def test_foreign_metadata_is_corrupt() -> None:
    with pytest.raises(CorruptObject, match="not written by this store"):
        decode_metadata("tabu", "k", "v", {"sha256": "zz"}, 1)


def test_non_ascii_model_is_refused() -> None:
    with pytest.raises(ValueError, match="ASCII"):
        _meta(model="modèle")


# -- against the real server ---------------------------------------------------------------------------

@pytest.mark.integration
def test_ensure_bucket_enables_versioning_and_is_idempotent(mechanism_store: MechanismStore) -> None:  # noqa: F811
    assert mechanism_store.client.get_bucket_versioning(Bucket=mechanism_store.bucket)["Status"] == "Enabled"
    mechanism_store.ensure_bucket()  # second call: no error


@pytest.mark.integration
def test_two_puts_are_two_versions_each_readable(mechanism_store: MechanismStore) -> None:  # noqa: F811
    first = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    second = mechanism_store.put("tabu", SOURCE_V2, _meta(1, parents=(first.version_id,)))
    assert first.version_id != second.version_id
    assert mechanism_store.get("tabu", first.version_id) == (SOURCE_V1, first)
    source, latest = mechanism_store.get("tabu")
    assert (source, latest.version_id, latest.parents) == (SOURCE_V2, second.version_id, [first.version_id])


@pytest.mark.integration
def test_history_is_newest_first_with_metadata(s3_server: S3TestServer, s3_bucket: str) -> None:  # noqa: F811
    store = MechanismStore.from_endpoint(s3_server.endpoint, s3_bucket)
    store.page_size = 2  # force several pages
    store.ensure_bucket()
    stored = [store.put("bandit", f"class B{i}:\n    pass\n", _meta(i)) for i in range(5)]
    history = store.history("bandit")
    assert [v.version_id for v in history] == [v.version_id for v in reversed(stored)]
    assert [v.generation for v in history] == [4, 3, 2, 1, 0]
    newest = history[0]
    newest_body = b"class B4:\n    pass\n"
    assert (newest.sha256, newest.size) == (sha256_hex(newest_body), len(newest_body))
    assert (newest.meta_run_id, newest.model, newest.status, newest.parents) == ("run-1", "local/qwen", "accepted", [])
    assert store.history("bandit", limit=2) == history[:2]


@pytest.mark.integration
def test_put_is_idempotent_for_resume(mechanism_store: MechanismStore) -> None:  # noqa: F811
    first = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    again = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    assert again.version_id == first.version_id
    assert len(mechanism_store.history("tabu")) == 1
    # Same source in another generation (or run) is a new version: it is new lineage.
    later = mechanism_store.put("tabu", SOURCE_V1, _meta(1))
    assert later.version_id != first.version_id
    assert len(mechanism_store.history("tabu")) == 2


@pytest.mark.integration
def test_rejected_attempts_are_kept_apart(mechanism_store: MechanismStore) -> None:  # noqa: F811
    accepted = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    attempt = mechanism_store.put("anneal", "class Anneal:\n    broken(\n", _meta(0, status="rejected"))
    assert attempt.key == "attempts/anneal/mechanism.py"
    assert mechanism_store.names() == ["tabu"]
    assert mechanism_store.names("rejected") == ["anneal"]
    with pytest.raises(MechanismNotFound, match="accepted mechanism 'anneal'"):
        mechanism_store.get("anneal")
    assert mechanism_store.get("anneal", status="rejected")[1] == attempt
    assert mechanism_store.find(attempt.version_id) == attempt
    assert mechanism_store.find(accepted.version_id) == accepted
    assert mechanism_store.find("0123456789abcdef") is None


@pytest.mark.integration
def test_missing_versions_are_not_found(mechanism_store: MechanismStore) -> None:  # noqa: F811
    with pytest.raises(MechanismNotFound):
        mechanism_store.get("nothing")
    mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    with pytest.raises(MechanismNotFound, match="version 0123456789abcdef"):
        mechanism_store.get("tabu", "0123456789abcdef")


@pytest.mark.integration
def test_documents_attach_to_an_existing_version(mechanism_store: MechanismStore) -> None:  # noqa: F811
    version = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    report = {"passed": True, "stages": ["ast", "sandbox", "replay"], "notes": "ünïcode ok"}
    doc = mechanism_store.put_document("tabu", version.version_id, "validation", report)
    assert doc.key == f"documents/tabu/{version.version_id}/validation.json"
    assert mechanism_store.get_document("tabu", version.version_id, "validation") == report
    assert mechanism_store.put_document("tabu", version.version_id, "validation", report).document_version_id == doc.document_version_id
    with pytest.raises(MechanismNotFound, match="no version 0123456789abcdef"):
        mechanism_store.put_document("tabu", "0123456789abcdef", "validation", report)
    with pytest.raises(ValueError, match="JSON"):
        mechanism_store.put_document("tabu", version.version_id, "transcript", {"x": float("nan")})
    with pytest.raises(MechanismNotFound):
        mechanism_store.get_document("tabu", version.version_id, "transcript")


@pytest.mark.integration
def test_a_damaged_object_is_an_error_not_used(mechanism_store: MechanismStore) -> None:  # noqa: F811
    good = mechanism_store.put("tabu", SOURCE_V1, _meta(0))
    # Someone (or a bad disk) writes other bytes under our key with our old metadata.
    mechanism_store.client.put_object(
        Bucket=mechanism_store.bucket, Key=good.key, Body=b"import os\n",
        Metadata=encode_metadata(good.sha256, _meta(0), good.created_at),
    )
    with pytest.raises(CorruptObject, match="does not match"):
        mechanism_store.get("tabu")
    assert mechanism_store.get("tabu", good.version_id)[0] == SOURCE_V1  # history is intact
    # An object without our metadata at all:
    mechanism_store.client.put_object(Bucket=mechanism_store.bucket, Key=good.key, Body=b"x")
    with pytest.raises(CorruptObject, match="not written by this store"):
        mechanism_store.get("tabu")


@pytest.mark.integration
def test_an_unversioned_bucket_is_refused(s3_server: S3TestServer, s3_bucket: str) -> None:  # noqa: F811
    store = MechanismStore.from_endpoint(s3_server.endpoint, s3_bucket)
    store.client.create_bucket(Bucket=s3_bucket)  # no versioning
    with pytest.raises(StoreError, match="versioning"):
        store.put("tabu", SOURCE_V1, _meta(0))
    assert store.client.list_objects_v2(Bucket=s3_bucket).get("KeyCount", 0) == 0  # nothing written


@pytest.mark.integration
def test_wrong_credentials_are_refused(s3_server: S3TestServer, s3_bucket: str) -> None:  # noqa: F811
    good = s3_server.endpoint
    wrong = S3Endpoint(good.url, good.access_key, "not-the-secret", good.region)
    store = MechanismStore.from_endpoint(wrong, s3_bucket, max_attempts=1)
    with pytest.raises(StoreAccessDenied, match="BILEVEL_S3_SECRET_KEY") as refused:
        store.ensure_bucket()
    assert "not-the-secret" not in str(refused.value) and good.secret_key not in str(refused.value)


@pytest.mark.integration
def test_unreachable_endpoint_is_retried_then_unavailable() -> None:
    url = f"http://127.0.0.1:{find_free_s3_port()}"  # nothing listens there
    store = MechanismStore.from_endpoint(S3Endpoint(url, "k", "s", "us-east-1"), "bilevel-test", connect_timeout_s=0.2, max_attempts=2)
    attempts: list[str] = []
    store.client.meta.events.register("before-send.s3", lambda **kwargs: attempts.append(kwargs["request"].url))
    with pytest.raises(StoreUnavailable, match=rf"{url}.*bilevel doctor"):
        store.get("tabu")
    assert len(attempts) == 2  # the first try and one retry


# -- meta-runs and imported versions ------------------------------------------------------------------------


@pytest.mark.integration
def test_run_records_are_versioned_checked_and_listed(mechanism_store: MechanismStore) -> None:  # noqa: F811
    first = mechanism_store.put_record("runs", "run-1", "trace.json", b'{"experiments": []}')
    assert first is not None
    assert mechanism_store.put_record("runs", "run-1", "trace.json", b'{"experiments": []}') is None  # unchanged
    second = mechanism_store.put_record("runs", "run-1", "trace.json", b'{"experiments": [1]}')
    assert second not in (None, first)
    assert mechanism_store.get_record("runs", "run-1", "trace.json") == b'{"experiments": [1]}'
    assert mechanism_store.get_record("runs", "run-1", "summary.json") is None
    mechanism_store.put_record("ablations", "abl", "manifest.json", b"{}")
    assert mechanism_store.record_ids("runs") == ["run-1"] and mechanism_store.record_ids("ablations") == ["abl"]
    for bad in (("runs", "../x", "trace.json"), ("runs", "run-1", "trace.pkl"), ("secrets", "run-1", "trace.json")):
        with pytest.raises(ValueError):
            mechanism_store.put_record(*bad, b"{}")


@pytest.mark.integration
def test_a_damaged_run_record_is_refused(mechanism_store: MechanismStore) -> None:  # noqa: F811
    mechanism_store.put_record("runs", "run-1", "spec.json", b"{}")
    mechanism_store.client.put_object(Bucket=mechanism_store.bucket, Key="runs/run-1/spec.json", Body=b'{"x": 1}',
                                      Metadata={"sha256": sha256_hex(b"{}")})
    with pytest.raises(CorruptObject, match="does not match"):
        mechanism_store.get_record("runs", "run-1", "spec.json")


@pytest.mark.integration
def test_imported_versions_keep_their_identity_through_an_alias(s3_server: S3TestServer) -> None:  # noqa: F811
    origin = MechanismStore.from_endpoint(s3_server.endpoint, "import-origin", max_attempts=2)
    target = MechanismStore.from_endpoint(s3_server.endpoint, "import-target", max_attempts=2)
    origin.ensure_bucket()
    target.ensure_bucket()
    stored = origin.put("tabu", SOURCE_V1, _meta(2))
    assert origin.import_version("tabu", SOURCE_V1, _meta(2), stored.version_id) == stored  # same store: as it is
    moved = target.import_version("tabu", SOURCE_V1, _meta(2), stored.version_id)
    assert moved.version_id != stored.version_id and (moved.sha256, moved.generation) == (stored.sha256, 2)
    assert target.resolve_alias(stored.version_id) == moved
    assert target.import_version("tabu", SOURCE_V1, _meta(2), stored.version_id) == moved  # a second import: no copy
    assert len(target.history("tabu")) == 1
