"""The proposal prompt: the facts it states (per-parameter tries, keeps, crashes and gains, untried parameters, the
best configurations, the current point), in fewer tokens, and ordered so that consecutive prompts share a prefix."""

from __future__ import annotations

import json
from pathlib import Path

from search.config import SearchConfig
from search.iteration import Candidate
from search.prompts import proposal_messages, value_text
from search.space import SearchSpace
from search.trace import RunOutcome
from tests.unit.script_fixture import SCRIPT
from tests.unit.traces import build_trace, crash, ok, request_for
from workloads.hyperblock import parse_block

SPACE = SearchSpace(params=parse_block(SCRIPT).params)
NO_PROPOSAL = RunOutcome(status="invalid", error_tail="no valid proposal: already tried")


def prompt(trace, window: int = 8, **extra) -> str:
    messages = proposal_messages(request_for(trace, SPACE, SearchConfig(history_window=window), **extra),
                                 workload_text="toy")
    return messages[1]["content"]


def common_prefix(a: str, b: str) -> int:
    return next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))


def test_older_experiments_are_summarised_per_parameter_and_recent_ones_listed() -> None:
    steps = [({"DEPTH": 2}, ok(2.9), True), ({"DEPTH": 3}, crash(), False), ({"MATRIX_LR": 0.01}, ok(2.7), True),
             ({"MATRIX_LR": 0.02}, ok(2.8), False), ({"DEPTH": 5}, ok(2.95), False), ({"OPTIMIZER": "muon"}, ok(2.6), True)]
    text = prompt(build_trace(steps), window=2)
    older, recent = text.split("\n\nExperiments (changes")
    assert "Experiments #1-#4, per parameter changed (tries, kept, crashed, best gain):" in older
    assert "DEPTH: 2, 1, 1, +0.1000" in older and "MATRIX_LR: 2, 1, 0, +0.2000" in older  # gains over the point of the time
    assert "OPTIMIZER" not in older.split("per parameter changed")[1]  # changed only in the shown window
    history = recent.split("\n\n")[0]
    assert "#5 DEPTH=5 -> 2.9500 discarded" in history and '#6 OPTIMIZER="muon" -> 2.6000 kept' in history
    assert "#0 baseline -> 3.0000" in history and "#3 " not in history  # listed in full only inside the window


def test_untried_parameters_are_named_or_named_by_the_tried_ones() -> None:
    two = prompt(build_trace([({"DEPTH": 2}, ok(2.9), False), ({"MATRIX_LR": 0.01}, ok(2.9), False)]))
    assert "Never tried yet: OPTIMIZER, ADAM_BETAS, USE_BIAS." in two
    one = prompt(build_trace([({"DEPTH": 2}, ok(2.9), False)]))  # 4 untried: more than twice the tried ones
    assert "Never tried yet: every parameter except DEPTH." in one
    every = [({"DEPTH": 2, "MATRIX_LR": 0.01, "OPTIMIZER": "muon"}, ok(2.9), False),
             ({"ADAM_BETAS": [0.8, 0.9], "USE_BIAS": True}, ok(2.8), False)]
    assert "Never tried yet" not in prompt(build_trace(every))
    assert "Never tried yet: DEPTH, MATRIX_LR, OPTIMIZER, ADAM_BETAS, USE_BIAS." in prompt(build_trace([]))


def test_the_best_configurations_mark_the_current_one_and_say_the_best_value_once() -> None:
    trace = build_trace([({"DEPTH": 2}, ok(2.9), True), ({"MATRIX_LR": 0.01}, ok(2.95), False),
                         ({"OPTIMIZER": "muon"}, ok(2.7), True)])
    text = prompt(trace)
    assert 'Best configurations so far (differences from the baseline -> val_bpb):\n#3 DEPTH=2, OPTIMIZER="muon" -> ' \
           '2.7000 (current)\n#1 DEPTH=2 -> 2.9000\n#2 DEPTH=2, MATRIX_LR=0.01 -> 2.9500' in text
    assert "The current configuration" not in text and "Best val_bpb so far" not in text  # both said by the list
    nothing_kept = prompt(build_trace([({"DEPTH": 2}, ok(3.1), False)]))
    assert "The current configuration is the baseline (val_bpb 3.0000)." in nothing_kept
    assert "Best val_bpb so far: 3.0000." in nothing_kept  # the baseline is the best: not in the list


