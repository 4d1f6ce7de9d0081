"""Report pages: escaping of untrusted text, whole reports built from synthetic runs and ablations on disk (a minimised
and a maximised objective, old val_bpb runs, several reference arms, noise floors, run limits), and the committed
benchmark rebuilt from its statistics."""

from __future__ import annotations

import json
import multiprocessing
import re
import shutil
from pathlib import Path

import pytest
from matplotlib.figure import Figure
from matplotlib.text import Text

from reports.build import (
    build_ablation_report,
    build_meta_run_report,
    build_report,
    log_report,
    main,
    rebuild_ablation_report,
)
from reports.html import CSS, Markup, esc, tag
from reports.plots import best_so_far_figure, deltas_figure, run_figure
from reports.run_data import load_run
from reports.screenshot import BrowserMissing, browser_command, find_browser, screenshot
from reports.stats import AblationStats
from search.trace import Experiment, RunOutcome, Trace
from tests.unit.report_fixtures import ACCURACY, HOSTILE, synthetic_trace, write_ablation, write_run, write_single_run

COMMITTED_BENCHMARK = Path(__file__).resolve().parents[2] / "benchmarks" / "results" / "bench-local"
MAXIMISED_ARMS = {"A": 0.0, "C": 0.01, "random": 0.003, "tpe": 0.004, "hybrid": 0.006}


def assert_no_raw_script(page: str) -> None:
    assert not re.search(r"<\s*script", page, re.IGNORECASE), "untrusted text reached the page unescaped"


def assert_says_nothing_of_val_bpb(text: str) -> None:
    """What a page or a plot of a maximised accuracy must never say (embedded PNGs are not text: base64 may spell
    anything)."""
    text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=]+", "", text)
    for wrong in ("val_bpb", "bpb", "lower is better"):
        assert wrong not in text, f"{wrong!r} on a page or plot of a maximised metric"


def figure_text(figure: Figure) -> str:
    """Every piece of text drawn on a figure: titles, axis labels, tick labels, legends, annotations."""
    return "\n".join(t.get_text() for t in figure.findobj(Text))


def json_keys(data: object) -> set[str]:
    if isinstance(data, dict):
        return set(data) | {k for v in data.values() for k in json_keys(v)}
    if isinstance(data, list):
        return {k for v in data for k in json_keys(v)}
    return set()


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
    assert "Δ val_bpb" in page and "keep rate" in page and "LLM tokens" in page
    assert '<tr class="kept">' in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    liveness = {m["name"]: m["liveness"] for m in statistics["mechanisms"]}
    assert liveness == {"anneal": "live", "focus": "inert"}
    assert statistics["objective"] == {"name": "val_bpb", "goal": "minimize"}
    assert statistics["delta"] == pytest.approx(statistics["best_value"] - statistics["baseline_value"])
    assert statistics["delta"] < 0 and statistics["noise_floor"] is None and "not measured" in page


# -- the objective: a maximised metric, and runs written before objectives existed ---------------------------


def test_maximised_meta_run_page_statistics_and_plot_name_accuracy_and_never_val_bpb(tmp_path: Path) -> None:
    write_single_run(tmp_path / "runs", "acc", objective=ACCURACY, noise_floor=0.012)
    page = build_meta_run_report(tmp_path / "runs", "acc", tmp_path / "out").read_text()
    assert_says_nothing_of_val_bpb(page)
    for expected in ("maximise accuracy (higher is better)", "baseline accuracy", "Δ accuracy",
                     "baseline − best (sign-corrected: negative is better)", "higher is up and is better",
                     "Influence on accuracy", "±0.0120", "× the noise floor"):
        assert expected in page, expected
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert statistics["objective"] == {"name": "accuracy", "goal": "maximize"}
    assert statistics["best_value"] > statistics["baseline_value"]  # raw values: the accuracy went up...
    assert statistics["delta"] == pytest.approx(statistics["baseline_value"] - statistics["best_value"])  # ...Δ < 0
    assert statistics["noise_floor"] == 0.012
    assert not any("bpb" in key for key in json_keys(statistics))
    figure = run_figure(load_run(tmp_path / "runs", "acc").trace)  # type: ignore[arg-type]
    assert_says_nothing_of_val_bpb(figure_text(figure))
    assert "accuracy (higher is better)" in figure_text(figure)
    axes = figure.axes[0]
    assert not axes.yaxis_inverted()
    best_line = next(line for line in axes.get_lines() if line.get_label() == "best so far")
    values = list(best_line.get_ydata())
    assert values == sorted(values) and values[-1] > values[0]  # the best of a maximised metric rises on the page
    low, high = axes.get_ylim()
    assert low < statistics["baseline_value"] < statistics["best_value"] < high  # the best is on the scale, not cut


