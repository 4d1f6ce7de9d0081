"""`bilevel mechanisms validate FILE`: the whole validation pipeline on a user's own file, each stage's verdict,
exit 0 only if the mechanism would be activated; JSON on request; a recorded trace on request."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from bilevel.cli import app
from mechanisms.library import library_source

RUNNER = CliRunner()


def test_a_good_mechanism_passes_every_stage_and_exits_0(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    (tmp_path / "bandit.py").write_text(library_source("ucb_bandit"))
    result = RUNNER.invoke(app, ["mechanisms", "validate", str(tmp_path / "bandit.py")])
    assert result.exit_code == 0, result.output
    for stage in ("policy", "static", "import", "smoke", "liveness"):
        assert stage in result.output
    assert "would be activated: ucb_bandit" in result.output


def test_a_refused_mechanism_exits_1_and_json_names_the_stage(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    bad = tmp_path / "bad.py"
    bad.write_text("class Bad:\n    name = 'bad'\n\n    def plan(self, ctx):\n        return {'guidance': ctx['nope']}\n")
    result = RUNNER.invoke(app, ["mechanisms", "validate", str(bad), "--json"])
    assert result.exit_code == 1
    report = json.loads(result.output)
    assert report["ok"] is False and report["stage_failed"] == "static" and "ctx has no key 'nope'" in report["error"]


def test_a_missing_file_or_run_is_a_clear_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    assert RUNNER.invoke(app, ["mechanisms", "validate", str(tmp_path / "none.py")]).exit_code != 0
    (tmp_path / "m.py").write_text(library_source("tabu"))
    result = RUNNER.invoke(app, ["mechanisms", "validate", str(tmp_path / "m.py"), "--trace", "../../etc"])
    assert result.exit_code != 0 and "is not a meta-run id" in str(result.exception)
