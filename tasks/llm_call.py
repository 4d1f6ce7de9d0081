"""The `ask` task: one LLM call, cached by its call key and prompt hash, so a resumed run never asks twice."""

from __future__ import annotations

from typing import Any

from prefect import task
from pydantic import BaseModel, Field

from infra.llm import LLMClient
from search.trace import LLMUsage
from tasks.cache import content_hash


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

    def cache_key(self, model: str) -> str:
        digest = content_hash(self.messages, self.json_schema, self.temperature, self.max_tokens, model)
        return f"llm/{self.meta_run_id}/{self.call_key}/{digest}"


class LLMReply(BaseModel):
    text: str
    usage: LLMUsage
    model: str


def _ask_key(_context: Any, parameters: dict[str, Any]) -> str:
    # The model is part of the key: switching models must not replay another model's answers.
    return parameters["call"].cache_key(parameters["llm"].model)


@task(name="ask-llm", cache_key_fn=_ask_key, persist_result=True, task_run_name="{call.purpose}")
def ask(llm: LLMClient, call: LLMCall) -> LLMReply:
    """Ask the LLM once (the client retries transient errors); the answer is persisted for resumes."""
    answer = llm.complete(
        call.messages,
        purpose=call.purpose,
        call_key=call.call_key,
        seq=call.seq,
        schema=call.json_schema,
        temperature=call.temperature,
        max_tokens=call.max_tokens,
    )
    return LLMReply(text=answer.text, usage=answer.usage, model=answer.model)
