"""The `adjust_config` task (Level 1.5): an LLM retunes the search config; a deterministic rule is the fallback."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from infra.llm import LLMClient
from search.config import SearchConfig
from search.level15 import (
    FUTILE_TRIES,
    adjust_messages,
    apply_update,
    decision_reason,
    describe_update,
    parse_update,
    rule_update,
    update_schema,
)
from search.run_spec import MetaRunSpec
from search.space import SearchSpace
from search.trace import LLMUsage, Trace
from tasks.llm_call import converse

ATTEMPTS = 2


class AdjustOutcome(BaseModel):
    config: SearchConfig
    source: str  # "llm" or "rule"
    change: str
    reason: str  # the facts the rules checked, never the model's own words (they can contradict the rules)
    model_reason: str = ""  # what the model said, kept for the transcript
    errors: list[str] = []
    usage: LLMUsage = LLMUsage()


@task(name="adjust-config", cache_policy=NO_CACHE, task_run_name="level-1.5 g{generation}")
def adjust_config(llm: LLMClient, spec: MetaRunSpec, *, trace: Trace, config: SearchConfig, space: SearchSpace,
                  generation: int, run_id: str | None = None) -> AdjustOutcome:
    """Ask the LLM for a config update the trace supports (refusals go back to it); else the deterministic rule."""

    def parse(text: str) -> tuple[SearchConfig, str]:
        update = parse_update(text)
        return apply_update(config, update, space, trace), update.reason

    exchange = converse(llm, meta_run_id=spec.meta_run_id, call_key=f"adjust/g{generation}", purpose="adjust_config",
                        messages=adjust_messages(config, trace, space, generation, spec.program), parse=parse,
                        attempts=ATTEMPTS, seq=generation, json_schema=update_schema(space), temperature=0.3,
                        run_id=run_id, refuse_overflow=True)  # a prompt too long for the model: the rule decides
    if exchange.value is not None:
        new_config, reason = exchange.value
        return AdjustOutcome(config=new_config, source="llm", change=describe_update(config, new_config),
                             reason=decision_reason(config, new_config, trace, space, "llm"), model_reason=reason,
                             errors=exchange.errors, usage=exchange.usage)
    update = rule_update(config, trace, space, generation)
    new_config = apply_update(config, update, space)
    return AdjustOutcome(config=new_config, source="rule", change=describe_update(config, new_config),
                         reason=decision_reason(config, new_config, trace, space, f"rule ({FUTILE_TRIES} futile tries)"),
                         errors=exchange.errors, usage=exchange.usage)
