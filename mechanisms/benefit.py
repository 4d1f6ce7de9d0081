"""The simulated benefit of a candidate mechanism: the current active set against the set with it, each run in its
own sandboxed runtime (the same runtime the inner loop uses), state rebuilt from the trace for every seed."""

from __future__ import annotations

from contextlib import ExitStack
from typing import TYPE_CHECKING

from mechanisms.active import ActiveMechanism, ActiveSet, open_runtime
from search.config import SearchConfig
from search.hooks import Hooks, NoHooks
from search.simulate import HooksFactory, SimulatedGain, SimulationSettings, simulate_gain

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
    """`candidate` added to `active` against `active` alone, over the simulated next generation.
    SurrogateError when the trace cannot support a surrogate."""
    from mechanisms.replay import replay_history

    history = replay_history(trace, space, source)
    with ExitStack() as stack:
        def arm(mechanisms: ActiveSet) -> HooksFactory:
            runtime = open_runtime(mechanisms, trace, space, source, allow_weak_sandbox=allow_weak_sandbox)
            if runtime is None:
                return NoHooks
            stack.callback(runtime.close)

            def fresh() -> Hooks:
                runtime.rebuild(history)  # every seed starts from the state the live loop would have
                runtime.take_activity()
                return runtime

            return fresh

        return simulate_gain(trace, space, config, current=arm(active), candidate=arm(active.with_added(candidate)),
                             settings=settings, meta_run_id=source.meta_run_id, screen_rounds=screen_rounds)
