"""Report pages: escaping of untrusted text, and whole reports built from synthetic runs and ablations on disk."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from reports.build import build_ablation_report, build_meta_run_report, build_report, log_report
from reports.html import Markup, esc, tag
from reports.screenshot import BrowserMissing, browser_command, find_browser, screenshot
from search.trace import Experiment, RunOutcome, Trace
from tests.unit.report_fixtures import HOSTILE, write_ablation, write_run, write_single_run


def assert_no_raw_script(page: str) -> None:
    assert not re.search(r"<\s*script", page, re.IGNORECASE), "untrusted text reached the page unescaped"


# -- escaping ------------------------------------------------------------------------------------------


def test_text_is_escaped_and_markup_is_not_escaped_twice() -> None:
    assert esc(HOSTILE) == "&lt;script&gt;alert(&#x27;pwned&#x27;)&lt;/script&gt; &amp; &quot;quotes&quot;"
    cell = tag("td", tag("code", HOSTILE), title=HOSTILE)
    assert cell.count("&lt;script&gt;") == 2 and "&amp;lt;" not in cell
    assert_no_raw_script(cell)


def test_adding_text_to_markup_escapes_the_text() -> None:
    combined = Markup("<b>x</b>") + HOSTILE
    assert isinstance(combined, Markup)
    assert combined.startswith("<b>x</b>&lt;script&gt;")
    assert_no_raw_script(HOSTILE + Markup("<i>y</i>"))


# -- a single meta-run ----------------------------------------------------------------------------------


def test_meta_run_report_has_its_sections_and_escapes_hostile_text(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_single_run(runs_dir, "run-1", hostile=True)
    page_path = build_meta_run_report(runs_dir, "run-1", tmp_path / "out")
    page = page_path.read_text()
    for anchor in ('id="curve"', 'id="best"', 'id="kept"', 'id="experiments"', 'id="mechanisms"'):
        assert anchor in page
    assert_no_raw_script(page)
    assert "&lt;script&gt;alert(&#x27;pwned&#x27;)" in page  # hypotheses and the source comment, shown as text
    assert page.count("data:image/png;base64,") == 1 and (tmp_path / "out" / "curve.png").stat().st_size > 10_000
    assert '<details class="source" id="source-0">' in page and "class Anneal:" in page
    assert "Δval_bpb" in page and "keep rate" in page and "LLM tokens" in page
    assert '<tr class="kept">' in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    liveness = {m["name"]: m["liveness"] for m in statistics["mechanisms"]}
    assert liveness == {"anneal": "live", "focus": "inert"}


def test_meta_run_without_mechanisms_json_says_the_source_is_not_recorded(tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    write_single_run(runs_dir, "run-1")
    (runs_dir / "run-1" / "mechanisms.json").unlink()
    page = build_meta_run_report(runs_dir, "run-1", tmp_path / "out").read_text()
    assert "source not recorded" in page


def test_meta_run_whose_baseline_failed_still_gets_a_page(tmp_path: Path) -> None:
    trace = Trace(experiments=[Experiment(index=0, outcome=RunOutcome(status="crash", error_tail="boom <oom>"))])
    write_run(tmp_path / "runs", "broken", trace, finished=False)
    page = build_meta_run_report(tmp_path / "runs", "broken", tmp_path / "out").read_text()
    assert 'class="badge failed"' in page and "baseline run ended with status crash" in page
    assert "boom &lt;oom&gt;" in page


def test_unknown_ids_are_reported_clearly(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="neither an ablation"):
        build_report(tmp_path, "nope")
    with pytest.raises(FileNotFoundError, match="no trace.json"):
        build_meta_run_report(tmp_path / "runs", "nope", tmp_path / "out")


# -- an ablation ---------------------------------------------------------------------------------------------


def test_ablation_report_three_arms_three_repeats(tmp_path: Path) -> None:
    write_ablation(tmp_path, "abl", repeats=3, gains={"A": 0.0, "C": 0.03, "random": 0.0})
    page_path = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False)
    page = page_path.read_text()
    for anchor in ('id="verdicts"', 'id="curves"', 'id="deltas"', 'id="arms"', 'id="comparisons"', 'id="repeats"',
                   'id="mechanisms"'):
        assert anchor in page
    assert page.count("data:image/png;base64,") == 2
    assert (tmp_path / "out" / "best_so_far.png").is_file() and (tmp_path / "out" / "deltas.png").is_file()
    # Three pairs cannot give a Wilcoxon p below 0.25: both comparisons must be inconclusive, and say why.
    assert page.count('class="badge inconclusive"') >= 2 and "cannot give p below 0.25" in page
    assert "anneal@v1" in page and "class Anneal:" in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())["statistics"]
    assert [a["arm"] for a in statistics["arms"]] == ["A", "C", "random"]
    assert [a["n"] for a in statistics["arms"]] == [3, 3, 3]
    comparisons = {c["arm"]: c for c in statistics["comparisons"]}
    assert comparisons["C"]["mean_difference"] < -0.1  # the synthetic C arm improves 0.03 per kept change
    assert comparisons["C"]["test"] == "wilcoxon signed-rank" and comparisons["C"]["n_pairs"] == 3


def test_missing_and_unfinished_meta_runs_are_reported_not_fatal(tmp_path: Path) -> None:
    write_ablation(tmp_path, "abl", repeats=2, gains={"A": 0.0, "C": 0.03}, missing=[("C", 1)],
                   unfinished=[("A", 1)])
    page = build_report(tmp_path, "abl", tmp_path / "out").read_text()
    assert 'class="badge missing"' in page and "abl-C-s1" in page and 'class="badge incomplete"' in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    arms = {a["arm"]: a for a in statistics["statistics"]["arms"]}
    assert arms["C"]["deltas"][1] is None and arms["C"]["n"] == 1 and arms["A"]["n"] == 1
    assert "CI undefined: n=1" in page
    assert statistics["repeats"]["C"][1]["status"] == "missing"
    # The per-run pages exist for every run with a measured baseline, and the ablation links to them.
    assert (tmp_path / "out" / "runs" / "abl-C-s0" / "index.html").is_file()
    assert 'href="runs/abl-A-s1/index.html"' in page
    assert not (tmp_path / "out" / "runs" / "abl-C-s1").exists()


def test_an_unreadable_summary_is_a_failed_run_with_the_reason_not_an_unfinished_one(tmp_path: Path) -> None:
    from reports.run_data import load_run

    write_single_run(tmp_path)
    summary = tmp_path / "run-1" / "summary.json"
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "best_val_bpb": "not a number"}))
    run = load_run(tmp_path, "run-1")
    assert run.status == "failed" and run.problem.startswith("summary.json is unreadable")


def test_manifest_listing_fewer_runs_than_seeds_shows_them_as_not_started(tmp_path: Path) -> None:
    manifest_path = write_ablation(tmp_path, "abl", repeats=3, gains={"A": 0.0, "C": 0.03})
    manifest = json.loads(manifest_path.read_text())
    manifest["arms"][1]["meta_run_ids"] = manifest["arms"][1]["meta_run_ids"][:1]
    manifest_path.write_text(json.dumps(manifest))
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    assert "not started" in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())["statistics"]
    assert statistics["arms"][1]["deltas"][1:] == [None, None]


# -- screenshot helper ---------------------------------------------------------------------------------------


def test_missing_browser_fails_with_an_install_hint(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BrowserMissing, match="apt-get install -y chromium"):
        find_browser()


def test_browser_command_is_headless_offline_and_uses_a_throwaway_profile(tmp_path: Path) -> None:
    command = browser_command("chromium", tmp_path / "a b.html", tmp_path / "x.png", tmp_path / "profile", 1280, 2400)
    for flag in ("--headless", "--no-sandbox", "--disable-background-networking", "--no-first-run",
                 f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,2400"):
        assert flag in command
    assert command[-1] == (tmp_path / "a b.html").as_uri()


@pytest.mark.integration
@pytest.mark.skipif(not any(shutil.which(b) for b in ("chromium", "chromium-browser", "google-chrome")),
                    reason="no Chromium on this machine")
def test_report_renders_in_a_real_headless_browser(tmp_path: Path) -> None:
    write_single_run(tmp_path / "runs", "run-1", hostile=True)
    page_path = build_meta_run_report(tmp_path / "runs", "run-1", tmp_path / "out")
    png = screenshot(page_path, tmp_path / "shot.png", width=1000, height=1200)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 20_000


@pytest.mark.integration
def test_log_report_puts_every_file_under_report_in_mlflow(tmp_path: Path) -> None:
    from infra.tracking import Tracker

    write_single_run(tmp_path / "runs", "run-1")
    folder = tmp_path / "out"
    build_meta_run_report(tmp_path / "runs", "run-1", folder / "")
    (folder / "runs" / "x").mkdir(parents=True)
    (folder / "runs" / "x" / "index.html").write_text("<p>nested</p>")
    tracker = Tracker(f"sqlite:///{tmp_path / 'mlflow.db'}", tmp_path / "artifacts")
    run_id, _ = tracker.ensure_run("bilevel-report-test", "report-test", run_name="report", tags={})
    assert log_report(tracker, run_id, folder) == 4  # curve.png, index.html, statistics.json, runs/x/index.html
    top = sorted(item.path for item in tracker.client.list_artifacts(run_id, "report"))
    assert top == ["report/curve.png", "report/index.html", "report/runs", "report/statistics.json"]
    nested = [item.path for item in tracker.client.list_artifacts(run_id, "report/runs/x")]
    assert nested == ["report/runs/x/index.html"]
