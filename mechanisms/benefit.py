"""The simulated benefit of a candidate mechanism: the current active set against the set with it, each run in its
own sandboxed runtime (the same runtime the inner loop uses), state rebuilt from the trace for every seed."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from mechanisms.active import ActiveMechanism, ActiveSet, open_runtime
from search.config import SearchConfig
from search.hooks import Hooks, NoHooks
from search.simulate import SimulatedGain, SimulationSettings, TraceHooksFactory, simulate_everywhere

if TYPE_CHECKING:
    from mechanisms.replay import ReplaySource
    from search.space import SearchSpace
    from search.trace import Trace


def next_config(trace: Trace, fallback: SearchConfig) -> SearchConfig:
    """The search config the next generation starts from: the last generation's (Level 1.5 may change it later)."""
    return trace.generations[-1].config if trace.generations else fallback


def simulated_benefit(candidate: ActiveMechanism, active: ActiveSet, trace: Trace, space: SearchSpace,
                      source: ReplaySource, config: SearchConfig, *, settings: SimulationSettings | None = None,
                      screen_rounds: int = 2, allow_weak_sandbox: bool = False) -> SimulatedGain:
    """`candidate` added to `active` against `active` alone, over the simulated next generation, on the trace's
    surrogate and on the synthetic landscapes. SurrogateError when the trace cannot support a surrogate."""
    return simulated_set_benefit(active.with_added(candidate), active, trace, space, source, config, settings=settings,
                                 screen_rounds=screen_rounds, allow_weak_sandbox=allow_weak_sandbox)


def simulated_set_benefit(proposed: ActiveSet, current: ActiveSet, trace: Trace, space: SearchSpace,
                          source: ReplaySource, config: SearchConfig, *, settings: SimulationSettings | None = None,
                          screen_rounds: int = 2, allow_weak_sandbox: bool = False) -> SimulatedGain:
    """The `proposed` active set against the `current` one (any two sets: e.g. a whole library against none), as
    `simulated_benefit`. SurrogateError when the trace cannot support a surrogate."""
    from mechanisms.replay import replay_history

    original = replay_history(trace, space, source)
    last: list = [None, None]  # the last relabelled trace and its history (both arms of a seed share it)

    def history_of(seen: Trace) -> list:
        # a relabelled trace (a synthetic landscape's) has other values: its own history, so state matches it
        if seen is trace:
            return original
        if last[0] is not seen:
            last[:] = [seen, replay_history(seen, space, source)]
        return last[1]

    with ExitStack() as stack:
        def arm(mechanisms: ActiveSet) -> TraceHooksFactory:
            runtime = open_runtime(mechanisms, trace, space, source, allow_weak_sandbox=allow_weak_sandbox)
            if runtime is None:
                return lambda _seen: NoHooks()
            stack.callback(runtime.close)

            def fresh(seen: Trace) -> Hooks:
                runtime.rebuild(history_of(seen))  # every seed starts from the state the live loop would have
                runtime.take_activity()
                return runtime

            return fresh

        return simulate_everywhere(trace, space, config, current=arm(current), candidate=arm(proposed), settings=settings,
                                   meta_run_id=source.meta_run_id, screen_rounds=screen_rounds)