def test_maximised_ablation_page_statistics_and_plots_with_three_reference_arms(tmp_path: Path) -> None:
    write_ablation(tmp_path, "acc", repeats=3, gains=MAXIMISED_ARMS, objective=ACCURACY,
                   references=["random", "tpe", "hybrid"],
                   noise_floors={arm: [0.01, 0.012, None] for arm in MAXIMISED_ARMS})
    page = build_ablation_report(tmp_path, "acc", tmp_path / "out", run_pages=False).read_text()
    assert_says_nothing_of_val_bpb(page)
    for expected in ("maximise accuracy (higher is better)", "Δ accuracy per repeat", "mean Δ accuracy",
                     "found a higher accuracy", "Against the reference arms random, tpe, hybrid",
                     "across all 9 tests made", "baseline accuracy", "±0.0110"):
        assert expected in page, expected
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert data["objective"] == {"name": "accuracy", "goal": "maximize"} == data["statistics"]["objective"]
    assert data["references"] == ["random", "tpe", "hybrid"]
    assert not any("bpb" in key for key in json_keys(data))
    statistics = AblationStats.model_validate(data["statistics"])
    pairs = [(c.arm, c.reference) for c in statistics.comparisons]
    assert pairs == [("A", "random"), ("C", "random"), ("tpe", "random"), ("hybrid", "random"), ("A", "tpe"),
                     ("C", "tpe"), ("hybrid", "tpe"), ("A", "hybrid"), ("C", "hybrid")]
    comparisons = page[page.index('id="comparisons"'):page.index('id="repeats"')]
    for arm, reference in pairs:  # the verdict table shows every test, with its reference
        assert re.search(rf"<td><strong>{arm}</strong></td><td>{reference}</td>", comparisons), (arm, reference)
    assert statistics.comparison("C", "hybrid").mean_difference < 0  # C raised accuracy most: negative is better
    assert statistics.arm("C").noise_floor == pytest.approx(0.011)
    repeat = data["repeats"]["C"][0]
    assert repeat["delta"] == pytest.approx(repeat["baseline_value"] - repeat["best_value"]) and repeat["delta"] < 0
    traces = {arm: [load_run(tmp_path / "runs", f"acc-{arm}-s{r}").trace for r in range(3)] for arm in MAXIMISED_ARMS}
    curves = {arm: [t.best_so_far() for t in arm_traces if t is not None] for arm, arm_traces in traces.items()}
    for figure in (best_so_far_figure(curves, objective=ACCURACY, references=statistics.references),
                   deltas_figure(statistics.arms, objective=ACCURACY, references=statistics.references)):
        text = figure_text(figure)
        assert_says_nothing_of_val_bpb(text)
        assert "Δ accuracy (sign-corrected: negative is better)" in text
    raw_axes, delta_axes = best_so_far_figure(curves, objective=ACCURACY).axes[:2]
    assert raw_axes.get_ylabel() == "best accuracy so far (higher is better)"
    c_raw = next(line for line in raw_axes.get_lines() if line.get_label().startswith("C "))
    c_delta = next(line for line in delta_axes.get_lines() if line.get_label().startswith("C "))
    assert c_raw.get_ydata()[-1] > c_raw.get_ydata()[0]  # raw axis: the accuracy climbs
    assert c_delta.get_ydata()[-1] < 0  # Δ axis: sign-corrected, an improvement is below zero


