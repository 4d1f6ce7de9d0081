"""LLM access through litellm: timeouts, retries (tenacity, on litellm's transient error classes), JSON-schema
answers, per-call token/cost accounting, an audit log without prompt text, and a hook that records each call
(messages and answer) where the operator can read it (MLflow traces, infra/tracking.py)."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tenacity import RetryError, Retrying, retry_if_exception_type, stop_after_attempt, wait_exponential

from search.safe_json import clean_text
from search.trace import LLMUsage

log = logging.getLogger(__name__)
CallRecorder = Callable[[dict[str, Any]], None]


def retryable_errors() -> tuple[type[BaseException], ...]:
    """litellm's errors for a service that was slow, overloaded or briefly unreachable (never a bad request)."""
    litellm = import_litellm()
    return (litellm.Timeout, litellm.APIConnectionError, litellm.InternalServerError, litellm.RateLimitError,
            litellm.ServiceUnavailableError)


class LLMError(RuntimeError):
    """An LLM call failed after its retries; the message says which call and why (never any key)."""


class LLMContextError(LLMError):
    """The prompt (with room for the answer) did not fit the model's context window: this prompt was too long, the
    model and its configuration are fine."""


@dataclass(frozen=True)
class LLMAnswer:
    text: str
    usage: LLMUsage
    model: str
    finish_reason: str = "stop"  # "length": the answer was cut at max_tokens


def import_litellm():
    """Import litellm lazily: it costs seconds, and many commands never call an LLM."""
    from infra.settings import apply_telemetry_opt_outs

    apply_telemetry_opt_outs()  # before litellm is imported: it reads them then
    import litellm

    logging.getLogger("LiteLLM").setLevel(logging.ERROR)  # its warnings about cost maps are noise here
    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return litellm


def response_format_for(schema: dict[str, Any] | None, name: str = "answer") -> dict[str, Any] | None:
    """The OpenAI json_schema response format that litellm forwards (local provider translates it)."""
    if schema is None:
        return None
    return {"type": "json_schema", "json_schema": {"name": name, "schema": schema, "strict": False}}


