"""A proposal prompt over the model's context window never aborts a run (issue 22: a literals meta-run died at
g1 i7 on "Requested tokens (4103) exceed context window of 4096"). The hybrid meta-run below runs the toy workload
for real with the scripted LLM: the proposal of iteration 1 gets the context-window error, and the iteration trains
the optimiser's suggestion instead; the prompts sent are fitted to the context window the client reports. Level 1.5
and Level 2 refuse an overflowing prompt the same way (the rule decides; the session ends without a mechanism).
Other LLM errors, and an overflow where the caller did not allow it, still fail as before."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from flows.meta_run import meta_run
from infra.llm import LLMClient, LLMContextError, LLMError
from infra.runs import RunFolder
from infra.scripted_llm import register_scripted_provider
from infra.store import MechanismStore
from search.config import SearchConfig
from search.prompt_budget import prompt_budget
from search.run_spec import Budget, MetaRunSpec, WorkloadRef
from tasks.llm_call import converse
from tasks.propose import PROPOSAL_MAX_TOKENS, propose
from tests.fixtures_s3 import s3_server  # noqa: F401  (fixture)
from tests.integration.scripted import llm_calls, proposal, scripted_settings, wired_resources, write_script
from tests.unit.test_prompts import SPACE
from tests.unit.traces import build_trace, ok, request_for

pytestmark = pytest.mark.integration

OVERFLOW = {"fail_times": 99, "error": "context", "then": "never answered"}
# Smaller than any toy prompt: every proposal prompt is rendered in its most compact form (what fits a budget is
# tested on the recorded literals trace, tests/unit/test_prompt_budget.py).
CONTEXT_TOKENS = 600
DESCRIPTION = "step size; the best is near 0.1"  # LEARNING_RATE's description, left out of the most compact form


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("overflow")
    script = write_script(
        tmp / "answers.json",
        answers={"propose": [proposal({"LEARNING_RATE": 0.05}, "faster"), proposal({"MOMENTUM": 0.8}, "less momentum"),
                             proposal({"LEARNING_RATE": 0.02}, "slower"), proposal({"WIDTH": 64}, "wider")]},
        by_key={"propose/g0/t0/i1/*": OVERFLOW},
    )
    settings = scripted_settings(tmp, script)
    spec = MetaRunSpec(meta_run_id="overflow-test", workload=WorkloadRef(reference="toy"), generations=1, iterations=4,
                       levels=["1"], budget=Budget(mode="steps", value=100), seed=0, proposer="hybrid")
    res = wired_resources(settings)
    res.llm.context_tokens = CONTEXT_TOKENS  # as litellm's model map gives it for the local model
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = records.append  # type: ignore[method-assign]
    logger = logging.getLogger("tasks.llm_call")
    logger.addHandler(handler)
    try:
        summary = meta_run(spec, res)
    finally:
        logger.removeHandler(handler)
    return spec, settings, summary, script, records


def test_the_overflowing_proposal_trains_the_optimisers_suggestion_and_the_run_finishes(finished) -> None:
    spec, settings, summary, _, records = finished
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    assert [e.iteration for e in trace.decided] == [0, 1, 2, 3]
    overflowed = trace.decided[1]
    assert overflowed.proposed_by == "tpe" and overflowed.outcome.status == "ok" and overflowed.changes
    assert all(e.proposed_by.startswith("llm") for e in trace.decided if e.iteration != 1)
    calls = [c for c in llm_calls(settings) if c["call_key"].startswith("propose/g0/t0/i1/")]
    assert [c.get("error") for c in calls] == ["ContextWindowExceededError"]  # neither retried nor re-asked
    warnings = [r.getMessage() for r in records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "context window" in warnings[0] and "BILEVEL_LLM_CONTEXT" in warnings[0]
    assert "propose/g0/t0/i1/r0/c0/a0" in warnings[0]


def test_the_proposal_prompts_are_fitted_to_the_context_window_the_client_reports(finished) -> None:
    _, _, _, script, _ = finished
    requests = [json.loads(line) for line in Path(f"{script}.requests.jsonl").read_text().splitlines()]
    prompts = [r["messages"][1]["content"] for r in requests if r["purpose"] == "propose"]
    assert len(prompts) == 4 and prompt_budget(CONTEXT_TOKENS, PROPOSAL_MAX_TOKENS) == 216
    assert all(DESCRIPTION not in prompt for prompt in prompts)
    assert all("LEARNING_RATE: float in [0.0001, 1], log scale; baseline 0.01\n" in prompt for prompt in prompts)


@pytest.fixture
def scripted(tmp_path: Path) -> LLMClient:
    script = write_script(tmp_path / "answers.json", answers={"research.explore": [OVERFLOW]},
                          by_key={"over/*": OVERFLOW, "propose/*": OVERFLOW})
    register_scripted_provider(script)
    return LLMClient("scripted/replay", retries=1, backoff_s=0.0)


def test_an_overflow_where_the_caller_did_not_allow_it_still_fails(scripted: LLMClient) -> None:
    with pytest.raises(LLMContextError, match="context window"):
        converse(scripted, meta_run_id="m", call_key="over/1", purpose="research.explore",
                 messages=[{"role": "user", "content": "q"}], parse=str, attempts=2)


def test_other_llm_errors_still_fail_a_proposal(scripted: LLMClient) -> None:
    with pytest.raises(LLMError, match="no scripted answer") as caught:
        converse(scripted, meta_run_id="m", call_key="gap/1", purpose="propose",
                 messages=[{"role": "user", "content": "q"}], parse=str, attempts=2, refuse_overflow=True)
    assert not isinstance(caught.value, LLMContextError)


def test_an_allowed_overflow_ends_the_conversation_as_refused(scripted: LLMClient) -> None:
    exchange = converse(scripted, meta_run_id="m", call_key="over/2", purpose="propose",
                        messages=[{"role": "user", "content": "q"}], parse=str, attempts=3, refuse_overflow=True)
    assert exchange.value is None and exchange.attempts == 1 and exchange.overflow
    assert exchange.errors == ["the prompt did not fit the model's context window"]


def test_a_proposal_round_stops_asking_after_an_overflow(scripted: LLMClient) -> None:
    request = request_for(build_trace([({"DEPTH": 2}, ok(2.9), True)]), SPACE, SearchConfig(n_candidates=3))
    batch = propose(scripted, request, "toy", "", 3)
    assert batch.candidates == [] and batch.attempts == 1  # the later candidates' prompts are longer still
    assert batch.errors == ["the prompt did not fit the model's context window"]


def test_levels_15_and_2_carry_on_past_overflowing_prompts(tmp_path: Path, s3_server) -> None:  # noqa: F811
    script = write_script(
        tmp_path / "answers.json",
        answers={"propose": [proposal({"LEARNING_RATE": 0.05}, "faster"), proposal({"MOMENTUM": 0.8}, "less momentum")],
                 "adjust_config": [OVERFLOW], "research.explore": [OVERFLOW], "research.specify": [OVERFLOW],
                 "research.generate": [OVERFLOW]},
    )
    settings = scripted_settings(tmp_path, script)
    spec = MetaRunSpec(meta_run_id="overflow-levels", workload=WorkloadRef(reference="toy"), generations=2,
                       iterations=2, levels=["1", "1.5", "2"], budget=Budget(mode="steps", value=100), seed=0,
                       proposer="hybrid")
    store = MechanismStore.from_endpoint(s3_server.endpoint, "overflow-test", connect_timeout_s=1.0, read_timeout_s=5.0)
    store.ensure_bucket()
    summary = meta_run(spec, wired_resources(settings, store=store))
    assert summary.stop_reason == "finished"
    trace = RunFolder(settings.runs_dir, spec.meta_run_id).read_trace()
    first = trace.generation_end(0)
    assert first is not None
    assert first.level15 is not None and first.level15.source == "rule"
    assert first.level2 is not None and first.level2.accepted is None
    asked = {c["purpose"] for c in llm_calls(settings) if c.get("error") == "ContextWindowExceededError"}
    assert {"adjust_config", "research.explore"} <= asked
