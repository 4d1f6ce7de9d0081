"""Deterministic cache keys for tasks that cost time or money, so a re-run of a meta-run resumes, not repeats."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def content_hash(*parts: Any) -> str:
    """A short sha256 of JSON-encodable parts (sorted keys), stable across processes and machines."""
    payload = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def cache_key_from(field: str):
    """A Prefect cache_key_fn reading a precomputed key from the task's `field` parameter (an object with
    a `cache_key` attribute). Keys never include the flow run id, so a new flow run finds old results."""

    def key_fn(_context: Any, parameters: dict[str, Any]) -> str:
        return parameters[field].cache_key

    return key_fn
