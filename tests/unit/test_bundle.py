"""Export bundles: secrets scrubbed on the way out, a round trip through a fresh state directory, and hostile or
damaged bundles refused in one line with nothing written (no store needed: these runs used no stored mechanisms)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
from pathlib import Path

import pytest

from infra.bundle import (
    INDEX,
    MAX_JSON_BYTES,
    BundleError,
    find_secret,
    read_bundle,
    scrub,
    secret_values,
)
from infra.runs import list_meta_runs
from infra.settings import Settings
from infra.tracking import Tracker
from infra.transfer import export_target, import_bundle
from reports.build import build_report
from tests.unit.report_fixtures import synthetic_trace, write_ablation, write_run


def _settings(root: Path) -> Settings:
    return Settings(state_dir=root)


def _tracker(settings: Settings) -> Tracker:
    return Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root)


def _files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*")} if root.exists() else set()


@pytest.fixture
def run_bundle(tmp_path: Path) -> Path:
    settings = _settings(tmp_path / "a")
    write_run(settings.runs_dir, "run-1", synthetic_trace(3, experiments=12, gain=0.02))
    (settings.runs_dir / "run-1" / "settings.json").write_text(json.dumps(
        {"model": "openai/gpt-4.1", "llm_max_tokens": 512, "api_key": "sk-very-secret-value",
         "mlflow_tracking_uri": "postgresql://alice:hunter22@db.example/mlflow"}))
    return export_target(settings, "run-1", tmp_path / "run-1.tar.gz", store=None)


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]


def test_scrub_drops_secret_text_and_url_passwords_but_keeps_numbers() -> None:
    data = {"s3_secret_key": "abc", "llm_max_tokens": 512, "nested": [{"HF_TOKEN": "hf_x"}],
            "uri": "https://bob:pw@host/x", "auth_header": None, "plain": "no secret here"}
    assert scrub(data) == {"s3_secret_key": "***", "llm_max_tokens": 512, "nested": [{"HF_TOKEN": "***"}],
                           "uri": "https://host/x", "auth_header": None, "plain": "no secret here"}


def test_a_secret_value_anywhere_is_found_by_its_name_only() -> None:
    secrets = secret_values({"MY_API_KEY": "k-1234567890", "PATH": "/bin", "SHORT_TOKEN": "1"}, ["the-s3-secret"])
    assert set(secrets) == {"MY_API_KEY", "setting 0"}
    assert find_secret({"runs/x/trace.json": b'{"h": "k-1234567890"}'}, secrets) == ("runs/x/trace.json", "MY_API_KEY")
    assert find_secret({"runs/x/trace.json": b"{}"}, secrets) is None


def test_the_bundle_holds_json_and_no_secrets(run_bundle: Path) -> None:
    members = _members(run_bundle)
    assert set(members) == {INDEX, "runs/run-1/spec.json", "runs/run-1/settings.json", "runs/run-1/trace.json",
                            "runs/run-1/summary.json"}
    settings = json.loads(members["runs/run-1/settings.json"])
    assert settings["api_key"] == "***" and settings["llm_max_tokens"] == 512
    assert settings["mlflow_tracking_uri"] == "postgresql://db.example/mlflow"
    assert not any(b"hunter22" in body or b"sk-very-secret" in body for body in members.values())


def test_export_refuses_to_ship_a_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    settings = _settings(tmp_path / "a")
    trace = synthetic_trace(3, experiments=6, hypothesis="use the key tok-abcdef123456 please")
    write_run(settings.runs_dir, "run-1", trace)
    monkeypatch.setenv("SERVICE_TOKEN", "tok-abcdef123456")
    with pytest.raises(BundleError, match="contains the value of SERVICE_TOKEN") as error:
        export_target(settings, "run-1", tmp_path / "out.tar.gz", store=None)
    assert "tok-abcdef123456" not in str(error.value) and not (tmp_path / "out.tar.gz").exists()


def test_round_trip_into_a_fresh_state_directory(run_bundle: Path, tmp_path: Path) -> None:
    fresh = _settings(tmp_path / "b")
    result = import_bundle(fresh, run_bundle, store=None, tracker=_tracker(fresh))
    assert result.written == ["run-1"]
    [listed] = list_meta_runs(fresh.runs_dir)
    assert (listed.id, listed.state, listed.experiments) == ("run-1", "finished", 11)
    summary = json.loads((fresh.runs_dir / "run-1" / "summary.json").read_text())
    run = _tracker(fresh).client.get_run(summary["mlflow_run_id"])  # the run the report logs to exists here
    assert run.data.tags["bilevel.imported"] == "true" and run.info.status == "FINISHED"
    assert summary["trace_path"] == str(fresh.runs_dir / "run-1" / "trace.json")
    assert build_report(fresh.state_path, "run-1").is_file()
    again = import_bundle(fresh, run_bundle, store=None, tracker=_tracker(fresh))
    assert again.kept == ["run-1"] and again.written == []


def test_ablation_round_trip_merges_with_the_manifest_here(tmp_path: Path) -> None:
    source = _settings(tmp_path / "a")
    write_ablation(source.state_path, "abl", repeats=3, gains={"A": 0.0, "C": 0.03}, missing=[("C", 2)])
    started = source.runs_dir / "abl-C-s2"  # C's repeat 2 has started here: a spec, no trace yet
    started.mkdir(parents=True)
    (started / "spec.json").write_text((source.runs_dir / "abl-C-s1" / "spec.json").read_text().replace("-s1", "-s2"))
    bundle = export_target(source, "abl", tmp_path / "abl.tar.gz", store=None)
    fresh = _settings(tmp_path / "b")
    result = import_bundle(fresh, bundle, store=None, tracker=_tracker(fresh))
    assert sorted(result.written) == ["abl-A-s0", "abl-A-s1", "abl-A-s2", "abl-C-s0", "abl-C-s1"]
    page = build_report(fresh.state_path, "abl").read_text()
    assert "This report is partial." in page  # C's repeat 2 never ran anywhere
    statistics = json.loads((fresh.state_path / "reports" / "abl" / "statistics.json").read_text())
    assert statistics["complete_repeats"] == [0, 1]


def _write_tar(path: Path, entries: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for info, body in entries:
            tar.addfile(info, io.BytesIO(body) if body is not None else None)
    return path


def _file(name: str, body: bytes) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info, body


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def _valid_entries(run_bundle: Path) -> list[tuple[tarfile.TarInfo, bytes]]:
    return [_file(name, body) for name, body in _members(run_bundle).items()]


def _hostile(kind: str, run_bundle: Path, tmp_path: Path) -> Path:
    path = tmp_path / f"{kind}.tar.gz"
    entries = _valid_entries(run_bundle)
    if kind == "traversal":
        return _write_tar(path, [*entries, _file("runs/../../../escaped.json", b"{}")])
    if kind == "absolute":
        return _write_tar(path, [*entries, _file("/tmp/escaped.json", b"{}")])
    if kind == "symlink":
        return _write_tar(path, [_link("runs/run-1/summary.json", "/etc/passwd"), *entries])
    if kind == "hardlink":
        return _write_tar(path, [*entries[:1], _link("runs/run-1/notes.json", "bundle.json", tarfile.LNKTYPE)])
    if kind == "huge":
        return _write_tar(path, [*entries[:1], _file("runs/run-1/summary.json", b" " * (MAX_JSON_BYTES + 1))])
    if kind == "bad_json":
        return _write_tar(path, [_file(i.name, b if not i.name.endswith("trace.json") else b'{"experiments": [')
                                 for i, b in entries])
    if kind == "unexpected":
        return _write_tar(path, [*entries, _file("runs/run-1/payload.pkl", b"\x80\x04")])
    if kind == "truncated":
        data = run_bundle.read_bytes()
        path.write_bytes(data[: len(data) // 2])
        return path
    if kind == "not_gzip":
        path.write_bytes(b"this is not a bundle")
        return path
    if kind == "gzip_of_garbage":
        path.write_bytes(gzip.compress(b"\x00garbage" * 100))
        return path
    if kind == "wrong_id":
        return _write_tar(path, [_file(i.name, b.replace(b'"meta_run_id": "run-1"', b'"meta_run_id": "run-2"', 1)
                                       if i.name.endswith("spec.json") else b) for i, b in entries])
    raise AssertionError(kind)


HOSTILE = {
    "traversal": "would leave the state directory", "absolute": "would leave the state directory",
    "symlink": "is a symbolic link", "hardlink": "is a hard link", "huge": "over its", "bad_json": "not valid JSON",
    "unexpected": "unexpected member", "truncated": "not a complete .tar.gz", "not_gzip": "not a complete .tar.gz",
    "gzip_of_garbage": "not a complete .tar.gz", "wrong_id": "names meta-run 'run-2'",
}


@pytest.mark.parametrize("kind", sorted(HOSTILE))
def test_hostile_bundles_are_refused_in_one_line_and_write_nothing(kind: str, run_bundle: Path, tmp_path: Path) -> None:
    bundle = _hostile(kind, run_bundle, tmp_path)
    fresh = _settings(tmp_path / "b")
    before = _files(tmp_path)
    with pytest.raises(BundleError, match=HOSTILE[kind]) as error:
        import_bundle(fresh, bundle, store=None, tracker=None)  # type: ignore[arg-type]  # refused before MLflow
    message = str(error.value)
    assert "\n" not in message and message.startswith(("damaged bundle", "no bundle"))
    assert _files(tmp_path) == before  # nothing written, inside the state directory or outside it


def test_a_sound_bundle_reads_back(run_bundle: Path) -> None:
    bundle = read_bundle(run_bundle)
    assert bundle.index.kind == "run" and list(bundle.runs) == ["run-1"] and bundle.runs["run-1"].finished


def test_an_import_renames_mechanism_labels_and_ids_inside_text_too() -> None:
    from infra.transfer import _renamed

    old, new = "6712b077cd51aaaa0000", "99ffee0011223344bbbb"
    data = {"accepted": f"pattern_move@{old[:12]}", "version": old, "parents": [f"tabu@{old}"],
            "verdict": f"accepted pattern_move@{old[:12]} (round 1, 1 of 2 samples valid)",
            "other": f"pattern_move@{old[:12]}x is another id", "email": "someone@example.org"}
    assert _renamed(data, {old: new}) == {
        "accepted": f"pattern_move@{new[:12]}", "version": new, "parents": [f"tabu@{new}"],
        "verdict": f"accepted pattern_move@{new[:12]} (round 1, 1 of 2 samples valid)",
        "other": f"pattern_move@{old[:12]}x is another id", "email": "someone@example.org"}
