"""Proposal prompts fitted to the model's context window (issue 22). The fixture is the literals meta-run that
aborted: its proposal prompt for generation 1, iteration 7 took 4103 tokens of a 4096-token context
(fixtures/context_overflow: the run's spec and its trace, without the training logs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from search.context import DecisionPoint
from search.iteration import ProposalRequest
from search.prompt_budget import estimate_tokens, prompt_budget
from search.prompts import FITS, changes_text, proposal_messages
from search.run_spec import MetaRunSpec
from search.tpe_proposal import optimiser_note, optimiser_suggestions
from search.trace import Trace
from tests.unit.test_prompts import SPACE
from tests.unit.traces import build_trace, ok, request_for
from workloads.tinygpt.workload import TinyGPT

FIXTURE = Path(__file__).resolve().parent / "fixtures" / "context_overflow"
CONTEXT = 4096  # BILEVEL_LLM_CONTEXT of the aborted run
ANSWER_TOKENS = 256  # tasks/propose.py PROPOSAL_MAX_TOKENS
MODEL_COUNT = 4103  # what the local model counted for the aborted prompt ("Requested tokens (4103)")


@pytest.fixture(scope="module")
def aborted() -> tuple[ProposalRequest, str]:
    """The hybrid's request at the decision that aborted, with the optimiser's suggestions as the run made them."""
    spec = MetaRunSpec.model_validate_json((FIXTURE / "spec.json").read_text())
    trace = Trace.model_validate_json((FIXTURE / "trace.json").read_text())
    workload = TinyGPT(Path("/nonexistent-cache"), device="cpu", edits=spec.workload.edits,
                       max_sites=spec.workload.max_sites)
    generation = trace.generations[-1]
    point = DecisionPoint(meta_run_id=spec.meta_run_id, run_seed=spec.seed, generation=generation.generation, track=0,
                          iteration=len(trace.experiments) - generation.start, start=generation.start,
                          config=generation.config)
    assert (point.generation, point.iteration) == (1, 7)
    request = ProposalRequest(point=point, local=trace, state=trace.state(), space=workload.space,
                              near=generation.config.near_repeat)
    suggested = optimiser_suggestions(request, "tpe", point.hook_seed, count=2)
    request = request.model_copy(update={"suggested": suggested.candidates, "optimiser_note": optimiser_note(request, "tpe")})
    return request, workload.describe(spec.budget.mode)


def test_the_budget_leaves_room_for_the_answer_and_a_re_ask() -> None:
    assert prompt_budget(None, ANSWER_TOKENS) is None  # unknown context window: no limit
    budget = prompt_budget(CONTEXT, ANSWER_TOKENS)
    assert budget is not None and budget + ANSWER_TOKENS < CONTEXT


def test_the_estimate_is_not_below_the_models_count_of_the_aborted_prompt(aborted) -> None:
    request, text = aborted
    full = proposal_messages(request, workload_text=text)
    assert MODEL_COUNT <= estimate_tokens(full) <= MODEL_COUNT * 1.15


def test_the_aborted_prompt_is_fitted_to_the_context_and_keeps_the_best_experiment(aborted) -> None:
    request, text = aborted
    budget = prompt_budget(CONTEXT, ANSWER_TOKENS)
    full = proposal_messages(request, workload_text=text)
    fitted = proposal_messages(request, workload_text=text, token_budget=budget)
    assert budget is not None and estimate_tokens(full) > budget >= estimate_tokens(fitted)
    assert fitted[0] == full[0]  # the rules and the example stay as they are
    user = fitted[1]["content"]
    history = user.split("Experiments (changes from")[1].split("\n\n")[0]
    assert "\n#15 DEPTH=1, ASPECT_RATIO=17, " in history and "-> 4.1277 kept" in history  # the best, and the latest
    assert "-> 4.1277 (current)" in user  # still the first of the best configurations
    assert ", +17 more -> 4.1277 kept" in history  # 25 changes, listed up to 8
    assert "A) DEPTH=3, ASPECT_RATIO=10, " in user and user.endswith("Propose 1 to 4 changes to the current configuration.")
    for name in request.space.names:  # every parameter can still be changed: each is in the table
        assert f"\n{name}: " in user


def test_a_small_budget_keeps_the_baseline_the_best_and_the_latest_experiments(aborted) -> None:
    request, text = aborted
    smallest = proposal_messages(request, workload_text=text, token_budget=1)  # nothing fits: the most compact form
    user = smallest[1]["content"]
    history = user.split("Experiments (changes from")[1].split("\n\n")[0].splitlines()[1:]
    assert FITS[-1].history_rows == 2 and [line.split(" ")[0] for line in history] == ["#0", "#14", "#15"]
    assert "line 119: nn.init.normal_" not in user and "transformer blocks; width" not in user
    assert estimate_tokens(smallest) < 0.7 * estimate_tokens(proposal_messages(request, workload_text=text))


def test_the_best_experiment_stays_listed_when_it_is_not_among_the_latest() -> None:
    steps = [({"DEPTH": 2}, ok(2.0), True), *[({"MATRIX_LR": 0.001 * k}, ok(2.5), False) for k in range(2, 12)]]
    request = request_for(build_trace(steps), SPACE)
    full = proposal_messages(request, workload_text="toy")
    compact = proposal_messages(request, workload_text="toy", token_budget=estimate_tokens(full) - 1)
    history = compact[1]["content"].split("Experiments (changes from")[1].split("\n\n")[0].splitlines()[1:]
    assert history[:2] == ["#0 baseline -> 3.0000", "#1 DEPTH=2 -> 2.0000 kept"]
    assert history[-1].startswith("#11 MATRIX_LR=0.011 -> ") and len(history) <= 7


def test_a_prompt_within_the_budget_is_left_exactly_as_it_is() -> None:
    steps = [({"DEPTH": 2}, ok(2.9), True), ({"MATRIX_LR": 0.01}, ok(2.95), False)]
    request = request_for(build_trace(steps), SPACE)
    full = proposal_messages(request, workload_text="toy")
    assert proposal_messages(request, workload_text="toy", token_budget=estimate_tokens(full)) == full
    assert proposal_messages(request, workload_text="toy", token_budget=prompt_budget(CONTEXT, ANSWER_TOKENS)) == full


def test_many_changes_are_listed_up_to_a_count() -> None:
    changes = {f"P{i}": i for i in range(6)}
    assert changes_text(changes) == "P0=0, P1=1, P2=2, P3=3, P4=4, P5=5"
    assert changes_text(changes, 4) == "P0=0, P1=1, P2=2, P3=3, +2 more"
    assert changes_text(changes, 6) == changes_text(changes) and changes_text({}, 2) == "no change"