def test_a_current_point_outside_the_best_few_is_spelled_out() -> None:
    steps = [({"DEPTH": 2}, ok(2.5), False), ({"DEPTH": 3}, ok(2.6), False), ({"DEPTH": 5}, ok(2.7), False),
             ({"MATRIX_LR": 0.01}, ok(2.9), True)]  # kept (better than the current point), fourth best
    text = prompt(build_trace(steps))
    assert "The current configuration (#4, val_bpb 2.9000) is the baseline with MATRIX_LR=0.01." in text
    assert "(current)" not in text and "Best val_bpb so far" not in text


def test_iterations_without_a_valid_proposal_take_one_line() -> None:
    steps = [({"DEPTH": 2}, ok(2.9), True), *[({}, NO_PROPOSAL, False)] * 5, ({"DEPTH": 3}, crash(), False)]
    text = prompt(build_trace(steps))
    assert "#2-#6 no valid proposal, nothing trained\n#7 DEPTH=3 -> crash discarded" in text
    assert text.count("no valid proposal") == 1
    assert "The last run ended with status crash. Its error output:\nTraceback...\nRuntimeError: boom" in text


def test_numbers_in_lists_are_rounded_too() -> None:
    assert value_text([0.9088707271914334, 0.9319562767745817]) == "[0.9089, 0.932]"
    assert value_text((1, "a", True)) == '[1, "a", true]'
    suggested = [Candidate(changes={"ADAM_BETAS": [0.876223485223718, 0.5613644994869077]}, proposed_by="tpe")]
    text = prompt(build_trace([]), suggested=suggested, optimiser_note="TPE fitted to 1 experiment")
    assert "A) ADAM_BETAS=[0.8762, 0.5614]" in text


def test_consecutive_iterations_re_read_only_a_short_tail() -> None:
    """What the local model evaluates again each iteration: from the first character that differs from the previous
    prompt to the end. The recorded make-run trace, decision points 7-13 of generation 1."""
    from search.context import DecisionPoint
    from search.iteration import ProposalRequest
    from search.run_spec import MetaRunSpec
    from search.trace import Trace
    from workloads.tinygpt.workload import TinyGPT

    fixture = Path(__file__).resolve().parents[2] / "benchmarks" / "fixtures" / "level2" / "tinygpt"
    spec = MetaRunSpec.model_validate_json((fixture / "spec.json").read_text())
    trace = Trace.model_validate_json((fixture / "trace.json").read_text())
    workload = TinyGPT(Path("/nonexistent-cache"), device="cpu")
    generation = trace.generations[1]
    texts = []
    for cut in range(generation.start, len(trace.experiments) + 1):
        local = trace.with_experiments(trace.experiments[:cut])
        point = DecisionPoint(meta_run_id="unit", run_seed=0, generation=1, track=0, iteration=cut - generation.start,
                              start=generation.start, config=generation.config)
        request = ProposalRequest(point=point, local=local, state=local.state(), space=workload.space)
        messages = proposal_messages(request, workload_text=workload.describe(spec.budget.mode))
        texts.append(messages[0]["content"] + messages[1]["content"])
    tails = [len(b) - common_prefix(a, b) for a, b in zip(texts, texts[1:])]
    # Before: 654-655 characters, 894 when the shown window moved (at the last point), of 4306-4478: the
    # per-parameter table, the 16 untried names, the current point and the best value came after the history.
    assert max(tails[:-1]) < 350 and tails[-1] < 600
    assert max(len(t) for t in texts) < 4000
    assert all("FINAL_LR_FRAC=0.1 -> 2.9484 (current)" in t for t in texts)
    assert json.loads(spec.model_dump_json())["search"]["history_window"] == 8  # the window moves at the last point
