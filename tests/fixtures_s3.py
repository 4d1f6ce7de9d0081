"""Pytest fixtures for a real S3: one SeaweedFS per test session on free loopback ports in a tmp dir, stopped by PID.

Use from a test module (or a conftest) with:

    from tests.fixtures_s3 import s3_server, s3_bucket, mechanism_store  # noqa: F401

`s3_server` gives settings and an S3Endpoint (URL and credentials, random per session); `s3_bucket`
a fresh bucket name per test; `mechanism_store` a MechanismStore on that bucket, versioning enabled.
Modules that import the fixtures share one server: it starts on first use and stops after the last.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from infra.services import S3Endpoint, ensure_s3, find_free_s3_port, stop_s3
from infra.settings import Settings
from infra.store import MechanismStore


@dataclass(frozen=True)
class S3TestServer:
    settings: Settings
    endpoint: S3Endpoint


# pytest creates one session fixture per module that imports it; the server is shared between them.
_shared_server: S3TestServer | None = None
_users = 0


def _start_server(tmp_path_factory: pytest.TempPathFactory) -> S3TestServer:
    settings = Settings(
        state_dir=tmp_path_factory.mktemp("s3-state"),
        s3_endpoint_url=None,
        s3_port=find_free_s3_port(),
        s3_access_key=f"test-{secrets.token_hex(8)}",
        s3_secret_key=secrets.token_urlsafe(24),
        s3_bucket="bilevel-test",
    )
    endpoint = ensure_s3(settings)
    if endpoint.owned_pid is None:
        raise RuntimeError(f"expected a fresh SeaweedFS for the tests on {endpoint.url}, found one already running")
    return S3TestServer(settings, endpoint)


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3TestServer]:
    global _shared_server, _users
    if _shared_server is None:
        _shared_server = _start_server(tmp_path_factory)
    _users += 1
    server = _shared_server
    try:
        yield server
    finally:
        _users -= 1
        if _users == 0:
            _shared_server = None
            stop_s3(server.settings, only_pid=server.endpoint.owned_pid)


@pytest.fixture
def s3_bucket() -> str:
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def mechanism_store(s3_server: S3TestServer, s3_bucket: str) -> MechanismStore:
    store = MechanismStore.from_endpoint(
        s3_server.endpoint, s3_bucket, connect_timeout_s=1.0, read_timeout_s=5.0, max_attempts=2
    )
    store.ensure_bucket()
    return store
