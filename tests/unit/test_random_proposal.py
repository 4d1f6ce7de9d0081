"""The random-search control arm: deterministic, within the space and its constraints, never frozen, no repeats."""

from __future__ import annotations

from search.config import SearchConfig
from search.constraints import parse_constraint
from search.params import ParamKind, ParamSpec
from search.random_proposal import random_proposal
from search.space import SearchSpace
from search.trace import Experiment, Trace
from tests.unit.traces import ok, request_for

SPECS = (ParamSpec(name="USE_BIAS", kind=ParamKind.BOOL, value=False),
         ParamSpec(name="OPTIMIZER", kind=ParamKind.CHOICE, value="adamw", choices=("adamw", "muon")),
         ParamSpec(name="MATRIX_LR", kind=ParamKind.FLOAT, value=0.003, low=1e-4, high=0.1, log=True),
         ParamSpec(name="BATCH", kind=ParamKind.INT, value=8, low=1, high=64, log=True))
SPACE = SearchSpace(params=SPECS, constraints=(parse_constraint("64 % BATCH == 0", ["BATCH"]),))
CURRENT = {"USE_BIAS": False, "OPTIMIZER": "adamw", "MATRIX_LR": 0.003, "BATCH": 8}


def trace_of(*configs: dict) -> Trace:
    experiments = [Experiment(index=i, config=c, outcome=ok(3.0), kept=i == 0, default_kept=i == 0)
                   for i, c in enumerate([CURRENT, *configs])]
    return Trace(experiments=experiments)


def test_same_seed_same_proposal_within_ranges_constraints_and_never_frozen() -> None:
    request = request_for(trace_of(), SPACE, SearchConfig(frozen=("MATRIX_LR",)))
    for seed in range(40):
        batch = random_proposal(request, seed)
        assert batch == random_proposal(request, seed)
        [candidate] = batch.candidates
        assert candidate.changes and "MATRIX_LR" not in candidate.changes and candidate.proposed_by == "random"
        assert all(candidate.changes[name] != CURRENT[name] for name in candidate.changes)
        assert 64 % candidate.changes.get("BATCH", 8) == 0


def test_an_already_tried_config_is_redrawn() -> None:
    frozen = SearchConfig(frozen=("MATRIX_LR", "BATCH"))  # left: 3 configs that differ from the current one
    request = request_for(trace_of({**CURRENT, "USE_BIAS": True}, {**CURRENT, "OPTIMIZER": "muon"}), SPACE, frozen)
    for seed in range(30):
        [candidate] = random_proposal(request, seed).candidates
        assert candidate.changes == {"USE_BIAS": True, "OPTIMIZER": "muon"}


def test_an_exhausted_space_is_reported_not_raised() -> None:
    frozen = SearchConfig(frozen=("MATRIX_LR", "BATCH", "OPTIMIZER"))
    request = request_for(trace_of({**CURRENT, "USE_BIAS": True}), SPACE, frozen)
    batch = random_proposal(request, 0)
    assert not batch.candidates and "no valid untried configuration" in batch.errors[0]
