"""The embedded S3 server against a real `weed mini`: loopback only, credentials enforced, reuse, clean stop."""

from __future__ import annotations

import json
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
from pydantic import SecretStr

from infra.services import (
    GRPC_PORT_OFFSET,
    S3Endpoint,
    ServerLayout,
    ServiceError,
    embedded_s3,
    ensure_s3,
    find_free_s3_port,
    identities_config,
    port_is_free,
    probe_s3,
    server_ports,
    service_status,
    stop_s3,
    weed_command,
    weed_environment,
)
from infra.settings import Settings
from tests.fixtures_s3 import S3TestServer, s3_server  # noqa: F401  (fixture)


def _settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "state_dir": tmp_path / "state",
        "s3_endpoint_url": None,
        "s3_port": find_free_s3_port(),
        "s3_access_key": "key-a",
        "s3_secret_key": "secret-a",
    }
    values.update(overrides)
    return Settings(**values)


def _is_alive(pid: int) -> bool:
    """True for a live, non-zombie process."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def _listening_addresses(pid: int) -> list[tuple[str, int]]:
    """(address, port) of every TCP listener of `pid`, read from `ss -ltnp`."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    found = []
    for line in out.splitlines():
        if f"pid={pid}," not in line:
            continue
        local = line.split()[3]
        address, _, port = local.rpartition(":")
        found.append((address.strip("[]"), int(port)))
    return found


# -- pure parts: no server ------------------------------------------------------------------------


def test_server_ports_are_one_block_and_its_grpc_twins() -> None:
    ports = server_ports(20000)
    assert sorted(p for n, p in ports.items() if not n.endswith("_grpc")) == list(range(20000, 20005))
    assert all(ports[f"{n}_grpc"] == ports[n] + GRPC_PORT_OFFSET for n in ("s3", "master", "volume", "filer", "admin"))


def test_server_ports_refuses_a_base_without_room() -> None:
    with pytest.raises(ServiceError, match="BILEVEL_S3_PORT"):
        server_ports(60000)


def test_weed_command_binds_loopback_and_turns_extras_off(tmp_path: Path) -> None:
    layout = ServerLayout.from_settings(_settings(tmp_path, s3_port=21000))
    command = weed_command(Path("/x/weed"), layout)
    for flag in ("-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-master.telemetry=false", "-webdav=false", "-s3.port=21000", "-admin.port=21004"):
        assert flag in command
    assert f"-s3.config={layout.identities_file}" in command


def test_weed_environment_drops_variables_weed_acts_on(tmp_path: Path) -> None:
    env = weed_environment({"AWS_ACCESS_KEY_ID": "real", "aws_secret_access_key": "x", "S3_BUCKET": "b", "WEED_X": "1", "PATH": "/bin"}, tmp_path)
    assert env == {"PATH": "/bin", "HOME": str(tmp_path)}


def test_identities_need_both_keys() -> None:
    assert identities_config("a", "b")["identities"][0]["credentials"] == [{"accessKey": "a", "secretKey": "b"}]
    with pytest.raises(ServiceError, match="BILEVEL_S3_SECRET_KEY"):
        identities_config("a", "")


def test_endpoint_repr_hides_credentials() -> None:
    endpoint = S3Endpoint("http://127.0.0.1:1", "the-access-key", "the-secret", "us-east-1")
    assert "the-secret" not in repr(endpoint) and "the-access-key" not in repr(endpoint)


def test_configured_endpoint_starts_nothing(tmp_path: Path) -> None:
    settings = _settings(tmp_path, s3_endpoint_url="https://s3.example.org")
    endpoint = ensure_s3(settings)
    assert (endpoint.url, endpoint.owned_pid, endpoint.secret_key) == ("https://s3.example.org", None, "secret-a")
    assert not settings.s3_data_dir.exists()
    assert service_status(settings) == {"mode": "external", "endpoint": "https://s3.example.org", "bucket": settings.s3_bucket}


