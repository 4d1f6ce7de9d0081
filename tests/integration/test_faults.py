"""Faults outside our control: an S3 endpoint that is briefly down (retried, nothing corrupt) or stays down
(a clear error); an LLM that times out twice then answers (retried inside one call)."""

from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path

import pytest

from infra.llm import LLMClient, LLMError
from infra.scripted_llm import register_scripted_provider
from infra.services import ensure_s3, find_free_s3_port, stop_s3
from infra.settings import Settings
from infra.store import MechanismStore, StoreUnavailable, VersionMeta

pytestmark = pytest.mark.integration

SOURCE = "class Probe:\n    name = 'probe'\n\n    def plan(self, ctx):\n        return None\n"


@pytest.fixture
def own_server(tmp_path: Path):
    """A SeaweedFS of this test alone: the test stops and restarts it."""
    settings = Settings(state_dir=tmp_path / "state", s3_port=find_free_s3_port(),
                        s3_access_key=f"t-{secrets.token_hex(6)}", s3_secret_key=secrets.token_urlsafe(18))
    endpoint = ensure_s3(settings)
    yield settings, endpoint
    stop_s3(settings)


def test_briefly_down_endpoint_is_retried_without_corrupt_state(own_server) -> None:
    settings, endpoint = own_server
    store = MechanismStore.from_endpoint(endpoint, "faults", connect_timeout_s=0.5, max_attempts=8)
    store.ensure_bucket()
    first = store.put("probe", SOURCE, VersionMeta(meta_run_id="faults", generation=0))
    attempts: list[tuple[str, str | None]] = []  # (operation, the connection error of a failed attempt)

    def record(operation, caught_exception=None, **_: object) -> None:
        attempts.append((operation.name, type(caught_exception).__name__ if caught_exception else None))

    store.client.meta.events.register("needs-retry.s3", record)  # botocore asks this after every attempt
    stop_s3(settings)
    restarter = threading.Timer(1.5, lambda: ensure_s3(settings))
    restarter.start()
    try:
        second = store.put("probe", SOURCE + "# v2\n", VersionMeta(meta_run_id="faults", generation=1))
    finally:
        restarter.join()
    # It really waited for the server to come back: the first request failed to connect and was retried (by
    # botocore, same operation) until it went through; the write came after.
    recovered = next(i for i, (_, error) in enumerate(attempts) if error is None)
    assert recovered >= 1 and attempts[recovered][0] == attempts[0][0], attempts
    assert all(error is not None and "Connection" in error for _, error in attempts[:recovered]), attempts
    assert attempts[-1] == ("PutObject", None), attempts
    history = store.history("probe")
    assert [v.version_id for v in history] == [second.version_id, first.version_id]
    assert store.get("probe", first.version_id)[0] == SOURCE
    assert store.get("probe")[0] == SOURCE + "# v2\n"


def test_endpoint_that_stays_down_is_a_clear_error(own_server) -> None:
    settings, endpoint = own_server
    store = MechanismStore.from_endpoint(endpoint, "faults-down", connect_timeout_s=0.3, max_attempts=2)
    store.ensure_bucket()
    stop_s3(settings)
    with pytest.raises(StoreUnavailable) as caught:
        store.put("probe", SOURCE, VersionMeta(meta_run_id="faults", generation=0))
    assert endpoint.url in str(caught.value) and endpoint.secret_key not in str(caught.value)


def test_llm_timing_out_twice_then_answering(tmp_path: Path) -> None:
    script = tmp_path / "answers.json"
    script.write_text(json.dumps({"answers": {}, "by_key": {
        "slow/*": {"fail_times": 2, "error": "timeout", "then": "fine"},
        "down/*": {"fail_times": 99, "error": "connection", "then": "never"}}}))
    register_scripted_provider(script)
    client = LLMClient("scripted/replay", retries=2, backoff_s=0.01, call_log=tmp_path / "calls.jsonl")
    assert client.complete([{"role": "user", "content": "q"}], purpose="p", call_key="slow/1").text == "fine"
    with pytest.raises(LLMError, match="no answer after 3 tries.*APIConnectionError"):
        client.complete([{"role": "user", "content": "q"}], purpose="p", call_key="down/1")
    log = [json.loads(line) for line in (tmp_path / "calls.jsonl").read_text().splitlines()]
    assert [entry.get("error") for entry in log] == ["Timeout", "Timeout", None, "APIConnectionError",
                                                     "APIConnectionError", "APIConnectionError"]
    assert sum("error" not in entry for entry in log) == 1
