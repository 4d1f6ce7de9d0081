"""Level-2 tasks: one research round (a cached LLM call, validated, re-asked once), code generation,
validation of a candidate (cached by its sha), and publication to the store and MLflow."""

from __future__ import annotations

import hashlib
import inspect
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE
from pydantic import BaseModel, Field

from infra.llm import LLMClient
from infra.tracking import Tracker, run_key
from search.config import SearchConfig
from search.params import ParamSpec
from search.research import extract_code, parse_round, round_schema
from search.run_spec import MetaRunSpec
from search.trace import LLMUsage, Trace
from tasks.llm_call import LLMCall, ask
from tasks.record import experiment_name

ROUND_ATTEMPTS = 2


class RoundResult(BaseModel):
    """A research round's parsed answer (None if every attempt was refused) and its conversation."""

    answer: dict[str, Any] | None
    messages: list[dict[str, str]]
    transcript: list[dict[str, Any]] = Field(default_factory=list)
    usage: LLMUsage = Field(default_factory=LLMUsage)


@task(name="research-round", cache_policy=NO_CACHE, task_run_name="level-2 {round_name} g{generation}")
def research_round(llm: LLMClient, spec: MetaRunSpec, *, generation: int, round_name: str,
                   messages: list[dict[str, str]]) -> RoundResult:
    """One JSON round (explore, critique or specify). Each LLM call is a cached `ask`."""
    result = RoundResult(answer=None, messages=messages)
    for attempt in range(ROUND_ATTEMPTS):
        reply = ask(llm, LLMCall(meta_run_id=spec.meta_run_id, call_key=f"research/g{generation}/{round_name}/a{attempt}",
                                 purpose=f"research.{round_name}", messages=result.messages, seq=generation,
                                 json_schema=round_schema(round_name), temperature=0.5, max_tokens=700))
        result.usage = result.usage + reply.usage
        entry: dict[str, Any] = {"round": round_name, "attempt": attempt, "answer": reply.text}
        try:
            parsed = parse_round(round_name, reply.text)
        except ValueError as error:
            entry["refused"] = str(error)
            result.transcript.append(entry)
            result.messages = [*result.messages, {"role": "assistant", "content": reply.text[:3000]},
                               {"role": "user", "content": f"That answer was refused: {error}. Answer again."}]
            continue
        result.transcript.append(entry)
        result.answer = parsed.model_dump()
        result.messages = [*result.messages, {"role": "assistant", "content": reply.text[:3000]}]
        return result
    return result


class CodeResult(BaseModel):
    code: str | None
    error: str | None = None
    text: str = ""
    usage: LLMUsage = Field(default_factory=LLMUsage)


@task(name="research-generate", cache_policy=NO_CACHE, task_run_name="level-2 generate g{generation} a{attempt}")
def generate_code(llm: LLMClient, spec: MetaRunSpec, *, generation: int, attempt: int,
                  messages: list[dict[str, str]]) -> CodeResult:
    """Ask for the mechanism's code (attempt 0) or its repair (attempt > 0)."""
    reply = ask(llm, LLMCall(meta_run_id=spec.meta_run_id, call_key=f"research/g{generation}/generate/a{attempt}",
                             purpose="research.generate", messages=messages, seq=generation * 10 + attempt,
                             temperature=0.3, max_tokens=1200))
    try:
        return CodeResult(code=extract_code(reply.text), text=reply.text, usage=reply.usage)
    except ValueError as error:
        return CodeResult(code=None, error=str(error), text=reply.text, usage=reply.usage)


class ValidationRequest(BaseModel):
    meta_run_id: str
    generation: int
    attempt: int
    name: str
    source: str

    @property
    def cache_key(self) -> str:
        sha = hashlib.sha256(self.source.encode()).hexdigest()[:16]
        return f"validate/{self.meta_run_id}/g{self.generation}/a{self.attempt}/{sha}"


def _validation_key(_context: Any, parameters: dict[str, Any]) -> str:
    return parameters["request"].cache_key


@task(name="validate-mechanism", cache_key_fn=_validation_key, persist_result=True,
      task_run_name="validate {request.name} a{request.attempt}")
def validate_candidate(request: ValidationRequest, trace: Trace, specs: list[ParamSpec], config: SearchConfig,
                       allow_weak_sandbox: bool = False) -> dict:
    """Policy -> sandbox import -> smoke test replaying the real trace -> liveness. Returns the JSON report."""
    from mechanisms.replay import replay_steps
    from mechanisms.validate import validate_mechanism

    report = validate_mechanism(request.source, replay_steps(trace, specs, config), name=request.name,
                                allow_weak_sandbox=allow_weak_sandbox)
    return report.model_dump(mode="json")


def loop_source_excerpt() -> str:
    """The real code of one inner iteration (where the hooks are called), shown to the researcher."""
    from flows.inner_loop import run_iteration

    return inspect.getsource(run_iteration)


@task(name="publish-mechanism", cache_policy=NO_CACHE, task_run_name="publish {name} ({status})")
def publish_mechanism(res_store: Any, tracker: Tracker, spec: MetaRunSpec, *, generation: int, name: str, source: str,
                      status: str, parents: list[str], model: str, report: dict, research_run_id: str,
                      attempt: int) -> dict[str, Any]:
    """Store the version (accepted or rejected: both are data for improving Level 2) and log a mechanism run
    tagged with its store key, VersionId, sha256 and parents. Idempotent on resume (store and MLflow)."""
    from infra.store import VersionMeta

    stored = res_store.put(name, source, VersionMeta(meta_run_id=spec.meta_run_id, generation=generation,
                                                      parents=tuple(parents), status=status, model=model[:120]))
    res_store.put_document(name, stored.version_id, "validation", report)
    run_id, finished = tracker.ensure_run(
        experiment_name(spec), run_key(spec.meta_run_id, f"g{generation}", "mechanism", f"a{attempt}"),
        run_name=f"mechanism {name} ({status})",
        tags={"meta_run_id": spec.meta_run_id, "kind": "mechanism", "generation": generation, "track": "-",
              "mechanism": name, "status": status, "store_key": stored.key, "version_id": stored.version_id,
              "sha256": stored.sha256, "parents": ",".join(parents) or "none"},
        parent_run_id=research_run_id,
    )
    if not finished:
        tracker.log_text(run_id, source, "mechanism.py")
        tracker.log_dict(run_id, report, "validation.json")
        tracker.finish(run_id, "FINISHED" if status == "accepted" else "FAILED")
    return {"key": stored.key, "version_id": stored.version_id, "sha256": stored.sha256, "mlflow_run_id": run_id}
