"""The scripted LLM provider (the test stand-in for an LLM service) and the client's accounting and retries."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from infra.llm import LLMClient, LLMContextError, LLMError
from infra.scripted_llm import ScriptError, choose_answer, register_scripted_provider

SCRIPT = {
    "answers": {"propose": [{"changes": {"DEPTH": 2}}, "plain text"]},
    "by_key": {"propose/g0/t0/i1/*/a1": "re-ask answer", "flaky/*": {"fail_times": 2, "error": "timeout", "then": "ok"},
               "code/cut": {"text": "```python\nclass M:\n", "finish_reason": "length"},
               "code/prose": "```python\nclass M:\n    pass\n```\nThis class does nothing.",
               "long/*": {"fail_times": 1, "error": "context", "then": "ok"}},
}


def test_choice_is_a_pure_function_of_the_call() -> None:
    assert choose_answer(SCRIPT, "propose", "propose/g0/t0/i0/r0/c0/a0", 0) == {"changes": {"DEPTH": 2}}
    assert choose_answer(SCRIPT, "propose", "x", 3) == "plain text"
    assert choose_answer(SCRIPT, "propose", "propose/g0/t0/i1/r0/c0/a1", 0) == "re-ask answer"
    with pytest.raises(ScriptError, match="no scripted answer for purpose 'other'"):
        choose_answer(SCRIPT, "other", "k", 0)


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> LLMClient:
    folder = tmp_path_factory.mktemp("scripted")
    path = folder / "answers.json"
    path.write_text(json.dumps(SCRIPT))
    register_scripted_provider(path)
    return LLMClient("scripted/replay", backoff_s=0.0, retries=2, call_log=folder / "calls.jsonl")


def test_answers_usage_and_call_log(client: LLMClient) -> None:
    answer = client.complete([{"role": "user", "content": "x" * 400}], purpose="propose", call_key="k", seq=0,
                             schema={"type": "object"})
    assert json.loads(answer.text) == {"changes": {"DEPTH": 2}}
    assert answer.usage.calls == 1 and answer.usage.prompt_tokens >= 100 and answer.usage.cost_usd == 0.0
    lines = [json.loads(line) for line in client.call_log.read_text().splitlines()]
    assert lines[-1]["purpose"] == "propose" and lines[-1]["call_key"] == "k"
    assert "x" * 50 not in client.call_log.read_text()  # prompts are not logged


def test_transient_failures_are_retried_and_the_answer_recorded_once(client: LLMClient) -> None:
    recorded: list[dict] = []
    client.recorder = recorded.append
    assert client.complete([{"role": "user", "content": "q"}], purpose="p", call_key="flaky/1", run_id="r1").text == "ok"
    errors = [json.loads(line) for line in client.call_log.read_text().splitlines() if "flaky/1" in line]
    assert [e.get("error") for e in errors] == ["Timeout", "Timeout", None]
    assert [(r["call_key"], r["answer"], r["run_id"], r["messages"][0]["content"]) for r in recorded] == [
        ("flaky/1", "ok", "r1", "q")]


def test_a_failing_recorder_never_fails_the_call(client: LLMClient) -> None:
    def broken(call: dict) -> None:
        raise OSError("tracking store is down")

    client.recorder = broken
    assert client.complete([{"role": "user", "content": "q"}], purpose="propose", call_key="k2", seq=0).text


def test_script_gap_is_not_retried_and_names_the_call(client: LLMClient) -> None:
    with pytest.raises(LLMError, match="nothing.*call-z"):
        client.complete([{"role": "user", "content": "q"}], purpose="nothing", call_key="call-z")
    assert sum("call-z" in line for line in client.call_log.read_text().splitlines()) == 1


def test_a_prompt_over_the_context_window_is_its_own_error_and_not_retried(client: LLMClient) -> None:
    with pytest.raises(LLMContextError, match="long/1.*context window"):
        client.complete([{"role": "user", "content": "q"}], purpose="propose", call_key="long/1")
    assert [line for line in client.call_log.read_text().splitlines() if "long/1" in line][0].count(
        "ContextWindowExceededError") == 1
    assert sum("long/1" in line for line in client.call_log.read_text().splitlines()) == 1


def test_the_context_window_is_the_given_one_else_the_model_maps_else_unknown(client: LLMClient) -> None:
    assert client.context_window() is None  # litellm has no entry for scripted models
    assert LLMClient("scripted/replay", context_tokens=2048).context_window() == 2048


def test_missing_answers_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ScriptError, match="not found"):
        register_scripted_provider(tmp_path / "missing.json")


def test_stop_strings_reach_the_provider_and_the_finish_reason_comes_back(client: LLMClient) -> None:
    ended = client.complete([{"role": "user", "content": "x"}], purpose="code", call_key="code/prose", stop=["\n```\n"])
    assert ended.text == "```python\nclass M:\n    pass" and ended.finish_reason == "stop"
    whole = client.complete([{"role": "user", "content": "x"}], purpose="code", call_key="code/prose")
    assert whole.text.endswith("does nothing.")
    cut = client.complete([{"role": "user", "content": "x"}], purpose="code", call_key="code/cut")
    assert cut.text.rstrip() == "```python\nclass M:" and cut.finish_reason == "length"