def test_busy_port_is_an_actionable_error(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", settings.s3_port + 3))  # the filer's port
        squatter.listen()
        with pytest.raises(ServiceError, match=rf"filer={settings.s3_port + 3}.*BILEVEL_S3_PORT"):
            ensure_s3(settings)
    assert not ServerLayout.from_settings(settings).pid_file.exists()


def _fake_weed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, script: str) -> None:
    fake = tmp_path / "weed"
    fake.write_text("#!/bin/sh\n" + script)
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setattr("infra.services.find_weed_binary", lambda: fake)


def test_a_server_that_dies_at_start_reports_its_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_weed(tmp_path, monkeypatch, "echo 'disk on fire' >&2\nexit 3\n")
    settings = _settings(tmp_path)
    with pytest.raises(ServiceError, match=r"(?s)exited with code 3.*disk on fire"):
        ensure_s3(settings)
    assert not ServerLayout.from_settings(settings).pid_file.exists()


@pytest.mark.integration
def test_a_server_that_never_answers_times_out_and_is_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_weed(tmp_path, monkeypatch, "echo 'stuck forever'\necho $$ > \"$HOME/fake.pid\"\nexec sleep 30\n")
    settings = _settings(tmp_path)
    with pytest.raises(ServiceError, match=r"(?s)did not answer.*within 1 s.*stuck forever"):
        ensure_s3(settings, ready_timeout_s=1.0)
    layout = ServerLayout.from_settings(settings)
    assert not _is_alive(int((layout.run_dir / "fake.pid").read_text()))
    assert not layout.pid_file.exists()


# -- the shared real server --------------------------------------------------------------------------


@pytest.mark.integration
@pytest.mark.skipif(shutil.which("ss") is None, reason="needs `ss` (iproute2) to list listening sockets")
def test_every_listener_is_on_loopback(s3_server: S3TestServer) -> None:  # noqa: F811
    pid = s3_server.endpoint.owned_pid
    assert pid is not None
    listeners = _listening_addresses(pid)
    assert listeners, "weed listens on nothing?"
    assert {address for address, _ in listeners} == {"127.0.0.1"}
    assert {port for _, port in listeners} == set(server_ports(s3_server.settings.s3_port).values())


@pytest.mark.integration
def test_credentials_are_required(s3_server: S3TestServer) -> None:  # noqa: F811
    import boto3
    from botocore.config import Config
    from botocore.exceptions import ClientError

    endpoint = s3_server.endpoint
    assert probe_s3(endpoint.url) == 403  # anonymous

    def list_buckets(access_key: str, secret_key: str) -> object:
        client = boto3.client(
            "s3", endpoint_url=endpoint.url, aws_access_key_id=access_key, aws_secret_access_key=secret_key,
            region_name="us-east-1", config=Config(retries={"max_attempts": 1}, s3={"addressing_style": "path"}),
        )
        return client.list_buckets()

    assert "Buckets" in list_buckets(endpoint.access_key, endpoint.secret_key)
    for access_key, secret_key, code in [
        (endpoint.access_key, endpoint.secret_key + "x", "SignatureDoesNotMatch"),
        ("bilevel-local", "bilevel-local-secret", "InvalidAccessKeyId"),  # the defaults are not a backdoor
    ]:
        with pytest.raises(ClientError) as refused:
            list_buckets(access_key, secret_key)
        assert refused.value.response["Error"]["Code"] == code


@pytest.mark.integration
def test_filer_port_does_not_bypass_s3_credentials(s3_server: S3TestServer) -> None:  # noqa: F811
    filer = server_ports(s3_server.settings.s3_port)["filer"]
    assert probe_s3(f"http://127.0.0.1:{filer}") == 401  # JWT required (generated security.toml)


@pytest.mark.integration
def test_ensure_s3_reuses_the_running_server(s3_server: S3TestServer) -> None:  # noqa: F811
    again = ensure_s3(s3_server.settings)
    assert again.url == s3_server.endpoint.url
    assert again.owned_pid is None  # not ours to stop
    record = json.loads(ServerLayout.from_settings(s3_server.settings).pid_file.read_text())
    assert record["pid"] == s3_server.endpoint.owned_pid


@pytest.mark.integration
def test_service_status_reports_the_server_without_secrets(s3_server: S3TestServer) -> None:  # noqa: F811
    status = service_status(s3_server.settings)
    assert status["running"] and status["answers"]
    assert status["pid"] == s3_server.endpoint.owned_pid
    assert status["endpoint"] == s3_server.endpoint.url
    assert s3_server.endpoint.secret_key not in json.dumps(status)