def test_minimised_pages_and_plots_still_say_val_bpb_lower_is_better(tmp_path: Path) -> None:
    write_ablation(tmp_path, "abl", repeats=3, references=["A", "random"])
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    assert "minimise val_bpb (lower is better)" in page and "Δ val_bpb per repeat" in page
    assert "higher is better" not in page
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    statistics = AblationStats.model_validate(data["statistics"])
    assert [(c.arm, c.reference) for c in statistics.comparisons] == [("C", "A"), ("random", "A"), ("C", "random")]
    text = figure_text(deltas_figure(statistics.arms, objective=statistics.objective))
    assert "Δ val_bpb (sign-corrected: negative is better)" in text and "higher is better" not in text


def test_a_run_written_before_objectives_existed_still_renders_as_val_bpb(tmp_path: Path) -> None:
    folder = write_single_run(tmp_path / "runs", "old")
    trace = json.loads((folder / "trace.json").read_text())
    del trace["objective"]
    for experiment in trace["experiments"]:  # the old name of the value
        experiment["outcome"]["val_bpb"] = experiment["outcome"].pop("value")
    (folder / "trace.json").write_text(json.dumps(trace))
    summary = json.loads((folder / "summary.json").read_text())
    for key in ("objective", "noise_floor", "stop_reason", "stop_detail"):
        del summary[key]
    summary["baseline_val_bpb"], summary["best_val_bpb"] = summary.pop("baseline_value"), summary.pop("best_value")
    (folder / "summary.json").write_text(json.dumps(summary))
    page = build_meta_run_report(tmp_path / "runs", "old", tmp_path / "out").read_text()
    assert "minimise val_bpb (lower is better)" in page and "best val_bpb" in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert statistics["status"] == "finished" and statistics["objective"] == {"name": "val_bpb", "goal": "minimize"}
    assert statistics["best_value"] == summary["best_val_bpb"] and statistics["stop_reason"] == "finished"


def test_a_repeat_under_another_objective_is_left_out_with_the_reason(tmp_path: Path) -> None:
    write_ablation(tmp_path, "abl", repeats=3, gains={"A": 0.0, "C": 0.03})
    write_run(tmp_path / "runs", "abl-C-s2", synthetic_trace(102, objective=ACCURACY))
    page = build_ablation_report(tmp_path, "abl", tmp_path / "out", run_pages=False).read_text()
    assert "its objective (maximise accuracy (higher is better)) is not the ablation&#x27;s" in page
    data = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert data["repeats"]["C"][2]["status"] == "failed"
    assert data["statistics"]["arms"][1]["deltas"][2] is None


# -- the run page: noise floor, run limits, stopped experiments, proposers, parameters ---------------------------


def test_a_run_stopped_at_a_limit_says_why_and_an_ablation_leaves_it_out(tmp_path: Path) -> None:
    detail = "LLM calls cost $1.0100, the limit is $1.0000"
    write_single_run(tmp_path / "runs", "limited", stop=("llm_cost_limit", detail))
    page = build_meta_run_report(tmp_path / "runs", "limited", tmp_path / "out").read_text()
    assert 'class="badge stopped">stopped<' in page and "LLM cost limit" in page and detail in page
    assert "bilevel resume limited" in page
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    assert (statistics["status"], statistics["stop_reason"], statistics["stop_detail"]) == (
        "stopped", "llm_cost_limit", detail)
    write_ablation(tmp_path, "abl", repeats=3, gains={"A": 0.0, "C": 0.03}, stopped=[("C", 1)])
    data = json.loads((build_ablation_report(tmp_path, "abl", tmp_path / "abl", run_pages=False).parent
                       / "statistics.json").read_text())
    assert data["repeats"]["C"][1]["status"] == "stopped"
    assert data["statistics"]["arms"][1]["n"] == 2  # fewer evaluations than the others: not compared


