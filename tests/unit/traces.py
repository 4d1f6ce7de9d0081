"""Builders of realistic traces for unit tests (pure data, no services)."""

from __future__ import annotations

from search.objective import Objective
from search.trace import Experiment, RunOutcome, Trace, config_with

BASE_CONFIG = {"DEPTH": 4, "MATRIX_LR": 0.003, "OPTIMIZER": "adamw", "ADAM_BETAS": [0.9, 0.95], "USE_BIAS": False}


def ok(value: float) -> RunOutcome:
    return RunOutcome(status="ok", value=value, steps=10)


def crash() -> RunOutcome:
    return RunOutcome(status="crash", error_tail="Traceback...\nRuntimeError: boom")


def build_trace(steps: list[tuple[dict, RunOutcome, bool]], baseline: float = 3.0, generation_size: int = 100,
                objective: Objective | None = None) -> Trace:
    """A trace from (changes, outcome, kept) steps applied in order to a baseline."""
    experiments = [Experiment(index=0, config=BASE_CONFIG, outcome=ok(baseline), kept=True, default_kept=True)]
    current = BASE_CONFIG
    for position, (changes, outcome, kept) in enumerate(steps, start=1):
        config = config_with(current, changes)
        experiments.append(Experiment(index=position, generation=(position - 1) // generation_size,
                                      iteration=(position - 1) % generation_size, changes=changes, config=config,
                                      outcome=outcome, kept=kept, default_kept=kept))
        if kept:
            current = config
    return Trace(objective=objective or Objective(), experiments=experiments)


def request_for(trace: Trace, space, config=None, **extra):
    """A proposal request at the next decision point of `trace` (one track, generation 0)."""
    from search.config import SearchConfig
    from search.context import DecisionPoint
    from search.iteration import ProposalRequest

    point = DecisionPoint(meta_run_id="unit", run_seed=0, generation=0, track=0, iteration=len(trace) - 1, start=1,
                          config=config or SearchConfig())
    return ProposalRequest(point=point, local=trace, state=trace.state(), space=space, **extra)
