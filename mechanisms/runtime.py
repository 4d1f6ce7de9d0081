"""Trusted side of the mechanisms in the inner loop: call their hooks in the sandbox, merge the answers,
count every call and every changed decision (liveness), and quarantine a mechanism that misbehaves.

The runtime only gives advice and decisions. It never sees or writes the search's `best` point or a
measured value: the inner loop owns those and enforces that a crashed run cannot be kept.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from mechanisms.api import (
    HOOKS,
    MAX_GUIDANCE_CHARS,
    HookAnswerError,
    PlanAdvice,
    ScreenVerdict,
    parse_accept,
    parse_plan,
    parse_propose,
    parse_screen,
)
from mechanisms.sandbox import ALLOW_WEAK_SETTING, MechanismMissing, SandboxError, SandboxHost
from search.hooks import MechanismCandidates
from search.trace import MechanismActivity

logger = logging.getLogger(__name__)

_RUNTIME_IDS = itertools.count(1)
MAX_PLAN_NAMES = 32  # PlanAdvice.focus/avoid bound


@dataclass(frozen=True)
class MechanismRef:
    """A mechanism as the inner loop knows it: its name, its version (S3 VersionId or sha) and its source."""

    name: str
    version: str
    source: str
    trusted: bool = False  # our own reference library: runs even where the sandbox is incomplete


@dataclass
class _Slot:
    """One mechanism inside the runtime: its sandbox key, its hooks, its counters and its quarantine state."""

    ref: MechanismRef
    key: str
    hooks: frozenset[str] = frozenset()
    declared_name: str | None = None  # the class's own `name` attribute (or class name), as the worker found it
    reason: str | None = None
    calls: Counter[str] = field(default_factory=Counter)
    changed: Counter[str] = field(default_factory=Counter)
    max_ms: dict[str, float] = field(default_factory=dict)
    total_ms: dict[str, float] = field(default_factory=dict)
    replayed: int = 0
    period_calls: Counter[str] = field(default_factory=Counter)
    period_changed: list[str] = field(default_factory=list)
    quarantined_in_period: bool = False

    @property
    def active(self) -> bool:
        return self.reason is None

    def record_call(self, hook: str, milliseconds: float) -> None:
        self.calls[hook] += 1
        self.period_calls[hook] += 1
        self.total_ms[hook] = self.total_ms.get(hook, 0.0) + milliseconds
        self.max_ms[hook] = max(self.max_ms.get(hook, 0.0), milliseconds)

    def record_change(self, hook: str) -> None:
        self.changed[hook] += 1
        if hook not in self.period_changed:
            self.period_changed.append(hook)


def merge_advice(advices: list[PlanAdvice]) -> PlanAdvice:
    """One advice from several: guidance joined (each part shortened to a fair share of the limit),
    focus and avoid united in order (a name some mechanism says to avoid is not also a focus),
    the largest n_candidates, and the first temperature given."""
    guidances = [a.guidance.strip() for a in advices if a.guidance.strip()]
    if guidances:
        share = (MAX_GUIDANCE_CHARS - (len(guidances) - 1)) // len(guidances)
        guidances = [g if len(g) <= share else g[: max(share - 3, 0)] + "..." for g in guidances]
    avoid = _ordered_union(a.avoid for a in advices)
    focus = [name for name in _ordered_union(a.focus for a in advices) if name not in avoid]
    candidates = [a.n_candidates for a in advices if a.n_candidates is not None]
    temperatures = [a.temperature for a in advices if a.temperature is not None]
    return PlanAdvice(
        guidance="\n".join(guidances),
        focus=focus[:MAX_PLAN_NAMES],
        avoid=avoid[:MAX_PLAN_NAMES],
        n_candidates=max(candidates) if candidates else None,
        temperature=temperatures[0] if temperatures else None,
    )


def _ordered_union(lists: Any) -> list[str]:
    seen: dict[str, None] = {}
    for names in lists:
        for name in names:
            seen.setdefault(name, None)
    return list(seen)


def _known_params_only(advice: PlanAdvice, ctx: dict[str, Any]) -> PlanAdvice:
    """Drop focus/avoid names that are not parameters of the workload (a typo must not reach the prompt),
    and frozen parameters from focus (the search config forbids changing them)."""
    params = ctx.get("params") if isinstance(ctx, dict) else None
    if not isinstance(params, list):
        return advice
    known = {p.get("name") for p in params if isinstance(p, dict)}
    frozen = set(ctx.get("frozen") or ())
    focus = [n for n in advice.focus if n in known and n not in frozen]
    return advice.model_copy(update={"focus": focus, "avoid": [n for n in advice.avoid if n in known]})


class MechanismRuntime:
    """The active mechanisms of one inner loop, behind one sandbox worker."""

    def __init__(self, refs: list[MechanismRef], *, call_timeout_s: float = 2.0, host: SandboxHost | None = None,
                 quarantine_log_level: int = logging.WARNING, allow_weak_sandbox: bool = False) -> None:
        """`quarantine_log_level`: validation lowers it, since a candidate failing there is expected and reported.
        `allow_weak_sandbox` (settings.sandbox_allow_weak): run generated mechanisms even where the sandbox's OS
        layer is incomplete; otherwise they are quarantined at load, with what is missing as the reason."""
        self.quarantine_log_level = quarantine_log_level
        self.allow_weak_sandbox = allow_weak_sandbox
        names = [ref.name for ref in refs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mechanism names must be unique in one runtime, repeated: {', '.join(duplicates)}")
        self.call_timeout_s = call_timeout_s
        self._owns_host = host is None
        self._host = host if host is not None else SandboxHost(call_timeout_s=call_timeout_s)
        prefix = f"runtime{next(_RUNTIME_IDS)}"  # keys stay distinct when several runtimes share a host
        self._slots = [_Slot(ref=ref, key=f"{prefix}:{i}:{ref.name}") for i, ref in enumerate(refs)]
        self._history: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self._generation: int | None = None
        self._lock = threading.RLock()
        if self._slots:
            self._ensure_current()

    # -- the inner loop's interface -----------------------------------------------------------------

    @property
    def active(self) -> list[MechanismRef]:
        """The mechanisms not quarantined, in order."""
        return [slot.ref for slot in self._slots if slot.active]

    def rebuild(self, history: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Reset every active mechanism and replay observe(ctx, result) over the past experiments."""
        with self._lock:
            self._history = list(history)
            self._generation = None  # reload from source: fresh state, then replay
            self._ensure_current()

    def plan(self, ctx: dict[str, Any]) -> PlanAdvice:
        """The merged advice of every active mechanism (empty advice when none has any)."""
        with self._lock:
            advices = []
            for slot in self._callable_slots("plan"):
                answered, value = self._call(slot, "plan", [ctx], ctx)
                if not answered:
                    continue
                advice = self._parsed(slot, "plan", ctx, parse_plan, value)
                if advice is None:
                    continue
                advice = _known_params_only(advice, ctx)
                if not advice.is_empty():
                    slot.record_change("plan")
                    advices.append(advice)
            return merge_advice(advices)

    def propose(self, ctx: dict[str, Any]) -> list[MechanismCandidates]:
        """Every active mechanism's own candidates (validated by the inner loop like any proposal)."""
        with self._lock:
            found = []
            for slot in self._callable_slots("propose"):
                answered, value = self._call(slot, "propose", [ctx], ctx)
                if not answered:
                    continue
                answer = self._parsed(slot, "propose", ctx, parse_propose, value)
                if answer is not None:
                    found.append(MechanismCandidates(mechanism=slot.ref.name, answer=answer))
            return found

    def credit(self, mechanism: str, hook: str) -> None:
        """Count a changed decision the runtime could not see itself (the loop trained a mechanism's candidate)."""
        with self._lock:
            for slot in self._slots:
                if slot.ref.name == mechanism:
                    slot.record_change(hook)

    def screen(self, ctx: dict[str, Any], candidates: list[dict[str, Any]]) -> ScreenVerdict | None:
        """Ask the active mechanisms in order; the first that gives a verdict decides."""
        with self._lock:
            if not candidates:
                return None
            for slot in self._callable_slots("screen"):
                answered, value = self._call(slot, "screen", [ctx, candidates], ctx)
                if not answered:
                    continue
                verdict = self._parsed(slot, "screen", ctx, lambda v: parse_screen(v, len(candidates)), value)
                if verdict is None:
                    continue
                if verdict.reject or (verdict.choose or 0) != 0:
                    slot.record_change("screen")
                return verdict
            return None

    def accept(self, ctx: dict[str, Any], result: dict[str, Any], default: bool) -> tuple[bool, str | None]:
        """Chain the accept hooks, each given the decision so far; returns (keep, who changed it or None)."""
        with self._lock:
            decision = bool(default)
            changed_by = None
            for slot in self._callable_slots("accept"):
                answered, value = self._call(slot, "accept", [ctx, result, decision], ctx)
                if not answered:
                    continue
                answer = self._parsed(slot, "accept", ctx, parse_accept, value)
                if answer is None or answer == decision:
                    continue
                slot.record_change("accept")
                decision = answer
                changed_by = slot.ref.name
            return decision, (changed_by if decision != default else None)

    def observe(self, ctx: dict[str, Any], result: dict[str, Any]) -> None:
        """Tell every active mechanism what happened; kept for replay after a sandbox restart.
        `ctx` and `result` are held by reference and must not be mutated afterwards."""
        with self._lock:
            for slot in self._callable_slots("observe"):
                self._call(slot, "observe", [ctx, result], ctx)
            self._history.append((ctx, result))

    def take_activity(self) -> list[MechanismActivity]:
        """What each mechanism did since the last take (for the experiment's trace record), then reset."""
        with self._lock:
            records = []
            for slot in self._slots:
                if not (slot.active or slot.quarantined_in_period):
                    continue
                records.append(
                    MechanismActivity(
                        name=slot.ref.name,
                        version=slot.ref.version,
                        calls=dict(slot.period_calls),
                        changed=list(slot.period_changed),
                        quarantined=not slot.active,
                        note=(slot.reason or "") if slot.quarantined_in_period else "",
                    )
                )
                slot.period_calls = Counter()
                slot.period_changed = []
                slot.quarantined_in_period = False
            return records

    def liveness(self) -> dict[str, dict[str, Any]]:
        """Cumulative per mechanism: calls and changed decisions per hook, timing, replays, quarantine."""
        with self._lock:
            report = {}
            for slot in self._slots:
                report[slot.ref.name] = {
                    "version": slot.ref.version,
                    "declared_name": slot.declared_name,
                    "hooks": sorted(slot.hooks),
                    "calls": {hook: slot.calls[hook] for hook in HOOKS if hook in slot.hooks},
                    "changed": {hook: slot.changed[hook] for hook in HOOKS if hook in slot.hooks and hook != "observe"},
                    "decisions_changed": sum(slot.changed.values()),
                    "max_ms": {hook: round(ms, 3) for hook, ms in slot.max_ms.items()},
                    "mean_ms": {hook: round(slot.total_ms[hook] / slot.calls[hook], 3) for hook in slot.total_ms if slot.calls[hook]},
                    "replayed": slot.replayed,
                    "quarantined": not slot.active,
                    "reason": slot.reason,
                }
            return report

    def close(self) -> None:
        with self._lock:
            if self._owns_host:
                self._host.close()
                return
            for slot in self._slots:
                if slot.active:
                    try:
                        self._host.drop(slot.key)
                    except Exception as error:  # noqa: BLE001 - closing must not fail the caller; the worker may be gone
                        logger.debug("dropping %s from a shared sandbox: %s", slot.ref.name, error)

    def __enter__(self) -> MechanismRuntime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- calls, quarantine, reloads -------------------------------------------------------------

    def _callable_slots(self, hook: str) -> list[_Slot]:
        if not self._ensure_current():
            return []
        return [slot for slot in self._slots if slot.active and hook in slot.hooks]

    def _call(self, slot: _Slot, hook: str, args: list[Any], ctx: dict[str, Any]) -> tuple[bool, Any]:
        """Call one hook; on any failure quarantine the mechanism and report no answer."""
        if not slot.active or not self._ensure_current() or not slot.active:
            return False, None
        started = time.perf_counter()
        try:
            try:
                value = self._host.call(slot.key, hook, args, timeout_s=self.call_timeout_s)
            except MechanismMissing:
                # The worker was replaced between our check and the call: reload everyone, then retry once.
                self._generation = None
                if not self._ensure_current() or not slot.active:
                    return False, None
                started = time.perf_counter()
                value = self._host.call(slot.key, hook, args, timeout_s=self.call_timeout_s)
        except SandboxError as error:
            slot.record_call(hook, (time.perf_counter() - started) * 1000)
            self._quarantine(slot, f"{hook} failed at iteration {_iteration(ctx)}: {error}")
            return False, None
        except Exception as error:  # noqa: BLE001 - no failure of a hook call may reach the inner loop
            logger.exception("the sandbox host failed on %s.%s", slot.ref.name, hook)
            slot.record_call(hook, (time.perf_counter() - started) * 1000)
            self._quarantine(slot, f"{hook} failed at iteration {_iteration(ctx)}: the sandbox host failed "
                                   f"({type(error).__name__}: {error})")
            return False, None
        slot.record_call(hook, (time.perf_counter() - started) * 1000)
        return True, value

    def _parsed(self, slot: _Slot, hook: str, ctx: dict[str, Any], parse: Any, value: Any) -> Any:
        try:
            return parse(value)
        except HookAnswerError as error:
            self._quarantine(slot, f"{hook} answered outside the API at iteration {_iteration(ctx)}: {error}")
            return None
        except Exception as error:  # noqa: BLE001 - an answer the parser chokes on is garbage too
            logger.exception("parsing %s.%s's answer failed", slot.ref.name, hook)
            self._quarantine(slot, f"{hook} answered outside the API at iteration {_iteration(ctx)}: "
                                   f"{type(error).__name__}: {error}")
            return None

    def _quarantine(self, slot: _Slot, reason: str) -> None:
        slot.reason = reason[:2000]
        slot.quarantined_in_period = True
        logger.log(self.quarantine_log_level, "mechanism %s (%s) quarantined: %s", slot.ref.name, slot.ref.version,
                   slot.reason)
        try:
            self._host.drop(slot.key)
        except Exception as error:  # noqa: BLE001 - the mechanism is out already; a failed drop changes nothing
            logger.debug("dropping quarantined %s: %s", slot.ref.name, error)

    def _ensure_current(self) -> bool:
        """Make sure the worker holds every active mechanism with its state replayed; False if none can run."""
        for _attempt in range(len(self._slots) + 3):
            if not any(slot.active for slot in self._slots):
                return False
            try:
                generation = self._host.ensure_running()
            except Exception as error:  # noqa: BLE001 - SandboxUnavailable, or anything else: no mechanism can run
                for slot in self._slots:
                    if slot.active:
                        self._quarantine(slot, f"the sandbox is unavailable: {error}")
                return False
            if generation == self._generation:
                return True
            self._refuse_untrusted_if_weak()
            if self._load_and_replay_all() and self._host.generation == generation:
                self._generation = generation
                return True
        for slot in self._slots:
            if slot.active:
                self._quarantine(slot, "the sandbox kept restarting while mechanisms were reloaded")
        return False

    def _refuse_untrusted_if_weak(self) -> None:
        """Where the OS layer is incomplete, generated mechanisms are not activated unless allowed explicitly."""
        if self.allow_weak_sandbox or not any(slot.active and not slot.ref.trusted for slot in self._slots):
            return
        missing = self._host.missing_protections()
        if not missing:
            return
        reason = (f"not activated: the mechanism sandbox is incomplete here (missing: {'; '.join(missing)}); "
                  f"set {ALLOW_WEAK_SETTING} to run generated mechanisms anyway")
        for slot in self._slots:
            if slot.active and not slot.ref.trusted:
                self._quarantine(slot, reason)

    def _load_and_replay_all(self) -> bool:
        """Load every active mechanism fresh, then replay observe; False if the worker was replaced meanwhile."""
        for slot in self._slots:
            if slot.active and not self._load(slot):
                return False
        for slot in self._slots:
            if slot.active and "observe" in slot.hooks and not self._replay(slot):
                return False
        return True

    def _load(self, slot: _Slot) -> bool:
        try:
            loaded = self._host.load(slot.key, slot.ref.source)
        except Exception as error:  # noqa: BLE001 - SandboxError, or any other host failure: quarantine, never raise
            if not isinstance(error, SandboxError):
                logger.exception("the sandbox host failed loading %s", slot.ref.name)
            self._quarantine(slot, f"loading failed: {error}")
            return self._host.running  # False: the worker was replaced, everyone must be reloaded
        slot.hooks = frozenset(loaded.hooks)
        slot.declared_name = loaded.name
        if not slot.hooks:
            self._quarantine(slot, f"the class defines none of the hooks {', '.join(HOOKS)}")
        return True

    def _replay(self, slot: _Slot) -> bool:
        for position, (ctx, result) in enumerate(self._history):
            try:
                self._host.call(slot.key, "observe", [ctx, result], timeout_s=self.call_timeout_s)
            except Exception as error:  # noqa: BLE001 - as in _call: quarantine, never raise
                if not isinstance(error, SandboxError):
                    logger.exception("the sandbox host failed replaying %s", slot.ref.name)
                self._quarantine(slot, f"observe failed while rebuilding state (past experiment {position + 1}): {error}")
                return self._host.running
            slot.replayed += 1
        return True


def _iteration(ctx: Any) -> Any:
    return ctx.get("iteration", "?") if isinstance(ctx, dict) else "?"