def test_stopped_experiments_are_their_own_status_with_their_own_colour(tmp_path: Path) -> None:
    folder = write_single_run(tmp_path / "runs", "run-1")
    trace = Trace.model_validate_json((folder / "trace.json").read_text())
    stopped = sum(1 for e in trace.experiments if e.outcome.status == "stopped")
    assert stopped >= 2  # the fixture stops some trainings early: this test means something
    page = build_meta_run_report(tmp_path / "runs", "run-1", tmp_path / "out").read_text()
    assert page.count('class="badge stopped">stopped<') == stopped
    assert f"+ {stopped} stopped early" in page
    rules = {rule.split("{")[0].strip(): rule.split("{")[1] for rule in CSS.split("}") if "{" in rule}
    assert ".badge.stopped" in rules and "--stopped" in rules[".badge.stopped"]
    assert "stopped" not in next(selector for selector in rules if ".badge.crash" in selector)
    assert "stopped early" in figure_text(run_figure(trace))


def test_experiments_show_who_proposed_them(tmp_path: Path) -> None:
    write_run(tmp_path / "runs", "tpe-run", synthetic_trace(3, experiments=6, crash_rate=0.0, proposed_by="tpe"),
              proposer="tpe")
    page = build_meta_run_report(tmp_path / "runs", "tpe-run", tmp_path / "out").read_text()
    experiments = page[page.index('id="experiments"'):page.index('id="mechanisms"')]
    assert "<th>proposed by</th>" in experiments
    assert experiments.count("<td>tpe</td>") == 5 and experiments.count("<td>baseline</td>") == 2  # changes, proposer
    assert "proposer tpe" in page


def test_parameter_table_is_the_traces_param_stats(tmp_path: Path) -> None:
    trace = synthetic_trace(5, experiments=4, crash_rate=0.0)
    write_run(tmp_path / "runs", "short", trace)
    page = build_meta_run_report(tmp_path / "runs", "short", tmp_path / "out").read_text()
    statistics = json.loads((tmp_path / "out" / "statistics.json").read_text())
    expected = trace.param_stats(list(trace.experiments[0].config))
    assert statistics["parameters"] == [p.model_dump(mode="json") for p in expected.values()]
    parameters = page[page.index('id="parameters"'):page.index('id="experiments"')]
    untried = [name for name, entry in expected.items() if entry.tries == 0]
    assert untried and parameters.count('<tr class="untried">') == len(untried)
    for name, entry in expected.items():
        assert re.search(rf"<code>{name}</code></td><td class=\"num\">{entry.tries}</td>", parameters), name


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


def test_the_committed_benchmark_rebuilds_from_its_statistics(tmp_path: Path) -> None:
    """bench-local's statistics.json predates objectives and several reference arms; its page must still rebuild
    from it (not from its meta-runs, which are not committed), with the numbers the README quotes."""
    page = rebuild_ablation_report(COMMITTED_BENCHMARK / "statistics.json", tmp_path / "out").read_text()
    assert "Ablation bench-local" in page and "minimise val_bpb (lower is better)" in page
    assert "Against the reference arm A" in page and page.count('class="badge inconclusive"') == 4  # list + table
    for number in ("-0.2724", "-0.3014", "-0.3960", "[-0.1104, +0.0291]", "[-0.4309, +0.1409]", "0.578"):
        assert number in page, number
    assert (tmp_path / "out" / "deltas.png").stat().st_size > 10_000
    assert "Rebuilt from statistics.json alone" in page
    committed = str(COMMITTED_BENCHMARK / "statistics.json")
    assert main(["--from-statistics", committed, "--out", str(tmp_path / "cli")]) == 0
    assert main(["--from-statistics", str(tmp_path / "none.json"), "--out", str(tmp_path / "cli")]) == 1


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
    assert statistics["references"] == ["A"]
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
    summary.write_text(json.dumps({**json.loads(summary.read_text()), "best_value": "not a number"}))
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
    write_ablation(tmp_path, "acc", repeats=3, gains={"A": 0.0, "C": 0.01, "random": 0.003}, objective=ACCURACY,
                   references=["A", "random"])
    pages = [build_meta_run_report(tmp_path / "runs", "run-1", tmp_path / "out"),
             build_ablation_report(tmp_path, "acc", tmp_path / "acc", run_pages=False)]
    for position, page_path in enumerate(pages):
        png = screenshot(page_path, tmp_path / f"shot-{position}.png", width=1000, height=1200)
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


