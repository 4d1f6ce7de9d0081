"""The hyperparameter block: parsed by the AST, rewritten literal by literal, hostile values refused."""

from __future__ import annotations

import ast

import pytest

from search.params import ParamError, ParamKind
from tests.unit.script_fixture import SCRIPT, current_values
from workloads.hyperblock import ScriptError, apply_changes, parse_block, parse_params


def test_schema_has_types_values_and_ranges() -> None:
    specs = {s.name: s for s in parse_params(SCRIPT)}
    assert list(specs) == ["DEPTH", "MATRIX_LR", "OPTIMIZER", "ADAM_BETAS", "USE_BIAS"]
    assert specs["DEPTH"].kind is ParamKind.INT and specs["DEPTH"].value == 4
    assert (specs["DEPTH"].low, specs["DEPTH"].high) == (1, 8)
    assert specs["MATRIX_LR"].log and specs["MATRIX_LR"].kind is ParamKind.FLOAT
    assert specs["OPTIMIZER"].choices == ("adamw", "muon")
    assert specs["ADAM_BETAS"].length == 2 and specs["ADAM_BETAS"].value == (0.9, 0.95)
    assert specs["USE_BIAS"].kind is ParamKind.BOOL


def test_apply_rewrites_only_the_named_literals() -> None:
    edited = apply_changes(SCRIPT, {"DEPTH": 6, "ADAM_BETAS": [0.8, 0.99], "OPTIMIZER": "muon", "USE_BIAS": True})
    assert current_values(edited) == {"DEPTH": 6, "MATRIX_LR": 0.003, "OPTIMIZER": "muon",
                                      "ADAM_BETAS": (0.8, 0.99), "USE_BIAS": True}
    before, after = SCRIPT.splitlines(), edited.splitlines()
    changed = [i for i, (a, b) in enumerate(zip(before, after)) if a != b]
    assert len(before) == len(after) and len(changed) == 4
    assert "# int [1, 8]: transformer blocks" in after[changed[0]]  # the annotation survives
    ast.parse(edited)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"DEPTH": "__import__('os').system('x')"}, "expected an int, got str"),
        ({"MATRIX_LR": "__import__('os').system('x')"}, "expected a float, got str"),
        ({"OPTIMIZER": "__import__('os').system('x')"}, "is not one of"),
        ({"MATRIX_LR": 1e308}, "outside the allowed range"),
        ({"MATRIX_LR": float("inf")}, "not a finite number"),
        ({"MATRIX_LR": float("nan")}, "not a finite number"),
        ({"DEPTH": -1}, "-1 is outside the allowed range [1, 8]"),
        ({"OPTIMIZER": "L" * 10**6}, "is not one of"),
        ({"NOPE": 1}, "unknown parameter 'NOPE'"),
        ({"DEPTH": {"nested": [1, 2]}}, "expected an int, got dict"),
        ({"DEPTH": [4]}, "expected an int, got list"),
        ({"ADAM_BETAS": [[0.9], 0.95]}, "expected a float_tuple, got list"),
        ({"ADAM_BETAS": [0.9, 0.95, 0.99]}, "exactly 2 numbers"),
        ({"ADAM_BETAS": [0.9, 2.0]}, "ADAM_BETAS[1]: 2.0 is outside"),
        ({"DEPTH": 4.5}, "expected an integer"),
        ({"DEPTH": True}, "expected an int, got bool"),
        ({"USE_BIAS": 1}, "expected true or false"),
        ({"USE_BIAS": "True"}, "expected true or false"),
    ],
)
def test_hostile_values_are_refused_precisely(changes: dict, message: str) -> None:
    with pytest.raises(ParamError) as caught:
        apply_changes(SCRIPT, changes)
    assert message in str(caught.value)
    assert len(str(caught.value)) < 400  # a million-character value is not echoed back


def test_frozen_parameters_are_refused() -> None:
    with pytest.raises(ParamError, match="DEPTH is frozen"):
        apply_changes(SCRIPT, {"DEPTH": 5}, frozen=["DEPTH"])


def test_integral_float_is_accepted_as_int() -> None:
    assert current_values(apply_changes(SCRIPT, {"DEPTH": 5.0}))["DEPTH"] == 5


@pytest.mark.parametrize(
    "broken",
    [
        SCRIPT.replace("# --- end hyperparameters ---", ""),
        SCRIPT.replace("DEPTH = 4                 # int [1, 8]", "DEPTH = 2 + 2             # int [1, 8]"),
        SCRIPT.replace("# int [1, 8]: transformer blocks", "# int [1, x]: transformer blocks"),
        SCRIPT.replace("USE_BIAS = False", "USE_BIAS = None"),
        SCRIPT.replace("USE_BIAS = False", "DEPTH = 3"),
        SCRIPT.replace("# --- end hyperparameters ---", "# constraint: DEPTH > 5\n# --- end hyperparameters ---"),
        SCRIPT.replace("# --- end hyperparameters ---", "# constraint: NOPE > 5\n# --- end hyperparameters ---"),
        SCRIPT.replace("USE_BIAS = False", "print('side effect')"),
        SCRIPT.replace("DEPTH = 4  ", "DEPTH = 9  "),
    ],
)
def test_malformed_blocks_are_script_errors(broken: str) -> None:
    with pytest.raises(ScriptError):
        parse_params(broken)


UNANNOTATED = """
# --- hyperparameters ---
LR = 0.01
WIDTH = 64        # hidden units
STEPS = 0
USE_DROPOUT = True
ACTIVATION = "relu"
BETAS = (0.9, 0.99)
SCALE = (2.0, 8.0)
# constraint: WIDTH % 8 == 0
# --- end hyperparameters ---
"""


def test_unannotated_literals_get_the_documented_kind_and_range() -> None:
    block = parse_block(UNANNOTATED)
    specs = {s.name: s for s in block.params}
    assert (specs["LR"].kind, specs["LR"].low, specs["LR"].high, specs["LR"].log) == (ParamKind.FLOAT, 0.001, 0.1, True)
    assert (specs["WIDTH"].low, specs["WIDTH"].high, specs["WIDTH"].log) == (16, 256, True)
    assert specs["WIDTH"].description == "hidden units"  # a plain comment is a description
    assert (specs["STEPS"].low, specs["STEPS"].high) == (0, 10)
    assert specs["USE_DROPOUT"].kind is ParamKind.BOOL
    assert specs["ACTIVATION"].choices == ("relu",)  # a choice the user widens with an annotation
    assert (specs["BETAS"].low, specs["BETAS"].high, specs["BETAS"].length) == (0.0, 1.0, 2)
    assert (specs["SCALE"].low, specs["SCALE"].high) == (0.2, 80.0)
    assert [c.text for c in block.constraints] == ["WIDTH % 8 == 0"]


def test_a_kind_without_a_range_is_inferred_within_that_kind() -> None:
    block = parse_block(SCRIPT.replace("# float [1e-5, 0.3] log: learning rate", "# float: learning rate"))
    spec = next(s for s in block.params if s.name == "MATRIX_LR")
    assert (spec.low, spec.high, spec.log) == (0.0003, 0.03, True)


def test_rewriting_an_inferred_value_keeps_the_baseline_range() -> None:
    edited = apply_changes(UNANNOTATED, {"LR": 0.09})
    assert current_values(edited)["LR"] == 0.09
    with pytest.raises(ParamError, match="outside the allowed range"):
        apply_changes(UNANNOTATED, {"LR": 0.5})
