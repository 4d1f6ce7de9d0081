"""LLM calls as tasks: `ask` (one call, cached by its call key and prompt hash, so a resumed run never asks twice)
and `converse`, the one ask -> validate -> re-ask-with-the-error loop every level uses (bounded; the caller falls
back when it ends without a valid answer). A caller may let a prompt over the model's context window count as a
refused answer (`refuse_overflow`) instead of failing the flow."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from prefect import task
from pydantic import BaseModel, Field

from infra.llm import LLMClient, LLMContextError
from search.prompts import reask_messages
from search.trace import LLMUsage
from tasks.cache import content_hash

T = TypeVar("T")
log = logging.getLogger(__name__)


class LLMCall(BaseModel):
    """One question for the LLM. `call_key` names it within the meta-run (meta-run/gen/track/iter/attempt)."""

    meta_run_id: str
    call_key: str
    purpose: str
    messages: list[dict[str, str]]
    seq: int = 0
    json_schema: dict[str, Any] | None = Field(None, description="JSON schema the answer must follow.")
    temperature: float | None = None
    max_tokens: int | None = None
    stop: list[str] | None = Field(None, description="The answer ends at the first of these strings.")
    run_id: str | None = Field(None, description="The tracking run the call belongs to (not part of the cache key).")

    def cache_key(self, model: str) -> str:
        # `stop` joins the hash only when set, so the keys of calls without it (and resumes of older runs) are unchanged.
        extra = (self.stop,) if self.stop else ()
        digest = content_hash(self.messages, self.json_schema, self.temperature, self.max_tokens, model, *extra)
        return f"llm/{self.meta_run_id}/{self.call_key}/{digest}"


class LLMReply(BaseModel):
    text: str
    usage: LLMUsage
    model: str
    finish_reason: str = "stop"  # "length": cut at max_tokens


class LLMOverflow(BaseModel):
    """The model's refusal of a prompt over its context window (its own type, not a field of LLMReply: replies
    persisted by earlier versions unpickle without new fields)."""

    reason: str
    model: str


def _ask_key(_context: Any, parameters: dict[str, Any]) -> str:
    # The model is part of the key: switching models must not replay another model's answers.
    return parameters["call"].cache_key(parameters["llm"].model)


def _answer(llm: LLMClient, call: LLMCall) -> LLMReply:
    answer = llm.complete(
        call.messages,
        purpose=call.purpose,
        call_key=call.call_key,
        seq=call.seq,
        schema=call.json_schema,
        temperature=call.temperature,
        max_tokens=call.max_tokens,
        run_id=call.run_id,
        stop=call.stop,
    )
    return LLMReply(text=answer.text, usage=answer.usage, model=answer.model, finish_reason=answer.finish_reason)


@task(name="ask-llm", cache_key_fn=_ask_key, persist_result=True, task_run_name="{call.purpose}")
def ask(llm: LLMClient, call: LLMCall) -> LLMReply:
    """Ask the LLM once (the client retries transient errors); the answer is persisted for resumes."""
    return _answer(llm, call)


@task(name="ask-llm", cache_key_fn=_ask_key, persist_result=True, task_run_name="{call.purpose}")
def ask_within_context(llm: LLMClient, call: LLMCall) -> LLMReply | LLMOverflow:
    """`ask`, where a prompt over the model's context window is answered by an LLMOverflow (persisted like an answer,
    so a resume decides as the run did; same cache key as `ask`, so answers persisted by either are found)."""
    try:
        return _answer(llm, call)
    except LLMContextError as error:
        return LLMOverflow(reason=str(error), model=llm.model)


@dataclass
class Exchange(Generic[T]):
    """The outcome of one conversation: the parsed answer (None if every attempt was refused), what it cost,
    every refusal, the transcript and the messages as they ended (for a follow-up round)."""

    value: T | None = None
    usage: LLMUsage = field(default_factory=LLMUsage)
    attempts: int = 0
    errors: list[str] = field(default_factory=list)
    transcript: list[dict[str, Any]] = field(default_factory=list)
    messages: list[dict[str, str]] = field(default_factory=list)
    overflow: bool = False  # it ended on a prompt over the model's context window


def converse(
    llm: LLMClient,
    *,
    meta_run_id: str,
    call_key: str,
    purpose: str,
    messages: list[dict[str, str]],
    parse: Callable[[str], T],
    attempts: int,
    seq: int = 0,
    json_schema: dict[str, Any] | None = None,
    temperature: float | None = None,
    max_tokens: int | None = None,
    run_id: str | None = None,
    again: str | None = None,
    refuse_overflow: bool = False,
) -> Exchange[T]:
    """Ask, parse (a ValueError refuses the answer), re-ask with the refusal (and `again`, what to answer, when the
    answer is not JSON), at most `attempts` times. Each ask is its own cached call `<call_key>/a<attempt>`, so a
    resumed conversation replays its answers. With `refuse_overflow`, a prompt over the model's context window ends
    the conversation as refused (logged once) instead of raising LLMContextError."""
    exchange: Exchange[T] = Exchange(messages=list(messages))
    for attempt in range(attempts):
        call = LLMCall(meta_run_id=meta_run_id, call_key=f"{call_key}/a{attempt}", purpose=purpose,
                       messages=exchange.messages, seq=seq, json_schema=json_schema, temperature=temperature,
                       max_tokens=max_tokens, run_id=run_id)
        reply = ask_within_context(llm, call) if refuse_overflow else ask(llm, call)
        exchange.attempts += 1
        if isinstance(reply, LLMOverflow):  # a longer re-ask would not fit either: the conversation ends here
            log.warning("%s: the prompt did not fit the model's context window; counted as a refused answer, the run "
                        "goes on (raise BILEVEL_LLM_CONTEXT, or use a model with a longer context, to avoid it): %s",
                        f"{call_key}/a{attempt}", reply.reason)
            exchange.usage = exchange.usage + LLMUsage(calls=1)
            exchange.errors.append("the prompt did not fit the model's context window")
            exchange.overflow = True
            exchange.transcript.append({"purpose": purpose, "attempt": attempt, "answer": "", "refused": reply.reason[:300]})
            return exchange
        exchange.usage = exchange.usage + reply.usage
        entry: dict[str, Any] = {"purpose": purpose, "attempt": attempt, "answer": reply.text}
        try:
            exchange.value = parse(reply.text)
        except ValueError as error:
            reason = str(error)[:300]
            exchange.errors.append(reason)
            exchange.transcript.append({**entry, "refused": reason})
            exchange.messages = (reask_messages(exchange.messages, reply.text, reason, again) if again
                                 else reask_messages(exchange.messages, reply.text, reason))
            continue
        exchange.transcript.append(entry)
        exchange.messages = [*exchange.messages, {"role": "assistant", "content": reply.text[:3000]}]
        return exchange
    return exchange
