"""The mechanism API (version 2): the hooks, what they receive and may return, and the trusted side's parsers.

A mechanism is the source text of ONE top-level class with any subset of the hooks below; every hook may return
None ("no opinion"). Hooks are pure functions of their arguments and the mechanism's own state, so the state is
rebuilt by replaying `observe` over the trace. Mechanism code runs only in the sandbox (mechanisms/sandbox.py).
`API_TEXT` is what Level 2 shows the LLM; `HOOK_DOCS` holds each hook's exact contract (the generation skeleton
uses it). Version 1 mechanisms (no `propose`, values read as ctx["best"]["val_bpb"]) keep working: every view
carries the value under "value" and under the metric's own name.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from search.hooks import (
    HOOKS,
    MAX_GUIDANCE_CHARS,
    MAX_PROPOSED,
    MAX_REASON_CHARS,
    PlanAdvice,
    ProposeAnswer,
    ScreenVerdict,
)

__all__ = ["API_TEXT", "API_VERSION", "CONTEXT_TEXT", "HOOKS", "HOOK_DOCS", "HookAnswerError", "MAX_GUIDANCE_CHARS",
           "MAX_REASON_CHARS", "PlanAdvice", "ProposeAnswer", "ScreenVerdict", "parse_accept", "parse_plan",
           "parse_propose", "parse_screen"]

API_VERSION = 2

CONTEXT_TEXT = """\
What the hooks receive (plain dicts and lists; the same keys every call):
  ctx["iteration"], ctx["generation"], ctx["seed"]: ints (use random.Random(ctx["seed"]) for randomness)
  ctx["objective"]: {"name": "val_bpb", "goal": "minimize" or "maximize"}
  ctx["params"]: list of {"name", "kind": "int"|"float"|"bool"|"choice"|"float_tuple", "value", "low", "high",
                 "choices", "log"}; ctx["frozen"]: names that may not change now
  ctx["best"], ctx["current"], ctx["baseline"]: {"config": {NAME: value}, "value": float, "index": int}
  ctx["trace"]: past experiments, oldest first, each {"index", "changes": {NAME: value}, "config": {NAME: value},
                "status": "ok"|"crash"|"timeout"|"invalid"|"stopped", "value": float or None, "kept": bool}
  candidates (screen): list of {"changes": {NAME: value}, "hypothesis": str, "config": {...}, "proposed_by": str}
  result (accept, observe): one experiment like those in ctx["trace"]; accept sees "default_kept" instead of "kept"
Better means lower "value" when the goal is "minimize", higher when "maximize": use h.is_better(ctx, a, b).
Configs are dicts (unhashable): use h.config_key(config) as a set or dict key."""

HOOK_DOCS: dict[str, tuple[str, str]] = {
    "plan": ("def plan(self, ctx):",
             'Before the LLM proposes. Return None, or a dict with any of: "guidance": str (advice for the LLM), '
             '"focus": [NAME, ...], "avoid": [NAME, ...], "n_candidates": int 1-4, "temperature": float 0-1.5.'),
    "propose": ("def propose(self, ctx):",
                'Put concrete candidates on the table. Return None, or a list of up to 4 candidates, each made with '
                'h.candidate(NAME, value, "reason") (a dict {"changes": {NAME: value}, "reason": str}), or '
                '{"candidates": [...], "skip_llm": True} to skip the LLM this iteration. Values must be valid for '
                "the parameter (use h.neighbour or h.random_value); invalid or already-tried ones are dropped."),
    "screen": ("def screen(self, ctx, candidates):",
               'After proposing, pick which candidate trains. Return None (train candidates[0]), or {"choose": i} with '
               'an int i in range(len(candidates)), or {"reject": True, "reason": str} to ask for new candidates.'),
    "accept": ("def accept(self, ctx, result, default):",
               "After training, override keep/discard. `default` is the decision without you (True = keep). "
               "Return None (agree), True (keep) or False (discard). Never return a dict."),
    "observe": ("def observe(self, ctx, result):",
                "After the decision: update self's state from `result`. Return None."),
}

API_TEXT = "\n".join([
    "A mechanism is ONE Python class with a `name` attribute and any of these hook methods:",
    *(f"  {signature}\n      {text}" for signature, text in HOOK_DOCS.values()),
    "Inside a mechanism, `import helpers as h` gives pure functions: h.untried(ctx) (editable parameters never "
    "changed yet), h.editable(ctx), h.neighbour(ctx, NAME, rng) (a valid nearby value), h.random_value(ctx, NAME, rng), "
    "h.param_stats(ctx) ({NAME: {'tries', 'kept', 'crashes', 'best_gain', 'last_value'}}), h.best_configs(ctx, k), "
    "h.tried(ctx, config), h.config_key(config), h.is_better(ctx, a, b), h.value_of(view), "
    "h.candidate(NAME, value, reason).",
    CONTEXT_TEXT,
])


class HookAnswerError(ValueError):
    """A hook answered something outside the API (garbage): the mechanism is quarantined."""


def _first_error(error: ValidationError) -> str:
    first = error.errors()[0]
    where = ".".join(str(p) for p in first["loc"])
    return f"{where}: {first['msg']}" if where else first["msg"]


def parse_plan(answer: Any) -> PlanAdvice | None:
    if answer is None:
        return None
    if not isinstance(answer, dict):
        raise HookAnswerError(f"plan must return a dict or None, got {type(answer).__name__}")
    try:
        return PlanAdvice.model_validate(answer)
    except ValidationError as error:
        raise HookAnswerError(f"plan returned an invalid dict ({_first_error(error)})") from error


VIEW_KEYS = frozenset({"changes", "hypothesis", "config", "proposed_by"})  # search/context.candidate_view


def _as_proposed(candidate: Any) -> Any:
    """A candidate written in the shape `screen` is shown candidates in (changes, hypothesis, config, proposed_by),
    read as {"changes", "reason"}: its hypothesis is the reason, and its config follows from its changes. The local
    model wrote that shape in 2 of the 8 mutants of level2-yield-6's first four sessions. Other keys stay garbage."""
    if not isinstance(candidate, dict) or "changes" not in candidate or "hypothesis" not in candidate:
        return candidate
    if set(candidate) - VIEW_KEYS - {"reason"}:
        return candidate
    reason = candidate.get("reason", candidate["hypothesis"])
    return {"changes": candidate["changes"], "reason": reason[:MAX_REASON_CHARS] if isinstance(reason, str) else ""}


