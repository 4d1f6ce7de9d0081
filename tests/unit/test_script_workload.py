"""The generic script workload and workloads by reference: a user's script, its metric and goal, fixed, budget
and seed literals, metrics.json or the summary block, one-line errors for bad references, and old files read."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import pytest

from infra.settings import Settings
from search.run_spec import Budget, MetaRunSummary, WorkloadRef
from search.trace import Trace
from workloads.registry import load_workload, registered_names
from workloads.script import ScriptWorkload, WorkloadError, last_summary_block

SCRIPT = textwrap.dedent('''\
    """Fits a line; prints val_acc (higher is better)."""
    import json, os

    # --- hyperparameters ---
    LR = 0.1
    WIDTH = 32                 # int [8, 64] log: hidden units
    MODE = "fast"              # choice [fast, slow]: how
    STEPS = 20
    SEED = 0
    # constraint: WIDTH % 8 == 0
    # --- end hyperparameters ---

    acc = 1.0 - abs(LR - 0.3) - (0.1 if MODE == "slow" else 0.0) - 0.001 * SEED + STEPS / 10000
    if os.environ.get("WRITE_METRICS"):
        json.dump({"val_acc": acc, "loss": 1 - acc}, open("metrics.json", "w"))
    else:
        print("---")
        print(f"val_acc: {acc:.6f}")
        print(f"steps: {STEPS}")
        print("note: not a number")
''')


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "fit.py"
    path.write_text(SCRIPT)
    return path


def workload(script: Path, **options) -> ScriptWorkload:
    return ScriptWorkload(script, metric="val_acc", goal="maximize", fixed=("SEED",), budget_param="STEPS", **options)


def test_the_space_leaves_out_fixed_budget_and_seed_literals(script: Path) -> None:
    work = workload(script)
    assert work.space.names == ["LR", "WIDTH", "MODE"]
    assert set(work.space.fixed) == {"SEED", "STEPS"}
    assert work.objective.describe() == "maximise val_acc (higher is better)"
    assert work.default_budget() == Budget(mode="steps", value=20)
    assert "Fits a line" in work.describe("steps") and "maximise val_acc" in work.describe("steps")


def test_apply_refuses_fixed_names_and_broken_constraints(script: Path) -> None:
    from search.params import ParamError

    work = workload(script)
    with pytest.raises(ParamError, match="SEED is fixed"):
        work.source_for({"SEED": 3})
    with pytest.raises(ParamError, match="WIDTH % 8 == 0"):
        work.source_for({"WIDTH": 12})
    assert "LR = 0.3" in work.source_for({"LR": 0.3})


def test_a_run_sets_budget_and_seed_and_reads_the_summary_block(script: Path, tmp_path: Path) -> None:
    work = workload(script, seed_param="SEED")
    outcome = work.run(work.source_for({"LR": 0.3}), Budget(mode="steps", value=50), seed=7, run_dir=tmp_path / "r1",
                       timeout_s=60)
    assert outcome.ok and outcome.value == pytest.approx(1.0 - 0.007 + 0.005)
    assert outcome.metrics == {"steps": 50.0} and outcome.steps == 50
    written = (tmp_path / "r1" / "fit.py").read_text()
    assert "STEPS = 50" in written and "SEED = 7" in written


def test_metrics_json_is_read_when_written(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WRITE_METRICS", "1")
    work = workload(script)
    outcome = work.run(work.editable_source(), Budget(mode="steps", value=20), seed=0, run_dir=tmp_path / "r", timeout_s=60)
    assert outcome.ok and outcome.value == pytest.approx(0.802) and outcome.metrics == {"loss": pytest.approx(0.198)}


def test_a_run_that_reports_no_metric_is_a_crash_with_its_tail(tmp_path: Path) -> None:
    silent = tmp_path / "silent.py"
    silent.write_text(SCRIPT.replace('print(f"val_acc: {acc:.6f}")', 'print(f"accuracy: {acc:.6f}")'))
    work = workload(silent)
    outcome = work.run(work.editable_source(), Budget(mode="steps", value=20), seed=0, run_dir=tmp_path / "r", timeout_s=60)
    assert outcome.status == "crash" and "printed no `val_acc: <number>` line" in outcome.error_tail
    crashing = tmp_path / "crash.py"
    crashing.write_text(SCRIPT + "\nraise SystemExit(3)\n")
    outcome = workload(crashing).run(SCRIPT + "\nraise SystemExit(3)\n", Budget(mode="steps", value=20), 0,
                                     tmp_path / "c", 60)
    assert outcome.status == "crash" and outcome.error_tail.startswith("exit code 3")


def test_the_run_never_sees_secrets(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    leaky = tmp_path / "leaky.py"
    leaky.write_text(SCRIPT.replace('print("---")', 'print("key", os.environ.get("OPENAI_API_KEY")); print("---")'))
    work = workload(leaky)
    outcome = work.run(leaky.read_text(), Budget(mode="steps", value=20), 0, tmp_path / "r", 60)
    assert outcome.ok and "sk-secret" not in outcome.log_tail and "key None" in outcome.log_tail


def test_last_summary_block_reads_the_last_one() -> None:
    text = "---\nval_acc: 0.1\n\n---\nval_acc: 0.9\nsteps: 3\ndone here\n"
    assert last_summary_block(text) == {"val_acc": "0.9", "steps": "3"}
    assert last_summary_block("no block") == {}


@pytest.mark.parametrize(("options", "message"), [
    ({"budget_param": "NOPE"}, "budget parameter 'NOPE' is not in the hyperparameter block"),
    ({"budget_param": "LR"}, "must be an int literal"),
    ({"fixed": ("NOPE",)}, "fixed parameters NOPE are not in"),
    ({"command": "python run.py"}, "must contain {script}"),
    ({"fixed": ("LR", "WIDTH", "MODE", "SEED", "STEPS")}, "no searchable parameter is left"),
])
def test_bad_options_are_one_line_errors(script: Path, options: dict, message: str) -> None:
    base = {"metric": "val_acc", **options}
    with pytest.raises(WorkloadError) as caught:
        ScriptWorkload(script, **base)
    assert message in str(caught.value) and "\n" not in str(caught.value)


# -- by reference ---------------------------------------------------------------------------------------


def settings(tmp_path: Path) -> Settings:
    return Settings(state_dir=tmp_path / "state", cache_dir=tmp_path / "cache")


def test_references_resolve_a_name_a_path_and_module_class(script: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"tinygpt", "toy"} <= set(registered_names())
    toy = load_workload(WorkloadRef(reference="toy"), settings(tmp_path))
    assert toy.objective.name == "loss" and "STEPS" in toy.space.fixed
    by_path = load_workload(WorkloadRef(reference=str(script), metric="val_acc", goal="maximize"), settings(tmp_path))
    assert by_path.objective.goal == "maximize" and by_path.ref.script_sha256
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text(
        "from workloads.script import ScriptWorkload\n"
        f"class Fit(ScriptWorkload):\n    def __init__(self):\n        super().__init__({str(script)!r}, metric='val_acc')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    by_class = load_workload(WorkloadRef(reference="userpkg:Fit"), settings(tmp_path))
    assert by_class.space.names[:2] == ["LR", "WIDTH"]


def test_an_entry_point_registers_a_name(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = tmp_path / "site"
    (site / "fitpkg").mkdir(parents=True)
    (site / "fitpkg" / "__init__.py").write_text(
        "from workloads.script import ScriptWorkload\n"
        f"def make(settings, ref):\n    return ScriptWorkload({str(script)!r}, metric='val_acc', fixed=ref.fixed)\n")
    info = site / "fitpkg-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fitpkg\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[bilevel.workloads]\nfit = fitpkg:make\n")
    monkeypatch.syspath_prepend(str(site))
    assert "fit" in registered_names()
    work = load_workload(WorkloadRef(reference="fit", fixed=("SEED",)), settings(tmp_path))
    assert "SEED" in work.space.fixed


@pytest.mark.parametrize(("reference", "metric", "message"), [
    ("nonesuch", None, "unknown workload 'nonesuch': not a registered name (tinygpt, toy"),
    ("/no/such/train.py", "x", "workload script /no/such/train.py not found"),
    ("no_such_module_x:Thing", None, "importing 'no_such_module_x' failed: ModuleNotFoundError"),
    ("string:digits", None, "is neither a Workload class nor a factory"),
    ("json:loads", None, "could not be built: TypeError"),
    ("json:nothing_here", None, "has no attribute 'nothing_here'"),
])
def test_bad_references_are_one_line_errors(tmp_path: Path, reference: str, metric: str | None, message: str) -> None:
    with pytest.raises(WorkloadError) as caught:
        load_workload(WorkloadRef(reference=reference, metric=metric), settings(tmp_path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize(("reference", "options", "message"), [
    ("tinygpt", {"goal": "maximize"}, "'tinygpt' does not take --goal maximize (it minimizes val_bpb): leave it out"),
    ("tinygpt", {"metric": "loss"}, "--metric 'loss' (it measures val_bpb)"),
    ("toy", {"metric": "acc", "goal": "maximize"}, "--metric 'acc' (it measures loss); --goal maximize"),
    ("tinygpt", {"budget_param": "STEPS"}, "--budget-param 'STEPS' (it has no budget parameter)"),
    ("toy", {"seed_param": "RNG"}, "--seed-param 'RNG' (its seed parameter is 'SEED')"),
    ("toy", {"command": "{python} {script} --fast"}, "--command '{python} {script} --fast' (its command is"),
    ("userpkg:Fit", {"fixed": ("SEED",)}, "--fixed SEED (it does not apply it)"),  # a class that ignores ref
])
def test_an_option_the_workload_does_not_apply_is_refused(script: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                         reference: str, options: dict, message: str) -> None:
    (tmp_path / "userpkg").mkdir()
    (tmp_path / "userpkg" / "__init__.py").write_text(
        "from workloads.script import ScriptWorkload\n"
        f"class Fit(ScriptWorkload):\n    def __init__(self):\n        super().__init__({str(script)!r}, metric='val_acc')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(WorkloadError) as caught:
        load_workload(WorkloadRef(reference=reference, **options), settings(tmp_path))
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_an_option_with_the_value_the_workload_has_is_accepted(script: Path, tmp_path: Path) -> None:
    toy = load_workload(WorkloadRef(reference="toy", metric="loss", goal="minimize", fixed=("STEPS", "WIDTH"),
                                    budget_param="STEPS", seed_param="SEED", command="{python} {script}"),
                        settings(tmp_path))
    assert toy.objective.name == "loss" and "WIDTH" in toy.space.fixed
    assert load_workload(WorkloadRef(reference="tinygpt", metric="val_bpb", goal="minimize"), settings(tmp_path)).name == "tinygpt"
    by_path = load_workload(WorkloadRef(reference=str(script), metric="val_acc", goal="maximize", seed_param="SEED",
                                        command="{python} {script} --quiet"), settings(tmp_path))
    assert by_path.seed_param == "SEED" and by_path.command == "{python} {script} --quiet"


def test_a_budget_for_a_script_that_fixes_its_own_is_refused(script: Path, tmp_path: Path) -> None:
    from infra.resources import budget_from_settings

    work = load_workload(WorkloadRef(reference=str(script), metric="val_acc"), settings(tmp_path))
    assert budget_from_settings(settings(tmp_path), work).mode == "fixed"
    with pytest.raises(ValueError, match="trains for its script's own budget: --budget does not apply"):
        budget_from_settings(Settings(state_dir=tmp_path / "state", budget=800), work)


def test_a_script_needs_its_metric_and_must_not_change_under_a_resume(script: Path, tmp_path: Path) -> None:
    with pytest.raises(WorkloadError, match="needs its metric"):
        load_workload(WorkloadRef(reference=str(script)), settings(tmp_path))
    ref = load_workload(WorkloadRef(reference=str(script), metric="val_acc"), settings(tmp_path)).ref
    script.write_text(SCRIPT.replace("LR = 0.1", "LR = 0.2"))
    with pytest.raises(WorkloadError, match="changed since this meta-run started"):
        load_workload(ref, settings(tmp_path))


# -- files written before objectives existed ------------------------------------------------------------


def test_old_traces_and_summaries_read_as_val_bpb_minimised() -> None:
    old_trace = {"experiments": [
        {"index": 0, "config": {"DEPTH": 4}, "outcome": {"status": "ok", "val_bpb": 2.9}, "kept": True, "default_kept": True},
        {"index": 1, "changes": {"DEPTH": 2}, "config": {"DEPTH": 2}, "outcome": {"status": "ok", "val_bpb": 2.7},
         "kept": True, "default_kept": True}]}
    trace = Trace.model_validate_json(json.dumps(old_trace))
    assert trace.objective.name == "val_bpb" and trace.objective.minimize
    assert trace.state().best.value == 2.7 and trace.experiments[1].outcome.value == 2.7
    old_summary = {"meta_run_id": "old", "name": "default", "baseline_val_bpb": 2.9, "best_val_bpb": 2.7,
                   "best_config": {}, "best_index": 1, "experiments": 1, "kept": 1, "crashes": 0, "invalid": 0,
                   "llm": {"calls": 1}}
    summary = MetaRunSummary.model_validate(old_summary)
    assert (summary.baseline_value, summary.best_value, summary.delta) == (2.9, 2.7, pytest.approx(-0.2))


def test_tinygpt_is_found_by_name(tmp_path: Path) -> None:
    tiny = load_workload(WorkloadRef(reference="tinygpt"), settings(tmp_path))
    assert tiny.name == "tinygpt" and tiny.objective.name == "val_bpb" and len(tiny.space.constraints) == 3
    assert sys.executable  # the script runs with this interpreter by default
