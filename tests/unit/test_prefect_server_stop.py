"""Stopping a Prefect server sends the queued flow-run log lines first, while it still answers (otherwise Prefect's log
worker prints "Error logging to API" at exit after a run that went well); a failing send never blocks the stop."""

from __future__ import annotations

import subprocess
import sys
import types
from pathlib import Path

import pytest

from infra import prefect_server
from infra.prefect_server import PrefectServer


@pytest.fixture
def fake_handlers(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    events: list[str] = []

    class APILogHandler:
        def flush(self) -> None:
            events.append("flush")

    module = types.ModuleType("prefect.logging.handlers")
    module.APILogHandler = APILogHandler  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "prefect.logging.handlers", module)
    return events


def running_server(tmp_path: Path, events: list[str]) -> PrefectServer:
    server = PrefectServer([sys.executable, "-c", "import time; time.sleep(60)"], {}, 0, tmp_path / "log")
    process = subprocess.Popen(server.argv, stdin=subprocess.DEVNULL, start_new_session=True)
    terminate = process.terminate

    def recorded_terminate() -> None:
        events.append("terminate")
        terminate()

    process.terminate = recorded_terminate  # type: ignore[method-assign]
    server.process = process
    return server


def test_the_queued_log_lines_are_sent_before_the_server_is_stopped(tmp_path: Path, fake_handlers: list[str]) -> None:
    server = running_server(tmp_path, fake_handlers)
    server.stop()
    assert fake_handlers == ["flush", "terminate"]
    assert server.process is None


def test_a_failing_send_is_reported_and_the_server_still_stops(tmp_path: Path, fake_handlers: list[str],
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    def broken(self: object) -> None:
        raise RuntimeError("worker stuck")

    sys.modules["prefect.logging.handlers"].APILogHandler.flush = broken  # type: ignore[attr-defined]
    server = running_server(tmp_path, fake_handlers)
    process = server.process
    server.stop()
    assert fake_handlers == ["terminate"] and process is not None and process.poll() is not None
    err = capsys.readouterr().err
    assert "flow-run log lines not sent" in err and "worker stuck" in err


def test_nothing_is_sent_when_no_flow_ran_in_this_process(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "prefect.logging.handlers", raising=False)
    prefect_server.send_queued_logs()  # no import of Prefect's logging for a command that ran no flow
    assert "prefect.logging.handlers" not in sys.modules
