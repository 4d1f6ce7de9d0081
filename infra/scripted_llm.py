"""A litellm custom provider that replays prepared answers: the stand-in for an LLM service in tests.

It fakes the remote service only; every other piece of the system runs for real. The answers file:

    {
      "answers": {"propose": [ANSWER, ...], "adjust_config": [...], "research.generate": [...]},
      "by_key":  {"propose/g0/t0/i1/a0*": ANSWER}
    }

An ANSWER is a string (returned as is, so invalid JSON can be scripted), any other JSON value (returned
JSON-encoded), or {"fail_times": N, "error": "timeout"|"connection"|"context", "then": ANSWER} (raises N times
per process, then answers; "context" is the error of a prompt over the model's context window), or {"text": TEXT,
"finish_reason": "length"} (an answer cut at the token cap). A call's `stop` strings end the answer as a model's
would. A call is answered by the first `by_key` pattern (fnmatch) matching its call key, else by
`answers[purpose][seq % len]`, where purpose and seq come from the call's metadata. So the same call always gets
the same answer, in any process, which is what makes resumed runs reproducible.

THIS IS A TEST PROVIDER: it stands in for an LLM service in tests and never talks to a model. Every request it
receives is appended to `<answers file>.requests.jsonl` (call key, purpose, messages), so a test can check what
the system asked.
"""

from __future__ import annotations

import fnmatch
import json
import threading
from pathlib import Path
from typing import Any

from infra.llm import import_litellm

SCRIPTED_PROVIDER = "scripted"


class ScriptError(ValueError):
    """The answers file does not cover a call the system made."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ScriptError(f"cannot read scripted answers {path}: {error}") from error
    if not isinstance(data, dict) or not isinstance(data.get("answers", {}), dict):
        raise ScriptError(f"{path}: expected an object with 'answers' (and optionally 'by_key')")
    return data


def choose_answer(script: dict[str, Any], purpose: str, call_key: str, seq: int) -> Any:
    """The scripted answer for one call (pure)."""
    for pattern, answer in script.get("by_key", {}).items():
        if fnmatch.fnmatchcase(call_key, pattern):
            return answer
    answers = script.get("answers", {}).get(purpose)
    if not answers:
        raise ScriptError(f"no scripted answer for purpose {purpose!r} (call {call_key})")
    return answers[seq % len(answers)]


def scripted_text(answer: Any, stop: Any = None) -> tuple[str, str]:
    """(text, finish reason) of a scripted answer, ended at the first `stop` string as a real model's would be. An
    answer `{"text": ..., "finish_reason": "length"}` replays one cut at the token cap (pure)."""
    finish_reason = "stop"
    if isinstance(answer, dict) and set(answer) == {"text", "finish_reason"} and isinstance(answer["text"], str):
        answer, finish_reason = answer["text"], str(answer.get("finish_reason", "stop"))
    text = answer if isinstance(answer, str) else json.dumps(answer)
    for marker in [stop] if isinstance(stop, str) else list(stop or ()):
        if marker and marker in text:
            text, finish_reason = text[:text.index(marker)], "stop"
    return text, finish_reason


def _build_handler(path: Path):
    litellm = import_litellm()
    from litellm import CustomLLM

    class ScriptedLLM(CustomLLM):
        """Replays answers from a file; counts failures per call key in this process."""

        def __init__(self) -> None:
            super().__init__()
            self.path = path
            self._failures: dict[str, int] = {}
            self._lock = threading.Lock()

        def completion(self, model, messages, api_base, custom_prompt_dict, model_response, print_verbose,
                       encoding, api_key, logging_obj, optional_params, acompletion=None, litellm_params=None,
                       logger_fn=None, headers={}, timeout=None, client=None):  # noqa: B006 (litellm's signature)
            metadata = (litellm_params or {}).get("metadata") or {}
            purpose = str(metadata.get("purpose", "default"))
            call_key = str(metadata.get("call_key", ""))
            with self._lock, open(f"{self.path}.requests.jsonl", "a", encoding="utf-8") as log:
                log.write(json.dumps({"call_key": call_key, "purpose": purpose, "messages": messages}) + "\n")
            try:
                answer = choose_answer(_load(self.path), purpose, call_key, int(metadata.get("seq", 0)))
            except ScriptError as error:  # a gap in the test script is a bad request, not an outage to retry
                raise litellm.BadRequestError(message=str(error), model=model, llm_provider=SCRIPTED_PROVIDER) from error
            if isinstance(answer, dict) and "fail_times" in answer:
                with self._lock:
                    failed = self._failures.get(call_key, 0)
                    if failed < int(answer["fail_times"]):
                        self._failures[call_key] = failed + 1
                        kind = answer.get("error", "timeout")
                        if kind == "timeout":
                            raise litellm.Timeout(message="scripted timeout", model=model, llm_provider=SCRIPTED_PROVIDER)
                        if kind == "context":
                            raise litellm.ContextWindowExceededError(
                                message="scripted overflow: the prompt exceeds the context window", model=model,
                                llm_provider=SCRIPTED_PROVIDER)
                        raise litellm.APIConnectionError(message="scripted outage", model=model, llm_provider=SCRIPTED_PROVIDER)
                answer = answer["then"]
            text, finish_reason = scripted_text(answer, optional_params.get("stop"))
            response = litellm.completion(model="openai/scripted", messages=messages, mock_response=text)
            response.choices[0].finish_reason = finish_reason
            # litellm's mock reports fixed token counts; a size-proportional estimate keeps accounting meaningful.
            prompt_chars = sum(len(str(m.get("content", ""))) for m in messages)
            response.usage.prompt_tokens = prompt_chars // 4
            response.usage.completion_tokens = max(1, len(text) // 4)
            response.usage.total_tokens = response.usage.prompt_tokens + response.usage.completion_tokens
            return response

    return ScriptedLLM()


def register_scripted_provider(path: Path) -> None:
    """Make `scripted/<anything>` model strings answer from `path`."""
    litellm = import_litellm()

    if not Path(path).is_file():
        raise ScriptError(f"scripted answers file not found: {path}")
    handler = _build_handler(Path(path))
    others = [item for item in litellm.custom_provider_map if item.get("provider") != SCRIPTED_PROVIDER]
    litellm.custom_provider_map = [*others, {"provider": SCRIPTED_PROVIDER, "custom_handler": handler}]
