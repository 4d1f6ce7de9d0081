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


# -- the file itself: refused in one line that quotes nothing of it ----------------------------------------

SECRET = "root:$6$s3cr3tSALT$hashhashhash:19000:0:99999:7:::"  # a line of a file the user may not read


def _refusal(tmp_path: Path, monkeypatch, target: Path, *extra: str) -> str:
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    result = RUNNER.invoke(app, ["mechanisms", "validate", str(target), *extra])
    assert result.exit_code != 0, result.output
    message = str(result.exception)
    assert "\n" not in message and "s3cr3tSALT" not in message + result.output
    return message


def test_a_symbolic_link_is_refused_not_followed(tmp_path: Path, monkeypatch) -> None:
    secret = tmp_path / "shadow"
    secret.write_text(SECRET + "\n")
    secret.chmod(0o600)
    link = tmp_path / "innocent.py"
    link.symlink_to(secret)
    assert "is a symbolic link" in _refusal(tmp_path, monkeypatch, link)
    assert "is a symbolic link" in _refusal(tmp_path, monkeypatch, link, "--json")
    # A link to a good mechanism is refused too (the check is the link, not what it points to).
    (tmp_path / "good.py").write_text(library_source("tabu"))
    (tmp_path / "good_link.py").symlink_to(tmp_path / "good.py")
    assert "is a symbolic link" in _refusal(tmp_path, monkeypatch, tmp_path / "good_link.py")


def test_a_file_that_is_not_python_is_refused_without_quoting_it(tmp_path: Path, monkeypatch) -> None:
    target = tmp_path / "notes.py"
    target.write_text("# fine so far\n" + SECRET + "\n")
    message = _refusal(tmp_path, monkeypatch, target)
    assert "is not valid Python" in message and "line 2" in message
    quoted = tmp_path / "quoted.py"
    quoted.write_text("x = (\n" + "s3cr3tSALT€\n")  # Python's own message would quote the character
    assert "is not valid Python" in _refusal(tmp_path, monkeypatch, quoted, "--json")


def test_a_file_that_is_not_utf8_is_refused_with_the_offset(tmp_path: Path, monkeypatch) -> None:
    good = library_source("tabu").encode()
    target = tmp_path / "latin1.py"
    target.write_bytes(good + b"# caf\xe9\n")  # otherwise a good mechanism: it used to pass with a U+FFFD
    message = _refusal(tmp_path, monkeypatch, target)
    assert "is not UTF-8 text" in message and f"offset {len(good) + 5}" in message
    bom = tmp_path / "bom.py"
    bom.write_bytes(b"\xef\xbb\xbf" + good)  # a byte-order mark is UTF-8, and Python accepts it
    monkeypatch.setenv("BILEVEL_STATE_DIR", str(tmp_path / "state"))
    result = RUNNER.invoke(app, ["mechanisms", "validate", str(bom), "--json"])
    assert result.exit_code == 0 and json.loads(result.output)["ok"] is True, result.output


def test_a_directory_a_pipe_and_an_oversized_file_are_named_as_such(tmp_path: Path, monkeypatch) -> None:
    import os

    (tmp_path / "pkg.py").mkdir()
    assert "is a directory" in _refusal(tmp_path, monkeypatch, tmp_path / "pkg.py")
    os.mkfifo(tmp_path / "pipe.py")  # opened without blocking: no writer is waited for
    assert "is a named pipe, not a regular file" in _refusal(tmp_path, monkeypatch, tmp_path / "pipe.py")
    (tmp_path / "big.py").write_text("# " + "x" * (256 * 1024) + "\n")
    assert "is larger than 262144 bytes" in _refusal(tmp_path, monkeypatch, tmp_path / "big.py")
    assert "not found" in _refusal(tmp_path, monkeypatch, tmp_path / "none.py")
