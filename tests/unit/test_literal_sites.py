"""Literal sites (`edits = literals`): discovery and skip rules, stable ids, inferred ranges, AST writing that leaves
every other byte alone, exclusion by marker and by `fixed`, validation refusals, the cap, and what the prompt, the
optimiser arms, MLflow and a recorded spec see."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from search.iteration import ProposalRequest
from search.params import ParamError, ParamKind, is_site_name
from search.prompts import proposal_messages
from search.random_proposal import random_proposal
from search.run_spec import MetaRunSpec, WorkloadRef
from search.space import CandidateError
from search.tpe_proposal import optimiser_suggestions
from search.trace import Experiment, Trace
from tests.unit.traces import ok, request_for
from workloads.hyperblock import ScriptError
from workloads.literal_sites import apply_sites, find_sites, literal_slots
from workloads.script import ScriptWorkload, WorkloadError

SCRIPT = '''"""A script with literals outside its block."""
import math

# --- hyperparameters ---
LR = 0.01                  # float [1e-4, 1.0] log: step size
STEPS = 100                # int [10, 1000]: steps
# --- end hyperparameters ---

SOFTCAP = 15.0  # tanh cap


def init_weights(w, std=0.02, scale=-0.5):
    w.normal_(std=std * 2.5)
    print(f"init {w[0]:.3f}", 7.5)
    return w[1:3] * scale + math.sqrt(3.0)


class Model:
    def __init__(self, width):
        self.hidden = 4 * width
        self.drop = 0.1  # bilevel: fixed
        self.x = width.view(-1, 8).sum(dim=1)
        self.heads = [0, 1, 2]

    def forward(self, x, step):
        assert x.ndim < 4, "at most three dims"
        if step % 100 == 0:
            print(step)
        y = x.transpose(1, 2) + 1e-8 + 0.0
        return y * 1.0 + x * 0.7 + 12 * 2 + True


def main():
    for _ in range(1000):
        pass
    print("---")
    print(f"loss: {0.5 * LR}")
'''


def sites(source: str = SCRIPT) -> dict[str, object]:
    return {slot.id: slot.value for slot in find_sites(source)}


def test_every_meaningful_numeric_literal_outside_the_block_is_a_site_and_the_rest_say_why() -> None:
    assert sites() == {"global:0": 15.0, "init_weights:0": 0.02, "init_weights:1": -0.5, "init_weights:2": 2.5,
                       "Model.__init__:0": 4, "Model.forward:8": 0.7, "Model.forward:9": 12, "main:0": 1000}
    skipped = {slot.id: slot.skip for slot in literal_slots(SCRIPT) if slot.skip}
    assert skipped == {
        "init_weights:3": "index", "init_weights:4": "output",  # w[0] in an f-string, inside print()
        "init_weights:5": "index", "init_weights:6": "index",  # w[1:3]
        "init_weights:7": "math",  # math.sqrt(3.0)
        "Model.__init__:1": "marked",  # `# bilevel: fixed`
        "Model.__init__:2": "axis", "Model.__init__:3": "axis", "Model.__init__:4": "axis",  # view(-1, 8), dim=1
        "Model.__init__:5": "identity", "Model.__init__:6": "identity", "Model.__init__:7": "identity",  # 0, 1, 2
        "Model.forward:0": "check",  # assert x.ndim < 4
        "Model.forward:1": "interval", "Model.forward:2": "equality",  # step % 100 == 0
        "Model.forward:3": "axis", "Model.forward:4": "axis",  # transpose(1, 2)
        "Model.forward:5": "guard", "Model.forward:6": "identity", "Model.forward:7": "identity",  # 1e-8, 0.0, 1.0
        "Model.forward:10": "identity",  # 12 * 2
        "main:1": "output",  # the f-string of the summary
    }
    assert not any(slot.line in (5, 6) for slot in literal_slots(SCRIPT))  # the block is the block's, not sites'
    assert all(is_site_name(name) for name in sites())


def test_named_zero_and_one_are_sites_anonymous_ones_are_not() -> None:
    source = SCRIPT.replace("    w.normal_(std=std * 2.5)", "    w.normal_(std=1.0, mean=0.0, bias=1)\n    w.add_(1.0)")
    found = sites(source)
    assert found["init_weights:2"] == 1.0 and found["init_weights:3"] == 0.0 and found["init_weights:4"] == 1
    assert "init_weights:5" not in found  # w.add_(1.0): anonymous


def test_ids_survive_edits_elsewhere_and_value_changes() -> None:
    before = {slot.id: (slot.value, slot.source_line.strip()) for slot in literal_slots(SCRIPT)}
    edited = SCRIPT.replace("def main():\n", "def main():\n    eps = 3.5 * 2.25\n    scale = [0.3, 0.7]\n")
    edited = edited.replace("import math\n", "import math\n\nBIAS = 0.25\n\n\ndef helper():\n    return 9.5\n")
    after = {slot.id: (slot.value, slot.source_line.strip()) for slot in literal_slots(edited)}
    for name, seen in before.items():
        if not name.startswith(("main:", "global:")):
            assert after[name] == seen, name  # every function other than the edited ones keeps its ids
    assert after["helper:0"] == (9.5, "return 9.5") and after["main:0"][0] == 3.5
    # A value that a skip rule would treat differently (a site set to 1) moves no id.
    rewritten = apply_sites(SCRIPT, {"Model.__init__:0": 1, "init_weights:2": 1.0})
    assert [s.id for s in literal_slots(rewritten)] == [s.id for s in literal_slots(SCRIPT)]
    assert apply_sites(rewritten, {"Model.__init__:0": 16}).count("self.hidden = 16 * width") == 1


def test_ranges_follow_the_blocks_documented_rule() -> None:
    source = SCRIPT.replace("def main():\n", "def main(a=0.0, b=0, c=-3, d=-0.25):\n")
    specs = {slot.id: slot.spec() for slot in find_sites(source)}
    std, hidden, steps = specs["init_weights:0"], specs["Model.__init__:0"], specs["main:4"]
    assert (std.kind, std.low, std.high, std.log) == (ParamKind.FLOAT, 0.002, 0.2, True)
    assert (hidden.kind, hidden.low, hidden.high, hidden.log) == (ParamKind.INT, 1, 16, True)
    assert (steps.kind, steps.low, steps.high) == (ParamKind.INT, 250, 4000)
    assert (specs["main:0"].low, specs["main:0"].high) == (0.0, 1.0)  # a named float 0
    assert (specs["main:1"].low, specs["main:1"].high) == (0, 10)  # a named int 0
    assert (specs["main:2"].low, specs["main:2"].high) == (-12, -1)  # int v < 0: [4v, min(-1, v // 4)]
    assert (specs["main:3"].low, specs["main:3"].high, specs["main:3"].log) == (-2.5, -0.025, False)
    assert "line" in std.description and "std=[[0.02]]" in std.description


def test_writing_a_site_changes_its_literal_and_no_other_byte() -> None:
    source = SCRIPT.replace("SOFTCAP = 15.0  # tanh cap", 'SOFTCAP = 15.0; NAME = "é" * 2; SCALE = 1.5  # tanh cap')
    [scale] = [slot.id for slot in find_sites(source) if slot.value == 1.5]
    rewritten = apply_sites(source, {"global:0": 30.0, scale: 0.75, "init_weights:1": -0.125, "Model.__init__:0": 8})
    expected = (source.replace("SOFTCAP = 15.0;", "SOFTCAP = 30.0;").replace("SCALE = 1.5", "SCALE = 0.75")
                .replace("scale=-0.5", "scale=-0.125").replace("4 * width", "8 * width"))
    assert rewritten == expected
    assert apply_sites(source, {"global:0": 15.0}) == source  # an equal value keeps its spelling
    with pytest.raises(ScriptError, match="no literal site nope:3"):
        apply_sites(source, {"nope:3": 1.0})


@pytest.fixture
def script(tmp_path: Path) -> Path:
    path = tmp_path / "train.py"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


def workload(path: Path, **options) -> ScriptWorkload:
    return ScriptWorkload(path, metric="loss", fixed=options.pop("fixed", ()), **options)


def test_sites_join_the_space_only_with_edits_literals_best_ranked_and_capped(script: Path) -> None:
    assert workload(script).space.names == ["LR", "STEPS"] and workload(script).ref.edits == "block"
    literal = workload(script, edits="literals")
    assert literal.space.names[:2] == ["LR", "STEPS"] and set(literal.space.names[2:]) == set(sites())
    ranked = literal.space.names[2:]
    assert ranked[:3] == ["init_weights:0", "init_weights:1", "global:0"]  # init and named floats first, ties in order
    assert ranked[-1] == "main:0"  # an int in main: the least likely knob
    capped = workload(script, edits="literals", max_sites=2)
    assert capped.space.names == ["LR", "STEPS", "init_weights:0", "init_weights:1"]
    assert capped.ref.max_sites == 2 and capped.ref.edits == "literals"


def test_a_user_excludes_sites_by_marker_or_by_fixed(script: Path) -> None:
    fixed = workload(script, edits="literals", fixed=("init_weights:0", "STEPS"))
    assert "init_weights:0" not in fixed.space.names and "Model.__init__:1" not in fixed.space.names
    assert fixed.space.fixed_values["init_weights:0"] == 0.02
    with pytest.raises(CandidateError, match="init_weights:0 is fixed"):
        fixed.space.check({"init_weights:0": 0.05}, fixed.space.baseline_config())
    with pytest.raises(ParamError, match="is fixed"):
        fixed.apply(fixed.editable_source(), {"init_weights:0": 0.05})
    with pytest.raises(WorkloadError, match="nope:1 are not in the hyperparameter block of train or among its literal"):
        workload(script, edits="literals", fixed=("nope:1",))
    with pytest.raises(WorkloadError, match="init_weights:0 are not in the hyperparameter block of train$"):
        workload(script, fixed=("init_weights:0",))  # block edits: a site id is no parameter
    with pytest.raises(ParamError, match="unknown parameter 'Model.__init__:1'"):  # marked: never searched
        fixed.apply(fixed.editable_source(), {"Model.__init__:1": 0.2})


def test_site_values_are_validated_like_block_values(script: Path) -> None:
    literal = workload(script, edits="literals", max_sites=7)
    base, current = literal.editable_source(), literal.space.baseline_config()
    for changes, message in [({"init_weights:0": 5.0}, r"init_weights:0: 5.0 is outside the allowed range \[0.002, 0.2\]"),
                             ({"Model.__init__:0": 2.5}, "Model.__init__:0: expected an integer"),
                             ({"Model.__init__:0": True}, "expected an int, got bool"),
                             ({"global:0": float("inf")}, "is not a finite number"),
                             ({"global:0": "15"}, "expected a float, got str"),
                             ({"main:0": 2000}, "unknown parameter 'main:0'")]:  # ranked beyond the cap
        with pytest.raises(CandidateError, match=message):
            literal.space.check(changes, current)
        with pytest.raises(ParamError, match=message):
            literal.apply(base, changes)
    written = literal.apply(base, {"init_weights:0": 0.05, "LR": 0.1})
    assert "def init_weights(w, std=0.05, scale=-0.5):" in written and "LR = 0.1 " in written
    assert literal.source_for(current) == base  # the baseline configuration is the baseline script, byte for byte


def test_an_unknown_edit_mode_is_refused_and_the_mode_is_recorded_in_the_spec(script: Path) -> None:
    with pytest.raises(ValidationError, match="Input should be 'block', 'literals' or 'code'"):
        WorkloadRef(edits="free")
    assert WorkloadRef(edits="code").edits == "code"
    literal = workload(script, edits="literals", max_sites=5)
    spec = MetaRunSpec.model_validate({"meta_run_id": "x", "budget": {"mode": "fixed", "value": 1},
                                       "workload": literal.ref.model_dump()})
    again = MetaRunSpec.model_validate_json(spec.model_dump_json())
    assert again.edits == "literals" and again.workload.max_sites == 5
    rebuilt = ScriptWorkload(script, metric="loss", edits=again.workload.edits, max_sites=again.workload.max_sites)
    assert rebuilt.space == literal.space
    assert MetaRunSpec.model_validate({"meta_run_id": "y", "budget": {"mode": "fixed", "value": 1}}).edits == "block"


def test_settings_take_the_edit_mode() -> None:
    from infra.settings import load_settings

    with pytest.raises(ValidationError, match="Input should be 'block', 'literals' or 'code'"):
        load_settings(edits="free")
    assert load_settings(edits="code").workload_ref.edits == "code"
    settings = load_settings(edits="literals", max_sites=3)
    assert (settings.workload_ref.edits, settings.workload_ref.max_sites) == ("literals", 3)


def _request(space, **extra) -> ProposalRequest:
    trace = Trace(experiments=[Experiment(index=0, config=space.baseline_config(), outcome=ok(1.0), kept=True,
                                          default_kept=True)])
    return request_for(trace, space, **extra)


def test_prompt_optimiser_arms_and_mlflow_see_sites_like_parameters(script: Path) -> None:
    from mlflow.utils.validation import _validate_param_name

    literal = workload(script, edits="literals", max_sites=3)
    request = _request(literal.space)
    prompt = proposal_messages(request, workload_text="a script")[1]["content"]
    assert "init_weights:0: float in [0.002, 0.2], log scale; baseline 0.02. init, line 12: " \
           "def init_weights(w, std=[[0.02]], scale=-0.5):" in prompt
    assert "A name like init_weights:0 is a number in the script's code" in prompt
    assert "a number in the script's code" not in proposal_messages(_request(workload(script).space),
                                                                    workload_text="a script")[1]["content"]
    seen: set[str] = set()
    for seed in range(30):
        [candidate] = random_proposal(request, seed).candidates
        seen |= set(candidate.changes)
        literal.apply(literal.editable_source(), {**request.state.current.config, **candidate.changes})
    [suggestion] = optimiser_suggestions(request, "tpe", seed=1).candidates
    assert {"init_weights:0", "init_weights:1", "global:0"} <= seen
    assert any(is_site_name(name) for name in suggestion.changes)
    for name in literal.space.names:
        _validate_param_name(f"change.{name}")  # raises for a key MLflow refuses


def test_tinygpt_train_py_sites_are_the_knobs_and_never_the_harness(tmp_path: Path) -> None:
    from workloads.tinygpt.workload import TinyGPT

    tiny = TinyGPT(tmp_path, edits="literals")
    names = tiny.space.names
    top = [name for name in names if is_site_name(name)]
    assert len(top) == 12 and len(find_sites(tiny.editable_source())) == 17
    assert {"GPT._init_weights:0", "GPT._init_weights:1", "build_optimizers:1", "rotary_tables:0",
            "global:0"} <= set(top)
    assert tiny.space.spec("rotary_tables:0").value == 10000.0  # the RoPE base
    assert tiny.space.spec("build_optimizers:1").description.endswith("weight_decay=[[0.0]]),")
    lines = tiny.editable_source().splitlines()
    assert all(lines[slot.line - 1] == slot.source_line for slot in tiny.sites)  # train.py's lines: the harness has none
    assert tiny.ref.edits == "literals"


def test_the_run_report_says_which_edits_the_run_made(tmp_path: Path) -> None:
    import json

    from reports.build import build_meta_run_report
    from tests.unit.report_fixtures import synthetic_trace, write_run

    for run_id, edits in (("sites", "literals"), ("block", "block")):
        folder = write_run(tmp_path / "runs", run_id, synthetic_trace(1, experiments=3, crash_rate=0.0))
        spec = json.loads((folder / "spec.json").read_text())
        spec["workload"].update(edits=edits, max_sites=7)
        (folder / "spec.json").write_text(json.dumps(spec))
        page = build_meta_run_report(tmp_path / "runs", run_id, tmp_path / run_id).read_text()
        assert ("edits literals (up to 7 literal sites)" in page) is (edits == "literals")


def test_run_and_ablation_specs_carry_the_edit_mode_from_the_settings(script: Path, tmp_path: Path) -> None:
    from flows.ablation import AblationSpec
    from infra.resources import build_workload, meta_run_spec_from_settings
    from infra.settings import load_settings

    settings = load_settings(workload=str(script), metric="loss", edits="literals", max_sites=4,
                             state_dir=tmp_path / "state")
    chosen = build_workload(settings)
    assert len(chosen.sites) == 4
    assert meta_run_spec_from_settings(settings, chosen, "m", "m").edits == "literals"
    spec = AblationSpec.from_settings(settings, chosen, ablation_id="a", arms=["A", "tpe"], repeats=1)
    assert {(s.edits, s.workload.max_sites) for s in (spec.meta_run_spec(arm, 0) for arm in spec.arm_specs())} \
        == {("literals", 4)}
