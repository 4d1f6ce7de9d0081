"""The random-search control arm: deterministic, within the space, never frozen, and not repeating itself."""

from __future__ import annotations

from search.params import ParamKind, ParamSpec
from search.random_proposal import random_proposal

SPECS = [ParamSpec(name="USE_BIAS", kind=ParamKind.BOOL, value=False),
         ParamSpec(name="OPTIMIZER", kind=ParamKind.CHOICE, value="adamw", choices=("adamw", "muon")),
         ParamSpec(name="MATRIX_LR", kind=ParamKind.FLOAT, value=0.003, low=1e-4, high=0.1, log=True)]
CURRENT = {"USE_BIAS": False, "OPTIMIZER": "adamw", "MATRIX_LR": 0.003}


def test_same_seed_same_proposal_within_ranges_and_never_frozen() -> None:
    for seed in range(30):
        proposal = random_proposal(SPECS, CURRENT, ("MATRIX_LR",), seed)
        assert proposal == random_proposal(SPECS, CURRENT, ("MATRIX_LR",), seed)
        assert proposal.changes and "MATRIX_LR" not in proposal.changes
        assert all(proposal.changes[name] != CURRENT[name] for name in proposal.changes)


def test_an_already_tried_config_is_redrawn() -> None:
    frozen = ("MATRIX_LR",)  # left: 3 configs that differ from the current one
    tried = [{**CURRENT, "USE_BIAS": True}, {**CURRENT, "OPTIMIZER": "muon"}]
    for seed in range(30):
        changes = random_proposal(SPECS, CURRENT, frozen, seed, tried).changes
        assert changes == {"USE_BIAS": True, "OPTIMIZER": "muon"}
