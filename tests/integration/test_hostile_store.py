"""Hostile text and numbers against the real mechanism store (SeaweedFS): what the parser lets through is stored
with ASCII metadata or refused with a ValueError, and a document someone rewrote with numbers no consumer can take
is refused on read. Issue 23, finding 3."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from infra.store import CorruptObject, MechanismStore, VersionMeta, document_key, sha256_hex
from search.safe_json import clean_text
from tests.fixtures_s3 import mechanism_store, s3_bucket, s3_server  # noqa: F401  (fixtures)
from tests.unit.test_hostile_inputs import HOSTILE_NUMBERS, HOSTILE_TEXT, assert_clean

SOURCE = "class Tabu:\n    name = 'tabu'\n"


@pytest.mark.integration
def test_hostile_text_is_refused_or_stored_with_ascii_metadata(mechanism_store: MechanismStore) -> None:  # noqa: F811
    stored = mechanism_store.put("tabu", SOURCE, VersionMeta(meta_run_id="run-1", generation=0, model="m"))
    generation = 0
    for text in HOSTILE_TEXT:
        for candidate in {text, clean_text(text)}:
            generation += 1  # a new generation: a put of the same source in the same one returns the old version
            try:
                meta = VersionMeta(meta_run_id="run-1", generation=generation, model=candidate)
            except ValidationError:
                continue  # refused before any request
            version = mechanism_store.put("tabu", SOURCE, meta)
            assert mechanism_store.get("tabu", version.version_id)[1].model == candidate
    head = mechanism_store.client.head_object(Bucket=mechanism_store.bucket, Key=stored.key)
    assert all(value.isascii() for value in head["Metadata"].values())
    document = {"error": [clean_text(text) for text in HOSTILE_TEXT], "name": clean_text("\ud800evil\u202e")}
    mechanism_store.put_document("tabu", stored.version_id, "validation", document)
    read = mechanism_store.get_document("tabu", stored.version_id, "validation")
    assert read == document
    for text in read["error"]:
        assert_clean(text.replace("\n", "").replace("\t", ""))


@pytest.mark.integration
@pytest.mark.parametrize("literal", HOSTILE_NUMBERS[:4])
def test_a_rewritten_document_with_a_hostile_number_is_corrupt(mechanism_store: MechanismStore, literal: str) -> None:  # noqa: F811
    stored = mechanism_store.put("tabu", SOURCE, VersionMeta(meta_run_id="run-1", generation=0, model="m"))
    mechanism_store.put_document("tabu", stored.version_id, "validation", {"ok": True})
    body = json.dumps({"ok": True}).replace("true", literal).encode()
    # Whoever can write the bucket can also write a matching sha256: the parser is what stops the number.
    mechanism_store.client.put_object(
        Bucket=mechanism_store.bucket, Key=document_key("tabu", stored.version_id, "validation"), Body=body,
        Metadata={"sha256": sha256_hex(body), "mechanism-version-id": stored.version_id, "kind": "validation"})
    with pytest.raises(CorruptObject, match="the JSON has"):
        mechanism_store.get_document("tabu", stored.version_id, "validation")