def parse_propose(answer: Any) -> ProposeAnswer | None:
    """A list of candidates, one candidate dict, or {"candidates": [...], "skip_llm": bool}. Candidates beyond the
    first MAX_PROPOSED are dropped, not refused: a propose that offers one candidate per parameter is a usable
    answer (the local model's; it quarantined a live mechanism in level2-yield-4)."""
    if answer is None:
        return None
    if isinstance(answer, dict) and "changes" in answer:
        answer = {"candidates": [answer]}
    elif isinstance(answer, list):
        answer = {"candidates": answer}
    if not isinstance(answer, dict):
        raise HookAnswerError(f"propose must return a list of candidates, a candidate dict or None, got "
                              f"{type(answer).__name__}")
    if isinstance(answer.get("candidates"), list) and len(answer["candidates"]) > MAX_PROPOSED:
        answer = {**answer, "candidates": answer["candidates"][:MAX_PROPOSED]}
    if isinstance(answer.get("candidates"), list):
        answer = {**answer, "candidates": [_as_proposed(c) for c in answer["candidates"]]}
    try:
        parsed = ProposeAnswer.model_validate(answer)
    except ValidationError as error:
        raise HookAnswerError(f"propose returned {_shown(answer)}: {_first_error(error)}; each candidate must be "
                              '{"changes": {NAME: value}, "reason": str} (use h.candidate(NAME, value, reason))') from error
    return parsed if parsed.candidates else None


def parse_screen(answer: Any, n_candidates: int, candidates: list[dict[str, Any]] | None = None) -> ScreenVerdict | None:
    """{"choose": i} or {"reject": True, "reason": str}; also, as the local model writes them, a bare index and one of
    `candidates` itself (the one it chose: a level2-yield-4 screen returned the candidate, not its index)."""
    if answer is None:
        return None
    if isinstance(answer, int) and not isinstance(answer, bool):
        answer = {"choose": answer}
    elif isinstance(answer, dict) and "changes" in answer and candidates:
        chosen = [i for i, c in enumerate(candidates) if isinstance(c, dict) and c.get("changes") == answer["changes"]]
        if chosen:
            answer = {"choose": chosen[0]}
    if not isinstance(answer, dict):
        raise HookAnswerError(f"screen must return a dict or None, got {type(answer).__name__}")
    try:
        verdict = ScreenVerdict.model_validate(answer)
    except ValidationError as error:
        raise HookAnswerError(f"screen returned {_shown(answer)}: {_first_error(error)}; choose must be an int index "
                              f"in [0, {n_candidates - 1}]") from error
    if verdict.choose is not None and verdict.choose >= n_candidates:
        raise HookAnswerError(f"screen returned {_shown(answer)}: choose must be an int index in [0, {n_candidates - 1}]")
    if verdict.choose is None and not verdict.reject:
        return None
    return verdict


def parse_accept(answer: Any) -> bool | None:
    if answer is None or isinstance(answer, bool):
        return answer
    raise HookAnswerError(f"accept returned {_shown(answer)}: it must return True, False or None")


def _shown(value: Any, limit: int = 120) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