@pytest.mark.integration
def test_bilevel_report_builds_and_logs_a_maximised_meta_run_and_an_ablation(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """`bilevel report ID` (the CLI's _report_target) for a meta-run and an ablation, against a real MLflow store."""
    from bilevel.cli import _report_target
    from infra.mlflow_schema import ablation_experiment_name
    from infra.settings import load_settings
    from infra.tracking import Tracker

    for name in [k for k in __import__("os").environ if k.startswith("BILEVEL_")]:
        monkeypatch.delenv(name)
    settings = load_settings(state_dir=tmp_path / "state")
    write_single_run(settings.runs_dir, "acc-run", objective=ACCURACY, noise_floor=0.01)
    write_ablation(settings.state_path, "acc-abl", repeats=3, gains={"A": 0.0, "C": 0.01, "random": 0.0},
                   objective=ACCURACY, references=["A", "random"])
    _report_target(settings, "acc-run")
    _report_target(settings, "acc-abl")
    run_page = (settings.state_path / "reports" / "acc-run" / "index.html").read_text()
    ablation_page = (settings.state_path / "reports" / "acc-abl" / "index.html").read_text()
    for page in (run_page, ablation_page):
        assert_says_nothing_of_val_bpb(page)
        assert "maximise accuracy (higher is better)" in page
    assert (settings.state_path / "reports" / "acc-abl" / "runs" / "acc-abl-C-s0" / "index.html").is_file()
    tracker = Tracker(settings.resolved_tracking_uri, settings.mlflow_artifact_root)
    experiment = tracker.client.get_experiment_by_name(ablation_experiment_name("acc-abl"))
    (run,) = tracker.client.search_runs([experiment.experiment_id])
    logged = {item.path for item in tracker.client.list_artifacts(run.info.run_id, "report")}
    assert {"report/index.html", "report/statistics.json", "report/deltas.png"} <= logged


def _build_as_nobody(root: str, results: multiprocessing.Queue) -> None:
    """In a forked child: become nobody, then write an ablation and build its reports under `root`."""
    import os

    try:
        os.setgroups([])
        os.setgid(65534)
        os.setuid(65534)
        state = Path(root) / "state"
        write_ablation(state, "acc", repeats=3, gains={"A": 0.0, "C": 0.01}, objective=ACCURACY)
        page = build_report(state, "acc")
        rebuilt = rebuild_ablation_report(COMMITTED_BENCHMARK / "statistics.json", Path(root) / "rebuilt")
        results.put(f"ok {page.stat().st_uid} {rebuilt.stat().st_uid}")
    except BaseException as error:  # the parent asserts on what came back: report it, whatever it was
        results.put(f"error {type(error).__name__}: {error}")


@pytest.mark.integration
@pytest.mark.skipif(__import__("os").geteuid() != 0, reason="needs root to drop privileges to nobody")
def test_an_ordinary_user_builds_reports() -> None:
    """As `nobody`, in a folder it owns: the report code needs no privilege (the state, the reports, a rebuild)."""
    import os
    import tempfile

    # The child inherits matplotlib's config dir, computed for root (/root/.config, unreadable for nobody); a real
    # user has their own. Load what matplotlib reads from there lazily before dropping privileges.
    import matplotlib.style  # noqa: F401

    root = tempfile.mkdtemp(prefix="bilevel-report-nobody-")
    try:
        os.chown(root, 65534, 65534)
        os.chmod(root, 0o755)
        context = multiprocessing.get_context("fork")
        results = context.Queue()
        child = context.Process(target=_build_as_nobody, args=(root, results))
        child.start()
        answer = results.get(timeout=300)
        child.join(timeout=60)
        assert answer == "ok 65534 65534", answer
        assert "maximise accuracy" in (Path(root) / "state" / "reports" / "acc" / "index.html").read_text()
    finally:
        shutil.rmtree(root, ignore_errors=True)