@pytest.mark.integration
def test_private_files_are_owner_only(s3_server: S3TestServer) -> None:  # noqa: F811
    layout = ServerLayout.from_settings(s3_server.settings)
    for path in (layout.identities_file, layout.security_file, layout.pid_file):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


# -- a server of its own: start, restart, stop ------------------------------------------------------


@pytest.mark.integration
def test_lifecycle_start_restart_on_new_credentials_and_clean_stop(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout = ServerLayout.from_settings(settings)
    with embedded_s3(settings) as endpoint:
        first_pid = endpoint.owned_pid
        assert first_pid is not None and _is_alive(first_pid)
        assert layout.log_file.exists() and layout.data_dir.is_dir()

        rotated = settings.model_copy(update={"s3_secret_key": SecretStr("secret-b")})
        restarted = ensure_s3(rotated)  # a server with other credentials is not reused
        assert restarted.owned_pid not in (None, first_pid)
        assert not _is_alive(first_pid)
        assert probe_s3(restarted.url) == 403
        # The context manager owns only first_pid: it must leave the restarted server alone...
        second_pid = restarted.owned_pid
    assert second_pid is not None and _is_alive(second_pid)
    # ...which stop_s3 then stops, leaving no process, port, pid file or socket behind.
    assert stop_s3(settings) is True
    assert not _is_alive(second_pid)
    assert all(port_is_free(port) for port in layout.ports.values())
    assert not layout.pid_file.exists()
    assert not [p for p in Path("/tmp").glob(f"seaweedfs-*-{settings.s3_port}.sock")]
    assert stop_s3(settings) is False  # nothing left to stop
    assert service_status(settings)["running"] is False


def test_a_stale_pid_file_is_ignored(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    layout = ServerLayout.from_settings(settings)
    layout.root.mkdir(parents=True)
    layout.pid_file.write_text(json.dumps({"pid": os.getpid()}))  # alive, but not a weed: never signalled
    assert service_status(settings)["running"] is False
    assert stop_s3(settings) is False
    assert not layout.pid_file.exists()


def test_only_stale_unix_sockets_are_removed_never_a_live_servers(tmp_path: Path) -> None:
    """Another server on the same ports (another state directory) keeps its sockets; dead leftovers go."""
    from infra.services import _remove_stale_sockets

    layout = ServerLayout.from_settings(_settings(tmp_path))
    live_path = Path(f"/tmp/seaweedfs-master-grpc-{layout.ports['master_grpc']}.sock")
    stale_path = Path(f"/tmp/seaweedfs-filer-{layout.ports['filer']}.sock")
    live, stale = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        live.bind(str(live_path))
        live.listen()
        stale.bind(str(stale_path))
        stale.close()  # the file stays behind, nobody accepts on it: what a killed weed leaves
        _remove_stale_sockets(layout)
        assert live_path.is_socket() and not stale_path.exists()
    finally:
        live.close()
        live_path.unlink(missing_ok=True)
        stale_path.unlink(missing_ok=True)


@pytest.mark.integration
def test_a_busy_default_port_moves_this_state_directory_to_a_free_block(tmp_path: Path) -> None:
    """Two projects on one machine: the second one's embedded server takes a free block, and keeps it."""
    import socket

    from infra.services import ensure_s3, find_free_s3_port, stop_s3

    busy_port = find_free_s3_port()
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", busy_port))
    blocker.listen()
    values = {**Settings(state_dir=tmp_path / "state").model_dump(), "s3_port": busy_port}
    settings = Settings.model_construct(_fields_set={"state_dir"}, **values)  # the port as if it were the default
    assert "s3_port" not in settings.model_fields_set
    try:
        endpoint = ensure_s3(settings)
        assert not endpoint.url.endswith(f":{busy_port}")
        again = ensure_s3(settings)  # reused on the port it chose, not started twice
        assert again.url == endpoint.url and again.owned_pid is None
        assert stop_s3(settings) is True  # found on the block it moved to, and stopped
        assert not _is_alive(endpoint.owned_pid)
    finally:
        stop_s3(settings)
        blocker.close()
