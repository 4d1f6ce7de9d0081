"""Free-form edits (edits = code): parsing and bounds of SEARCH/REPLACE answers, applying them, the refusals (a SEARCH
that does not match once, a read-only file, a result that does not parse, a repeat on the normalised program or
diff), the workload's block rules and sources by key, and the one fix attempt of an iteration whose edit crashed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from search.code_edits import (
    MAX_ANSWER_CHARS,
    MAX_BLOCK_CHARS,
    MAX_BLOCKS,
    SOURCE_KEY,
    CodeEditError,
    apply_blocks,
    diff_key,
    make_edit,
    normalised_diff,
    parse_answer,
    program_key,
    source_key,
)
from search.config import SearchConfig
from search.context import DecisionPoint
from search.hooks import NoHooks
from search.iteration import Candidate, ProposalBatch, ProposalRequest, run_iteration
from search.objective import Objective
from search.trace import Experiment, RunOutcome, Trace
from tasks.propose_code import code_candidate, fixed_candidate
from workloads.script import ScriptWorkload

FIT_CURVE = Path(__file__).resolve().parents[2] / "examples" / "fit_curve" / "train.py"
BASE = FIT_CURVE.read_text()
INIT = "    weights = rng.normal(0.0, 0.01, size=DEGREE + 1)\n"


def block(search: str, replace: str, file: str | None = None) -> str:
    head = f"{file}\n" if file else ""
    return f"{head}<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def answer(*blocks: str, hypothesis: str = "zero init") -> str:
    return f"HYPOTHESIS: {hypothesis}\n" + "".join(blocks)


ZERO_INIT = answer(block(INIT, "    weights = np.zeros(DEGREE + 1)\n"))


def edit_of(text: str, **kwargs: Any):
    return make_edit(BASE, text, script_name="train.py", read_only=("harness.py",), **kwargs)


# -- parse and apply ---------------------------------------------------------------------------------------------


def test_an_answer_parses_into_blocks_and_a_hypothesis_fences_and_file_line_included() -> None:
    text = "Here is my edit.\nHYPOTHESIS: zero init converges faster\n```python\ntrain.py\n" + \
           block(INIT, "    weights = np.zeros(DEGREE + 1)\n").removesuffix("\n") + "\n```\n" + block("a\n", "")
    blocks, hypothesis = parse_answer(text)
    assert hypothesis == "zero init converges faster"
    assert [(b.file, b.search, b.replace) for b in blocks] == [
        ("train.py", INIT, "    weights = np.zeros(DEGREE + 1)\n"), (None, "a\n", "")]


def test_a_valid_edit_applies_parses_and_is_keyed_by_content() -> None:
    edit, hypothesis = edit_of(ZERO_INIT)
    assert hypothesis == "zero init"
    assert edit.source == BASE.replace(INIT, "    weights = np.zeros(DEGREE + 1)\n")
    assert edit.base == source_key(BASE) and edit.key == source_key(edit.source) and edit.blocks == 1
    assert normalised_diff(BASE, edit.source) == ("-    weights = rng.normal(0.0, 0.01, size=DEGREE + 1)\n"
                                                  "+    weights = np.zeros(DEGREE + 1)")


def test_blocks_apply_in_order_each_to_the_result_of_the_previous() -> None:
    text = answer(block(INIT, "    weights = np.zeros(DEGREE + 1)\n"),
                  block("    weights = np.zeros(DEGREE + 1)\n", "    weights = np.ones(DEGREE + 1) * 0.1\n"))
    edit, _ = edit_of(text)
    assert "weights = np.ones(DEGREE + 1) * 0.1" in edit.source and "np.zeros(DEGREE + 1)" not in edit.source


@pytest.mark.parametrize("text, expected", [
    (answer(block("    weights = rng.normal(0.0, 0.02, size=DEGREE + 1)\n", "x = 1\n")),
     "block 1's SEARCH text does not occur in train.py (first line 'weights = rng.normal(0.0, 0.02, size=DEGREE + 1)')"),
    (answer(block("weights = rng.normal(0.0, 0.01, size=DEGREE + 1)\n", "weights = 0\n")),
     "does not occur in train.py"),  # the indentation is part of the text
    (answer(block('    print("---")\n', '    print("--")\n'), block("        weights = weights - velocity\n",
                                                                      "        weights = weights + velocity\n")),
     "block 2's SEARCH text does not occur"),
])
def test_a_search_that_does_not_match_is_refused_naming_the_block(text: str, expected: str) -> None:
    with pytest.raises(CodeEditError, match="copy the lines exactly") as refused:
        edit_of(text)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_a_search_that_matches_twice_is_refused() -> None:
    twice = "import numpy as np\nx = 1\ny = 2\nx = 1\n"
    with pytest.raises(CodeEditError, match="occurs 2 times in train.py; include more surrounding lines"):
        apply_blocks(twice, parse_answer(answer(block("x = 1\n", "x = 3\n")))[0], script_name="train.py")


def test_an_edit_of_the_harness_is_refused_and_only_the_script_is_editable() -> None:
    with pytest.raises(CodeEditError, match="block 1 edits harness.py, which is read-only .*only train.py may be edited"):
        edit_of(answer(block("EVAL_BYTES = 32768\n", "EVAL_BYTES = 8\n", file="workloads/tinygpt/harness.py")))
    with pytest.raises(CodeEditError, match="block 1 edits data.py, which is not editable"):
        edit_of(answer(block("x\n", "y\n", file="data.py")))
    edit, _ = edit_of(answer(block(INIT, "    weights = np.zeros(DEGREE + 1)\n", file="examples/fit_curve/train.py")))
    assert "np.zeros" in edit.source  # the script itself, by any path


def test_an_edit_that_does_not_parse_is_refused_with_its_line() -> None:
    with pytest.raises(CodeEditError, match=r"the edited train.py does not parse: line 2\d: .*valid Python"):
        edit_of(answer(block(INIT, "    weights = rng.normal(0.0, 0.01, size=DEGREE + 1\n")))


def test_an_edit_of_comments_or_formatting_only_changes_nothing() -> None:
    with pytest.raises(CodeEditError, match="changes only comments or formatting"):
        edit_of(answer(block(INIT, "    weights = rng.normal(0.0, 0.01,   size=DEGREE + 1)  # scale\n")))


@pytest.mark.parametrize("text, expected", [
    ("", "the answer is empty"),
    ("HYPOTHESIS: x\nI would lower the rate.", "no SEARCH/REPLACE block found"),
    ("x" * (MAX_ANSWER_CHARS + 1), f"more than {MAX_ANSWER_CHARS}"),
    (answer(*[block(f"line{i}\n", "y\n") for i in range(MAX_BLOCKS + 1)]), f"more than {MAX_BLOCKS} SEARCH/REPLACE"),
    (answer(block("a\n" * (MAX_BLOCK_CHARS // 2 + 1), "b\n")), f"SEARCH text has {MAX_BLOCK_CHARS + 2} characters"),
    (answer(block("a\n", "b\n" * (MAX_BLOCK_CHARS // 2 + 1))), "REPLACE text has"),
    (answer(block("", "x = 1\n")), "block 1 has an empty SEARCH part"),
    ("<<<<<<< SEARCH\nx = 1\n=======\nx = 2\n", "block 1 is not closed: a '>>>>>>> REPLACE' line is missing"),
    ("<<<<<<< SEARCH\nx = 1\n<<<<<<< SEARCH\n", "block 1 is not closed: a '=======' line is missing"),
])
def test_malformed_and_oversized_answers_are_refused_in_one_line(text: str, expected: str) -> None:
    with pytest.raises(CodeEditError) as refused:
        edit_of(text)
    assert expected in str(refused.value) and "\n" not in str(refused.value)


def test_the_same_edit_with_other_comments_and_formatting_is_a_repeat() -> None:
    first, _ = edit_of(ZERO_INIT)
    again = answer(block(INIT, "    weights = np.zeros( DEGREE+1 )   # start from zero\n"))
    second, _ = edit_of(again)
    assert second.key != first.key  # different text...
    assert (second.program_key, second.diff_key) == (first.program_key, first.diff_key)  # ...the same change
    with pytest.raises(CodeEditError, match="already tried in #3; propose a different change"):
        edit_of(again, tried_diffs={first.diff_key: "#3"})
    with pytest.raises(CodeEditError, match="the same program as #3, already run"):
        edit_of(again, tried={first.program_key: "#3"})
    other, _ = edit_of(answer(block(INIT, "    weights = np.ones(DEGREE + 1)\n")))
    assert other.diff_key != first.diff_key and other.program_key != first.program_key


def test_the_diff_key_ignores_where_the_change_sits() -> None:
    moved = BASE.replace("import numpy as np\n", "import numpy as np\nEXTRA = 1\n")
    edited = BASE.replace(INIT, "    weights = np.zeros(DEGREE + 1)\n")
    edited_moved = moved.replace(INIT, "    weights = np.zeros(DEGREE + 1)\n")
    assert diff_key(BASE, edited) == diff_key(moved, edited_moved)
    assert program_key(edited) != program_key(edited_moved)


# -- the workload: block values, fixed names, sources by key ------------------------------------------------------


@pytest.fixture()
def work() -> ScriptWorkload:
    return ScriptWorkload(FIT_CURVE, metric="val_mse", fixed=("SEED",), budget_param="STEPS", edits="code")


def _request(work: ScriptWorkload, trace: Trace | None = None, offered: list[Candidate] | None = None) -> ProposalRequest:
    trace = trace or _trace(work)
    point = DecisionPoint(meta_run_id="unit", run_seed=0, generation=0, track=0, iteration=len(trace) - 1, start=1,
                          config=SearchConfig())
    return ProposalRequest(point=point, local=trace, state=trace.state(), space=work.space, offered=offered or [])


def _trace(work: ScriptWorkload, *experiments: Experiment) -> Trace:
    baseline = Experiment(index=0, config=work.space.baseline_config(), outcome=RunOutcome(status="ok", value=0.5),
                          kept=True, default_kept=True)
    return Trace(objective=Objective(name="val_mse"), experiments=[baseline, *experiments])


def test_an_edit_becomes_a_candidate_whose_config_names_its_source_and_states_the_block(work: ScriptWorkload) -> None:
    rate = next(line for line in BASE.splitlines(True) if line.startswith("LEARNING_RATE = 0.05 "))
    text = answer(block(INIT, "    weights = np.zeros(DEGREE + 1)\n"), block(rate, rate.replace("0.05 ", "0.1  ")))
    candidate = code_candidate(text, _request(work), work, BASE)
    assert candidate.code is not None
    assert candidate.changes == {"LEARNING_RATE": 0.1, SOURCE_KEY: candidate.code.key}
    work.remember_source(candidate.code.source)
    config = {**work.space.baseline_config(), **candidate.changes}
    assert work.source_for(config) == candidate.code.source
    # a block change on top of the edited script (a mechanism's, a control arm's) keeps the edit
    moved = work.source_for({**config, "MOMENTUM": 0.5})
    assert "np.zeros(DEGREE + 1)" in moved and "MOMENTUM = 0.5" in moved


@pytest.mark.parametrize("search, replace, expected", [
    ("DEGREE = 3 ", "DEGREES = 3 ", "keep the hyperparameter block's names as they are"),
    ("SEED = 0 ", "SEED = 5 ", "SEED is fixed and may not be changed"),
    ("DEGREE = 3 ", "DEGREE = 40 ", "DEGREE"),  # out of its declared range [1, 12]
])
def test_an_edit_of_the_block_follows_the_blocks_rules(work: ScriptWorkload, search: str, replace: str,
                                                        expected: str) -> None:
    line = next(line for line in BASE.splitlines(True) if line.startswith(search))
    with pytest.raises(ValueError, match=expected):
        code_candidate(answer(block(line, line.replace(search, replace))), _request(work), work, BASE)


def test_the_budget_literal_may_be_edited_harmlessly_it_is_set_by_the_system(work: ScriptWorkload) -> None:
    line = next(line for line in BASE.splitlines(True) if line.startswith("STEPS = 400"))
    text = answer(block(line, line.replace("400", "500")), block(INIT, "    weights = np.zeros(DEGREE + 1)\n"))
    assert set(code_candidate(text, _request(work), work, BASE).changes) == {SOURCE_KEY}


def test_an_unknown_source_key_is_a_clear_error(work: ScriptWorkload) -> None:
    with pytest.raises(ValueError, match="no edited script with source key 'feedbeef' is known; read the run's trace"):
        work.source_for({**work.space.baseline_config(), SOURCE_KEY: "feedbeef"})
    assert work.source_for({**work.space.baseline_config(), SOURCE_KEY: source_key(BASE)}) == BASE


def test_a_tried_edit_in_the_trace_or_this_round_is_refused(work: ScriptWorkload) -> None:
    first = code_candidate(ZERO_INIT, _request(work), work, BASE)
    tried = Experiment(index=1, changes=first.changes, config={**work.space.baseline_config(), **first.changes},
                       outcome=RunOutcome(status="ok", value=0.6), code=first.code)
    again = answer(block(INIT, "    weights = np.zeros(DEGREE+1)  # again\n"))
    with pytest.raises(ValueError, match="same program as #1"):
        code_candidate(again, _request(work, _trace(work, tried)), work, BASE)
    with pytest.raises(ValueError, match="same program as a candidate of this round"):
        code_candidate(again, _request(work, offered=[first]), work, BASE)
    # the trace keeps the edit: a JSON round trip gives it back, source and keys included
    restored = Trace.model_validate_json(_trace(work, tried).model_dump_json())
    assert restored.code_edits() == [(1, first.code)]


def test_a_fix_edits_the_crashed_script_and_is_recorded_as_one_edit_of_the_base(work: ScriptWorkload) -> None:
    crashed = code_candidate(answer(block(INIT, "    weights = np.zeros(DEGREE)\n"), hypothesis="no bias weight"),
                             _request(work), work, BASE)
    fix = answer(block("    weights = np.zeros(DEGREE)\n", "    weights = np.zeros(DEGREE + 1)\n"), hypothesis="")
    fixed = fixed_candidate(fix, _request(work), work, BASE, crashed)
    assert fixed.code is not None and crashed.code is not None
    assert fixed.code.base == source_key(BASE) and fixed.code.fixed_after == crashed.code.key
    assert fixed.code.diff_key == diff_key(BASE, BASE.replace(INIT, "    weights = np.zeros(DEGREE + 1)\n"))
    assert fixed.hypothesis == "no bias weight"  # the idea it fixes
    with pytest.raises(ValueError, match="does not occur in train.py"):  # blocks apply to the crashed script
        fixed_candidate(ZERO_INIT, _request(work), work, BASE, crashed)


# -- the iteration: one fix attempt after a crash -----------------------------------------------------------------


class CodeFake:
    """A proposer of one free-form edit, with a fix that answers `fix_answer` (None: no valid fix)."""

    def __init__(self, work: ScriptWorkload, first: str, fix_answer: str | None) -> None:
        self.work, self.first, self.fix_answer = work, first, fix_answer
        self.fixes = 0

    def __call__(self, request: ProposalRequest) -> ProposalBatch:
        candidate = code_candidate(self.first, request, self.work, BASE)
        self.work.remember_source(candidate.code.source)  # type: ignore[union-attr]
        return ProposalBatch(candidates=[candidate], attempts=1)

    def fix(self, request: ProposalRequest, crashed: Candidate, outcome: RunOutcome) -> ProposalBatch:
        self.fixes += 1
        assert "IndexError" in (outcome.error_tail or "")
        if self.fix_answer is None:
            return ProposalBatch(attempts=2, errors=["block 1's SEARCH text does not occur"])
        candidate = fixed_candidate(self.fix_answer, request, self.work, BASE, crashed)
        self.work.remember_source(candidate.code.source)  # type: ignore[union-attr]
        return ProposalBatch(candidates=[candidate], attempts=1)


def _trainer(work: ScriptWorkload, runs: list[str]):
    """Crashes a script whose weights have DEGREE entries (a shape error), else measures 0.4."""

    def train(config: dict[str, Any], purpose: str, seed: int) -> RunOutcome:
        source = work.source_for(config)
        runs.append(source)
        if "np.zeros(DEGREE)\n" in source:
            return RunOutcome(status="crash", error_tail="Traceback (most recent call last):\nIndexError: shapes")
        return RunOutcome(status="ok", value=0.4)

    return train


@pytest.mark.parametrize("fix_works", [True, False])
def test_a_crashed_edit_gets_one_fix_attempt(work: ScriptWorkload, fix_works: bool) -> None:
    broken = answer(block(INIT, "    weights = np.zeros(DEGREE)\n"), hypothesis="no bias weight")
    fix = answer(block("    weights = np.zeros(DEGREE)\n", "    weights = np.zeros(DEGREE + 1)\n")) if fix_works else None
    proposer, runs = CodeFake(work, broken, fix), []
    trace = _trace(work)
    request = _request(work, trace)
    experiment = run_iteration(local=trace, state=trace.state(), space=work.space, point=request.point,
                               hooks=NoHooks(), proposer=proposer, train=_trainer(work, runs),
                               fix=proposer.fix)
    assert proposer.fixes == 1  # one attempt, whatever it gives
    assert experiment.code is not None
    if fix_works:
        assert len(runs) == 2 and "np.zeros(DEGREE + 1)" in runs[1]
        assert experiment.outcome.status == "ok" and experiment.kept
        assert experiment.config[SOURCE_KEY] == experiment.code.key == source_key(runs[1])
        assert "the first version crashed (IndexError: shapes); trained its fix" in experiment.note
        assert experiment.proposal_attempts == 2
    else:
        assert len(runs) == 1 and experiment.outcome.status == "crash" and not experiment.kept
        assert "the fix attempt gave no valid edit" in experiment.note
        assert experiment.proposal_errors == ["fix: block 1's SEARCH text does not occur"]
    # a kept edit is the base of later edits: the state's current config names its source
    after = trace.appended(experiment).state()
    assert (after.current.config.get(SOURCE_KEY) == experiment.code.key) is fix_works


def test_block_values_on_two_different_scripts_are_never_near_repeats(work: ScriptWorkload) -> None:
    config = work.space.baseline_config()
    assert work.space.distance({**config, SOURCE_KEY: "a"}, {**config, SOURCE_KEY: "b"}) == 1.0
    assert work.space.distance({**config, SOURCE_KEY: "a"}, {**config, SOURCE_KEY: "a"}) == 0.0
    request = _request(work, _trace(work, Experiment(index=1, changes={SOURCE_KEY: "a"}, config={**config, SOURCE_KEY: "a"},
                                                     outcome=RunOutcome(status="ok", value=0.6))))
    current = {**config, SOURCE_KEY: "b"}  # a mechanism moves a block value on top of another script
    assert work.space.check({"MOMENTUM": 0.01}, current, tried=request.tried, near=0.5) == {"MOMENTUM": 0.01}
