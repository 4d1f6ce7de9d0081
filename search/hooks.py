"""What search mechanisms may say to the inner loop (the hook answers, validated), and the protocol the loop calls
them through. The sandboxed runtime (mechanisms/runtime.py) implements it; `NoHooks` is the loop without mechanisms."""

from __future__ import annotations

from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field

from search.trace import MechanismActivity

HOOKS = ("plan", "propose", "screen", "accept", "observe")
MAX_GUIDANCE_CHARS = 400
MAX_REASON_CHARS = 300
MAX_PROPOSED = 4  # candidates one mechanism may put on the table per iteration
MAX_CHANGED_NAMES = 32


class PlanAdvice(BaseModel):
    """What `plan` may say about the next proposal. Empty advice changes nothing."""

    model_config = ConfigDict(extra="forbid", strict=True)

    guidance: str = Field("", max_length=MAX_GUIDANCE_CHARS)
    focus: list[str] = Field(default_factory=list, max_length=32)
    avoid: list[str] = Field(default_factory=list, max_length=32)
    n_candidates: int | None = Field(None, ge=1, le=4)
    temperature: float | None = Field(None, ge=0.0, le=1.5)

    def is_empty(self) -> bool:
        return not (self.guidance or self.focus or self.avoid or self.n_candidates or self.temperature is not None)


class ProposedCandidate(BaseModel):
    """A concrete candidate a mechanism puts on the table; validated like an LLM proposal before it counts."""

    model_config = ConfigDict(extra="forbid", strict=True)

    changes: dict[str, Any] = Field(max_length=MAX_CHANGED_NAMES)
    reason: str = Field("", max_length=MAX_REASON_CHARS)


class ProposeAnswer(BaseModel):
    """What `propose` may return: up to four candidates, and whether the LLM may be skipped this iteration."""

    model_config = ConfigDict(extra="forbid", strict=True)

    candidates: list[ProposedCandidate] = Field(default_factory=list, max_length=MAX_PROPOSED)
    skip_llm: bool = False


class ScreenVerdict(BaseModel):
    """What `screen` may say about the candidates: pick one, or reject them all (the proposers are asked again)."""

    model_config = ConfigDict(extra="forbid", strict=True)

    choose: int | None = Field(None, ge=0, le=16)
    reject: bool = False
    reason: str = Field("", max_length=MAX_REASON_CHARS)


class MechanismCandidates(BaseModel):
    """One mechanism's propose answer, with its name (credited when its candidate is trained)."""

    mechanism: str
    answer: ProposeAnswer


class Hooks(Protocol):
    """The inner loop's view of its mechanisms. Every method is total: a misbehaving mechanism is quarantined
    inside, and the loop sees no answer from it."""

    def plan(self, ctx: dict[str, Any]) -> PlanAdvice: ...

    def propose(self, ctx: dict[str, Any]) -> list[MechanismCandidates]: ...

    def screen(self, ctx: dict[str, Any], candidates: list[dict[str, Any]]) -> ScreenVerdict | None: ...

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]: ...

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None: ...

    def credit(self, mechanism: str, hook: str) -> None:
        """Record that `mechanism`'s answer to `hook` changed a decision the runtime could not see (its proposed
        candidate was trained)."""

    def take_activity(self) -> list[MechanismActivity]: ...


class NoHooks:
    """The inner loop without mechanisms: no advice, no candidates, no verdicts."""

    def plan(self, ctx: dict[str, Any]) -> PlanAdvice:
        return PlanAdvice()

    def propose(self, ctx: dict[str, Any]) -> list[MechanismCandidates]:
        return []

    def screen(self, ctx: dict[str, Any], candidates: list[dict[str, Any]]) -> ScreenVerdict | None:
        return None

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]:
        return default, None

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None:
        return None

    def credit(self, mechanism: str, hook: str) -> None:
        return None

    def take_activity(self) -> list[MechanismActivity]:
        return []
