"""Validation of a new mechanism before activation: static policy, import in the sandbox, a behavioural
smoke test replaying a real trace through every hook, and liveness (an inert mechanism is refused).

Each stage is logged and timed in a JSON-able report. On failure `error` is one short paragraph
written for the LLM that repairs the code (the repair loop itself belongs to Level 2).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from mechanisms.policy import check_source
from mechanisms.replay import ReplayStep
from mechanisms.runtime import MechanismRef, MechanismRuntime
from mechanisms.sandbox import SandboxError, SandboxHost
from mechanisms.static_check import check_mechanism
from mechanisms.static_check import summary as static_summary
from search.context import accept_view, candidate_view
from search.space import CandidateError, SearchSpace
from search.trace import config_with

logger = logging.getLogger(__name__)

STAGES = ("policy", "static", "import", "smoke", "liveness")


@dataclass(frozen=True)
class ValidationLimits:
    """How strict the smoke test is."""

    call_timeout_s: float = 2.0  # a hook slower than this times out (and is quarantined)
    slow_call_s: float = 0.5  # any hook call slower than this fails the smoke test
    max_steps: int = 100  # replay at most the last N experiments of the trace


class StageReport(BaseModel):
    """One stage: did it pass, how long it took, and what it found."""

    name: str
    ok: bool
    seconds: float
    detail: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class ValidationReport(BaseModel):
    """The verdict on one mechanism source. `error` is fed back to the LLM on a repair attempt."""

    ok: bool
    stage_failed: str | None = None
    error: str | None = None
    stages: list[StageReport] = Field(default_factory=list)
    liveness: dict[str, Any] = Field(default_factory=dict)
    class_name: str | None = None
    name: str | None = None


class _StageFailed(Exception):
    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.detail = detail or {}


def validate_mechanism(
    source: str,
    steps: list[ReplayStep],
    *,
    name: str = "candidate",
    version: str = "unvalidated",
    host: SandboxHost | None = None,
    limits: ValidationLimits | None = None,
    space: SearchSpace | None = None,
    metric_name: str | None = None,
    allow_weak_sandbox: bool = False,
) -> ValidationReport:
    """Run the four stages in order and stop at the first failure. Never raises for a bad mechanism, nor for a
    sandbox that fails (`bilevel mechanisms validate` calls this on a user's file). Where the sandbox is incomplete
    the import stage fails, unless `allow_weak_sandbox` (settings.sandbox_allow_weak)."""
    limits = limits or ValidationLimits()
    own_host = host is None
    host = host if host is not None else SandboxHost(call_timeout_s=limits.call_timeout_s)
    report = ValidationReport(ok=False)
    runtime: MechanismRuntime | None = None
    try:
        policy = _run_stage(report, "policy", lambda: _policy_stage(source, host))
        if policy is None:
            return report
        report.class_name = policy["class_name"]
        if _run_stage(report, "static", lambda: _static_stage(source, metric_name)) is None:
            return report
        ref = MechanismRef(name=name, version=version, source=source)
        runtime = _run_stage(report, "import", lambda: _import_stage(ref, host, limits, allow_weak_sandbox))
        if runtime is None:
            return report
        report.name = runtime.liveness()[name]["declared_name"]
        replayed = steps[-limits.max_steps :] if limits.max_steps else steps
        if _run_stage(report, "smoke", lambda: _smoke_stage(runtime, name, replayed, limits, space)) is None:
            return report
        if _run_stage(report, "liveness", lambda: _liveness_stage(runtime, name, len(replayed))) is None:
            return report
        report.ok = True
        return report
    finally:
        if runtime is not None:
            report.liveness = runtime.liveness().get(name, {})
            runtime.close()
        if own_host:
            host.close()


def _run_stage(report: ValidationReport, stage: str, body: Any) -> Any:
    """Run one stage (a callable returning (value, detail)), time it, record it; returns the value, or None on failure."""
    started = time.perf_counter()
    try:
        value, detail = body()
    except _StageFailed as failure:
        seconds = time.perf_counter() - started
        message = f"{stage} stage failed: {failure}"
        report.stages.append(StageReport(name=stage, ok=False, seconds=round(seconds, 4), detail=failure.detail, error=str(failure)))
        report.stage_failed = stage
        report.error = message[:1500]
        logger.info("mechanism validation: %s failed in %.3f s: %s", stage, seconds, failure)
        return None
    except Exception as error:  # noqa: BLE001 - the sandbox could not serve us (SandboxError), or anything else
        seconds = time.perf_counter() - started
        text = str(error) if isinstance(error, SandboxError) else f"{type(error).__name__}: {error}"
        report.stages.append(StageReport(name=stage, ok=False, seconds=round(seconds, 4), error=text[:1500]))
        report.stage_failed = stage
        report.error = f"{stage} stage could not run: {text}"[:1500]
        logger.error("mechanism validation: %s could not run: %s", stage, text, exc_info=not isinstance(error, SandboxError))
        return None
    seconds = time.perf_counter() - started
    report.stages.append(StageReport(name=stage, ok=True, seconds=round(seconds, 4), detail=detail))
    logger.info("mechanism validation: %s passed in %.3f s", stage, seconds)
    return value


def _policy_stage(source: str, host: SandboxHost) -> tuple[dict[str, Any], dict[str, Any]]:
    policy = check_source(source, allowlist=host.allowlist)  # the names the worker offers (trusted modules included)
    if not policy.ok:
        raise _StageFailed(
            "the code breaks the sandbox rules:\n" + policy.summary(),
            {"violations": policy.to_json()["violations"]},
        )
    return {"class_name": policy.class_name}, {"class_name": policy.class_name}


def _static_stage(source: str, metric_name: str | None) -> tuple[bool, dict[str, Any]]:
    findings = check_mechanism(source, metric_name)
    if findings:
        raise _StageFailed("the code has problems to fix before it can run:\n" + static_summary(findings),
                           {"findings": [{"line": f.line, "message": f.message} for f in findings]})
    return True, {}


def _import_stage(ref: MechanismRef, host: SandboxHost, limits: ValidationLimits,
                  allow_weak_sandbox: bool) -> tuple[MechanismRuntime, dict[str, Any]]:
    runtime = MechanismRuntime([ref], call_timeout_s=limits.call_timeout_s, sandbox=host,
                               quarantine_log_level=logging.INFO, allow_weak_sandbox=allow_weak_sandbox)
    entry = runtime.liveness()[ref.name]
    if entry["quarantined"]:
        runtime.close()
        raise _StageFailed(str(entry["reason"]))
    return runtime, {"hooks": entry["hooks"], "declared_name": entry["declared_name"]}


def _proposed(runtime: MechanismRuntime, name: str, step: ReplayStep, space: SearchSpace | None,
              refusals: list[str]) -> list[dict[str, Any]]:
    """The mechanism's valid proposed candidates at one step, as candidate views; a valid one would have been trained
    (mechanism candidates come first), so it counts as a changed decision. Refusals are collected for the report."""
    views = []
    current = step.ctx["current"]["config"]
    tried = [view["config"] for view in step.ctx["trace"]]
    for answer in runtime.propose(step.ctx):
        for proposed in answer.answer.candidates:
            changes = dict(proposed.changes)
            if space is not None:
                try:
                    changes = space.check(changes, current, frozen=step.ctx["frozen"], tried=tried)
                except CandidateError as error:
                    refusals.append(f"propose returned {_shown(proposed.changes)}: {error}")
                    continue
            views.append(candidate_view(changes, proposed.reason, config_with(current, changes), f"mechanism:{name}"))
    if views:
        runtime.credit(name, "propose")
    return views


def _smoke_stage(runtime: MechanismRuntime, name: str, steps: list[ReplayStep], limits: ValidationLimits,
                 space: SearchSpace | None = None) -> tuple[bool, dict[str, Any]]:
    """Every hook on every replayed experiment, as the inner loop would call them."""
    refusals: list[str] = []
    proposed_valid = 0
    for step in steps:
        runtime.plan(step.ctx)
        offered = _proposed(runtime, name, step, space, refusals)
        proposed_valid += len(offered)
        runtime.screen(step.ctx, [*offered, *step.candidates])
        runtime.accept(step.ctx, accept_view(step.result), bool(step.result.get("default_kept")))
        runtime.observe(step.ctx, step.result)
        entry = runtime.liveness()[name]
        if entry["quarantined"]:
            raise _StageFailed(str(entry["reason"]))
    entry = runtime.liveness()[name]
    slow = {hook: ms for hook, ms in entry["max_ms"].items() if ms > limits.slow_call_s * 1000}
    detail = {"steps": len(steps), "calls": entry["calls"], "max_ms": entry["max_ms"], "mean_ms": entry["mean_ms"],
              "proposed_valid": proposed_valid, "proposed_refused": len(refusals), "refusals": refusals[:5]}
    if refusals and not proposed_valid:
        raise _StageFailed(f"every candidate propose returned was refused, e.g. {refusals[0]}; return valid values "
                           "(use h.neighbour(ctx, NAME, rng) or h.random_value(ctx, NAME, rng)) of editable parameters "
                           "that differ from the current value and were not tried yet", detail)
    if slow:
        worst = max(slow, key=slow.get)  # type: ignore[arg-type]
        raise _StageFailed(
            f"{worst} took up to {slow[worst]:.0f} ms; every hook must answer within {limits.slow_call_s * 1000:.0f} ms "
            "(keep per-call work small: no loops over large ranges, cache what you compute in observe)",
            detail,
        )
    return True, detail


def _liveness_stage(runtime: MechanismRuntime, name: str, step_count: int) -> tuple[bool, dict[str, Any]]:
    entry = runtime.liveness()[name]
    detail = {"changed": entry["changed"], "calls": entry["calls"], "decisions_changed": entry["decisions_changed"]}
    if step_count == 0:
        raise _StageFailed("the trace has no experiments after the baseline, so no decision could be observed", detail)
    if entry["decisions_changed"] == 0:
        raise _StageFailed(
            f"the mechanism is inert: over {step_count} replayed experiments it never changed a decision "
            "(plan always returned None or empty advice, propose never offered a valid candidate, screen always chose "
            "candidate 0 or nothing, accept always "
            "agreed with the default). It must influence the search: e.g. propose returns a candidate, plan returns "
            "focus/avoid/guidance, "
            "screen chooses a different candidate or rejects, or accept overrides the default.",
            detail,
        )
    return True, detail


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
