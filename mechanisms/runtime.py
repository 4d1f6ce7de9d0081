"""Trusted side of the mechanisms in the inner loop: call their hooks in the sandbox, merge the answers,
count every call and every changed decision (liveness), and quarantine a mechanism that misbehaves.

Each mechanism runs in a sandbox worker of its own, loaded into a fresh one whenever its state is rebuilt:
in a shared interpreter one mechanism could patch a class or module state another relies on (issue 23).
Each also has a budget of hook wall time per generation (the runtime's life), so a mechanism that answers
just under the per-call limit every time is quarantined instead of slowing every iteration.

The runtime only gives advice and decisions. It never sees or writes the search's `best` point or a
measured value: the inner loop owns those and enforces that a crashed run cannot be kept.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable
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
RELOAD_ATTEMPTS = 3  # fresh workers tried for one reload when the worker is replaced under it (CPU budget)
TIME_BUDGET_SETTING = "BILEVEL_MECHANISM_TIME_BUDGET_S"


@dataclass(frozen=True)
class MechanismRef:
    """A mechanism as the inner loop knows it: its name, its version (S3 VersionId or sha) and its source."""

    name: str
    version: str
    source: str
    trusted: bool = False  # our own reference library: runs even where the sandbox is incomplete


@dataclass
class _Slot:
    """One mechanism inside the runtime: its own sandbox, its hooks, its counters, time spent and quarantine state."""

    ref: MechanismRef
    key: str
    host: SandboxHost | None = None  # this mechanism's own worker; None before its first load and once quarantined
    generation: int | None = None  # the host's worker generation that holds the mechanism with its state replayed
    spent_s: float = 0.0  # hook wall time (loads and replays included) in this generation
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
    """The active mechanisms of one inner loop (one generation of one track), each in a sandbox worker of its own."""

    def __init__(self, refs: list[MechanismRef], *, call_timeout_s: float = 2.0, sandbox: SandboxHost | None = None,
                 history: list[tuple[dict[str, Any], dict[str, Any]]] | None = None,
                 time_budget_s: float | None = None, clock: Callable[[], float] = time.perf_counter,
                 quarantine_log_level: int = logging.WARNING, allow_weak_sandbox: bool = False) -> None:
        """`sandbox`: the settings (limits, interpreter, trusted modules) of every mechanism's worker; each gets its
        own `sandbox.sibling()`, and `sandbox`'s own worker is never started here. Default: SandboxHost().
        `history`: past (ctx, result) pairs replayed through `observe` at load, as `rebuild` does.
        `time_budget_s` (settings.mechanism_time_budget_s): hook wall time one mechanism may use in this runtime's
        life, loads and replays included (None: no budget); past it, the mechanism is quarantined. `clock` measures it.
        `quarantine_log_level`: validation lowers it, since a candidate failing there is expected and reported.
        `allow_weak_sandbox` (settings.sandbox_allow_weak): run generated mechanisms even where the sandbox's OS
        layer is incomplete; otherwise they are quarantined at load, with what is missing as the reason."""
        self.quarantine_log_level = quarantine_log_level
        self.allow_weak_sandbox = allow_weak_sandbox
        names = [ref.name for ref in refs]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"mechanism names must be unique in one runtime, repeated: {', '.join(duplicates)}")
        if time_budget_s is not None and not time_budget_s > 0:
            raise ValueError(f"the mechanisms' time budget must be positive, got {time_budget_s!r}")
        self.call_timeout_s = call_timeout_s
        self.time_budget_s = time_budget_s
        self._clock = clock
        self._sandbox = sandbox if sandbox is not None else SandboxHost(call_timeout_s=call_timeout_s)
        prefix = f"runtime{next(_RUNTIME_IDS)}"  # the key names the mechanism in the worker's messages
        self._slots = [_Slot(ref=ref, key=f"{prefix}:{i}:{ref.name}") for i, ref in enumerate(refs)]
        self._history: list[tuple[dict[str, Any], dict[str, Any]]] = list(history or [])
        self._lock = threading.RLock()
        for slot in self._slots:
            self._ready(slot)

    # -- the inner loop's interface -----------------------------------------------------------------

    @property
    def active(self) -> list[MechanismRef]:
        """The mechanisms not quarantined, in order."""
        return [slot.ref for slot in self._slots if slot.active]

    def rebuild(self, history: list[tuple[dict[str, Any], dict[str, Any]]]) -> None:
        """Reset every active mechanism (a fresh worker, loaded from source) and replay observe(ctx, result) over
        the past experiments."""
        with self._lock:
            self._history = list(history)
            for slot in self._slots:
                slot.generation = None
                if slot.active:
                    self._ready(slot)

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
                verdict = self._parsed(slot, "screen", ctx, lambda v: parse_screen(v, len(candidates), candidates), value)
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
                    "spent_s": round(slot.spent_s, 3),
                    "quarantined": not slot.active,
                    "reason": slot.reason,
                }
            return report

    def worker_pids(self) -> dict[str, int | None]:
        """Each mechanism's worker process id (None when it has none running: quarantined, or closed)."""
        with self._lock:
            return {slot.ref.name: slot.host.pid if slot.host is not None else None for slot in self._slots}

    def close(self) -> None:
        """Stop every mechanism's worker."""
        with self._lock:
            for slot in self._slots:
                self._stop_worker(slot)

    def __enter__(self) -> MechanismRuntime:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    # -- calls, quarantine, reloads -------------------------------------------------------------

    def _callable_slots(self, hook: str) -> list[_Slot]:
        return [slot for slot in self._slots if slot.active and hook in slot.hooks]

    def _call(self, slot: _Slot, hook: str, args: list[Any], ctx: dict[str, Any]) -> tuple[bool, Any]:
        """Call one hook; on any failure, or past the time budget, quarantine the mechanism and report no answer."""
        if not self._ready(slot):
            return False, None
        started = self._clock()
        try:
            try:
                value = self._host_of(slot).call(slot.key, hook, args, timeout_s=self.call_timeout_s)
            except MechanismMissing:
                # The worker died while idle and was replaced on this request: reload and replay, then retry once.
                self._charge(slot, hook, started, record=False)
                slot.generation = None
                if not self._ready(slot):
                    return False, None
                started = self._clock()
                value = self._host_of(slot).call(slot.key, hook, args, timeout_s=self.call_timeout_s)
        except SandboxError as error:
            self._charge(slot, hook, started)
            self._quarantine(slot, f"{hook} failed at iteration {_iteration(ctx)}: {error}")
            return False, None
        except Exception as error:  # noqa: BLE001 - no failure of a hook call may reach the inner loop
            logger.exception("the sandbox host failed on %s.%s", slot.ref.name, hook)
            self._charge(slot, hook, started)
            self._quarantine(slot, f"{hook} failed at iteration {_iteration(ctx)}: the sandbox host failed "
                                   f"({type(error).__name__}: {error})")
            return False, None
        if not self._charge(slot, hook, started):
            return False, None
        return True, value

    def _charge(self, slot: _Slot, hook: str, started: float, *, record: bool = True) -> bool:
        """Count the time since `started` against the mechanism's budget (and its hook's timing if `record`);
        quarantine it past the budget. Returns whether it is still within."""
        seconds = max(self._clock() - started, 0.0)
        if record:
            slot.record_call(hook, seconds * 1000)
        slot.spent_s += seconds
        if self.time_budget_s is None or slot.spent_s <= self.time_budget_s or not slot.active:
            return slot.active
        self._quarantine(slot, f"too slow: its hooks took {slot.spent_s:.2f} s in this generation, over its budget of "
                               f"{self.time_budget_s:g} s ({TIME_BUDGET_SETTING}; last: {hook})")
        return False

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
        """Take the mechanism out for the rest of this runtime, and stop its worker with whatever it changed there."""
        slot.reason = reason[:2000]
        slot.quarantined_in_period = True
        logger.log(self.quarantine_log_level, "mechanism %s (%s) quarantined: %s", slot.ref.name, slot.ref.version,
                   slot.reason)
        self._stop_worker(slot)

    def _stop_worker(self, slot: _Slot) -> None:
        host, slot.host, slot.generation = slot.host, None, None
        if host is None:
            return
        try:
            host.close()
        except Exception as error:  # noqa: BLE001 - closing must not fail the caller; the worker may be gone already
            logger.warning("stopping the sandbox worker of %s: %s", slot.ref.name, error)

    @staticmethod
    def _host_of(slot: _Slot) -> SandboxHost:
        if slot.host is None:
            raise SandboxError("the mechanism has no sandbox worker")  # _ready gave it one; quarantined since
        return slot.host

    def _ready(self, slot: _Slot) -> bool:
        """Whether the mechanism is loaded, its state replayed, in a live worker of its own. If not (first use, a
        rebuild, its worker replaced), load it into a fresh worker: no code of an earlier load ran there."""
        if not slot.active:
            return False
        host = slot.host
        if host is not None and host.running and host.generation == slot.generation:
            return True
        for _attempt in range(RELOAD_ATTEMPTS):
            host = self._fresh_worker(slot)
            if host is None:
                return False
            generation = host.generation
            if not (self._load(slot, host) and self._replay(slot, host)):
                return False
            if host.running and host.generation == generation:  # not replaced meanwhile (its CPU budget)
                slot.generation = generation
                return True
        self._quarantine(slot, "the sandbox kept restarting while the mechanism was reloaded")
        return False

    def _fresh_worker(self, slot: _Slot) -> SandboxHost | None:
        """Replace the mechanism's worker by a newly started one; None (and quarantined) if it cannot run there."""
        self._stop_worker(slot)
        host = slot.host = self._sandbox.sibling()
        try:
            host.ensure_running()
            missing = [] if self.allow_weak_sandbox or slot.ref.trusted else host.missing_protections()
        except Exception as error:  # noqa: BLE001 - SandboxUnavailable, or anything else: the mechanism cannot run
            self._quarantine(slot, f"the sandbox is unavailable: {error}")
            return None
        if missing:
            # Where the OS layer is incomplete, generated mechanisms are not activated unless allowed explicitly.
            self._quarantine(slot, f"not activated: the mechanism sandbox is incomplete here (missing: {'; '.join(missing)}); "
                                   f"set {ALLOW_WEAK_SETTING} to run generated mechanisms anyway")
            return None
        return host

    def _load(self, slot: _Slot, host: SandboxHost) -> bool:
        started = self._clock()
        try:
            loaded = host.load(slot.key, slot.ref.source)
        except Exception as error:  # noqa: BLE001 - SandboxError, or any other host failure: quarantine, never raise
            if not isinstance(error, SandboxError):
                logger.exception("the sandbox host failed loading %s", slot.ref.name)
            self._quarantine(slot, f"loading failed: {error}")
            return False
        slot.hooks = frozenset(loaded.hooks)
        slot.declared_name = loaded.name
        if not slot.hooks:
            self._quarantine(slot, f"the class defines none of the hooks {', '.join(HOOKS)}")
            return False
        return self._charge(slot, "load", started, record=False)

    def _replay(self, slot: _Slot, host: SandboxHost) -> bool:
        if "observe" not in slot.hooks:
            return True
        for position, (ctx, result) in enumerate(self._history):
            started = self._clock()
            try:
                host.call(slot.key, "observe", [ctx, result], timeout_s=self.call_timeout_s)
            except Exception as error:  # noqa: BLE001 - as in _call: quarantine, never raise
                if not isinstance(error, SandboxError):
                    logger.exception("the sandbox host failed replaying %s", slot.ref.name)
                self._quarantine(slot, f"observe failed while rebuilding state (past experiment {position + 1}): {error}")
                return False
            slot.replayed += 1
            if not self._charge(slot, "observe", started, record=False):
                return False
        return True


def _iteration(ctx: Any) -> Any:
    return ctx.get("iteration", "?") if isinstance(ctx, dict) else "?"
