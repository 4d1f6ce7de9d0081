"""The `adjust_config` task (Level 1.5): an LLM retunes the search config; a deterministic rule is the fallback."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel

from infra.llm import LLMClient
from search.config import SearchConfig
from search.level15 import adjust_messages, apply_update, describe_update, parse_update, rule_update, update_schema
from search.params import ParamSpec
from search.run_spec import MetaRunSpec
from search.trace import LLMUsage, Trace
from tasks.llm_call import LLMCall, ask

ATTEMPTS = 2


class AdjustOutcome(BaseModel):
    config: SearchConfig
    source: str  # "llm" or "rule"
    change: str
    reason: str
    errors: list[str] = []
    usage: LLMUsage = LLMUsage()


@task(name="adjust-config", cache_policy=NO_CACHE, task_run_name="level-1.5 g{generation}")
def adjust_config(llm: LLMClient, spec: MetaRunSpec, *, trace: Trace, config: SearchConfig, specs: list[ParamSpec],
                  generation: int) -> AdjustOutcome:
    """Ask the LLM (its calls are cached `ask`s) for a validated config update; fall back to the rule."""
    messages = adjust_messages(config, trace, specs, generation)
    errors: list[str] = []
    usage = LLMUsage()
    for attempt in range(ATTEMPTS):
        reply = ask(llm, LLMCall(meta_run_id=spec.meta_run_id, call_key=f"adjust/g{generation}/a{attempt}",
                                 purpose="adjust_config", messages=messages, seq=generation,
                                 json_schema=update_schema(specs), temperature=0.3))
        usage = usage + reply.usage
        try:
            update = parse_update(reply.text)
            new_config = apply_update(config, update, specs)
        except ValueError as error:
            errors.append(str(error)[:300])
            messages = [*messages, {"role": "assistant", "content": reply.text[:2000]},
                        {"role": "user", "content": f"That update was refused: {error}. Answer again."}]
            continue
        return AdjustOutcome(config=new_config, source="llm", change=describe_update(config, new_config),
                             reason=update.reason, errors=errors, usage=usage)
    update = rule_update(config, trace, specs, generation)
    new_config = apply_update(config, update, specs)
    return AdjustOutcome(config=new_config, source="rule", change=describe_update(config, new_config),
                         reason=update.reason, errors=errors, usage=usage)
