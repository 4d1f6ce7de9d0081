"""The Optuna TPE control arm: deterministic from the trace and seed, within the space, never touching frozen names."""

from __future__ import annotations

import pytest

from search.params import ParamKind, ParamSpec
from tests.unit.traces import BASE_CONFIG, build_trace, crash, ok

pytest.importorskip("optuna")
from search.tpe_proposal import tpe_proposal  # noqa: E402

SPECS = [ParamSpec(name="DEPTH", kind=ParamKind.INT, value=4, low=1, high=8),
         ParamSpec(name="MATRIX_LR", kind=ParamKind.FLOAT, value=0.003, low=1e-4, high=0.1, log=True),
         ParamSpec(name="OPTIMIZER", kind=ParamKind.CHOICE, value="adamw", choices=("adamw", "muon")),
         ParamSpec(name="ADAM_BETAS", kind=ParamKind.FLOAT_TUPLE, value=(0.9, 0.95), low=0.5, high=0.9999, length=2),
         ParamSpec(name="USE_BIAS", kind=ParamKind.BOOL, value=False)]
TRACE = build_trace([({"DEPTH": 6}, ok(2.9), True), ({"MATRIX_LR": 0.01}, crash(), False),
                     ({"OPTIMIZER": "muon"}, ok(2.7), True), ({"USE_BIAS": True}, ok(2.8), False),
                     ({"ADAM_BETAS": [0.8, 0.9]}, ok(2.75), False), ({"DEPTH": 3}, ok(2.95), False)])


def test_same_trace_and_seed_give_the_same_proposal_and_frozen_names_stay_put() -> None:
    current = {**BASE_CONFIG, "DEPTH": 6, "OPTIMIZER": "muon"}
    first = tpe_proposal(SPECS, TRACE, current, ("DEPTH",), seed=3)
    assert first == tpe_proposal(SPECS, TRACE, current, ("DEPTH",), seed=3)
    assert first.changes and "DEPTH" not in first.changes
    for name, value in first.changes.items():
        spec = next(s for s in SPECS if s.name == name)
        if spec.kind in (ParamKind.INT, ParamKind.FLOAT):
            assert spec.low <= value <= spec.high
        elif spec.kind is ParamKind.FLOAT_TUPLE:
            assert len(value) == 2 and all(spec.low <= v <= spec.high for v in value)
        assert value != current[name]