class LLMClient:
    """One configured model. Thread-safe; logs every call (without prompt text) and hands each answered call to
    `recorder` (with messages and answer), if one is set."""

    def __init__(
        self,
        model: str,
        *,
        api_base: str | None = None,
        timeout_s: float = 120.0,
        retries: int = 2,
        temperature: float = 0.7,
        max_tokens: int = 512,
        call_log: Path | None = None,
        backoff_s: float = 1.0,
        recorder: CallRecorder | None = None,
        context_tokens: int | None = None,
    ) -> None:
        self.model = model
        self.api_base = api_base
        self.timeout_s = timeout_s
        self.retries = retries
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.call_log = call_log
        self.backoff_s = backoff_s
        self.recorder = recorder
        self.context_tokens = context_tokens
        self._lock = threading.Lock()

    def context_window(self) -> int | None:
        """The model's context window in tokens: as given, else as litellm's model map knows it (the local model
        registers BILEVEL_LLM_CONTEXT there), else None (unknown)."""
        if self.context_tokens is not None:
            return self.context_tokens
        try:
            info = import_litellm().get_model_info(self.model)
        except Exception:  # litellm raises for models it has no entry for (scripted, unlisted remote ones)
            return None
        window = info.get("max_input_tokens")  # (its "max_tokens" is often the answer's limit: not this)
        return int(window) if isinstance(window, int) and window > 0 else None

    def complete(
        self,
        messages: list[dict[str, str]],
        *,
        purpose: str,
        call_key: str,
        seq: int = 0,
        schema: dict[str, Any] | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
        run_id: str | None = None,
        stop: list[str] | None = None,
    ) -> LLMAnswer:
        """One chat completion. `purpose` and `call_key` identify the call in logs (and for the scripted
        test provider); `schema` asks for JSON matching it; `run_id` is the tracking run the call belongs to (for
        the recorder); `stop` ends the answer at the first of these strings (not included). Retries transient errors with
        exponential backoff."""
        litellm = import_litellm()
        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": self.temperature if temperature is None else temperature,
            "max_tokens": max_tokens or self.max_tokens,
            "timeout": self.timeout_s,
            "num_retries": 0,
            "metadata": {"purpose": purpose, "call_key": call_key, "seq": seq},
        }
        if self.api_base:
            kwargs["api_base"] = self.api_base
        if stop:
            kwargs["stop"] = list(stop)
        if schema is not None:
            kwargs["response_format"] = response_format_for(schema, name=purpose.replace(".", "_"))
        transient = retryable_errors()

        def attempt() -> Any:
            started = time.perf_counter()
            try:
                response = litellm.completion(**kwargs)
            except Exception as error:  # logged, then retried (transient) or turned into an LLMError below
                self._log(purpose, call_key, time.perf_counter() - started, None, error=type(error).__name__)
                raise
            return response, time.perf_counter() - started

        retrying = Retrying(stop=stop_after_attempt(self.retries + 1), retry=retry_if_exception_type(transient),
                            wait=wait_exponential(multiplier=self.backoff_s, max=30), reraise=False, sleep=time.sleep)
        try:
            response, seconds = retrying(attempt)
        except RetryError as exhausted:
            last = exhausted.last_attempt.exception()
            raise LLMError(f"{purpose} ({call_key}): no answer after {self.retries + 1} tries; last error "
                           f"{type(last).__name__}: {_short(last)}") from last
        except litellm.ContextWindowExceededError as error:  # this prompt is too long: callers may go on without it
            raise LLMContextError(f"{purpose} ({call_key}): the prompt does not fit the model's context window: "
                                  f"{_short(error)}") from error
        except Exception as error:  # not transient: a bad request, a bad model name, an auth error
            raise LLMError(f"{purpose} ({call_key}): {type(error).__name__}: {_short(error)}") from error
        usage = self._usage_of(response, seconds)
        # The answer is untrusted text: it reaches the transcript, the re-ask, MLflow and the console.
        text = clean_text(str(response.choices[0].message.content or ""))
        self._log(purpose, call_key, seconds, usage)
        self._record(purpose=purpose, call_key=call_key, messages=messages, answer=text, usage=usage, run_id=run_id)
        finish_reason = str(getattr(response.choices[0], "finish_reason", None) or "stop")
        return LLMAnswer(text=text, usage=usage, model=self.model, finish_reason=finish_reason)

    def _record(self, **call: Any) -> None:
        """Hand the call to the recorder; a recorder that fails is logged and never fails the call."""
        if self.recorder is None:
            return
        try:
            self.recorder({"model": self.model, **call})
        except Exception as error:  # recording is for the operator's eyes; the search must carry on without it
            log.warning("could not record LLM call %s: %s: %s", call.get("call_key"), type(error).__name__, error)

    def _usage_of(self, response: Any, seconds: float) -> LLMUsage:
        usage = getattr(response, "usage", None)
        prompt = int(getattr(usage, "prompt_tokens", 0) or 0)
        completion = int(getattr(usage, "completion_tokens", 0) or 0)
        return LLMUsage(calls=1, prompt_tokens=prompt, completion_tokens=completion, cost_usd=_cost(response), seconds=seconds)

    def _log(self, purpose: str, call_key: str, seconds: float, usage: LLMUsage | None, error: str | None = None) -> None:
        if self.call_log is None:
            return
        record = {"t": time.time(), "model": self.model, "purpose": purpose, "call_key": call_key, "seconds": round(seconds, 3)}
        if usage is not None:
            record.update(prompt_tokens=usage.prompt_tokens, completion_tokens=usage.completion_tokens, cost_usd=usage.cost_usd)
        if error:
            record["error"] = error
        self.call_log.parent.mkdir(parents=True, exist_ok=True)
        with self._lock, self.call_log.open("a") as handle:
            handle.write(json.dumps(record) + "\n")


def _cost(response: Any) -> float:
    """Cost in USD from litellm's local price map; 0 for models it has no price for (local, scripted)."""
    litellm = import_litellm()
    try:
        return float(litellm.completion_cost(completion_response=response) or 0.0)
    except Exception:  # litellm raises for unknown models: they cost nothing we can know
        return 0.0


def _short(error: BaseException | None, limit: int = 300) -> str:
    text = clean_text(str(error)) if error is not None else ""  # a provider's error may quote the answer
    return text if len(text) <= limit else text[:limit] + "..."
