"""Static checks before the sandbox, with messages a small model can act on (the failures measured on the local
model: shadowed or method-called helpers, undefined names and attributes, wrong arity, missing ctx keys)."""

from __future__ import annotations

import pytest

from mechanisms.library import library_source, list_library
from mechanisms.static_check import check_mechanism


def mechanism(body: str) -> str:
    return "import random\n\nimport helpers as h\n\n\nclass M:\n    name = 'm'\n\n" + body


@pytest.mark.parametrize(("body", "message"), [
    ("    def propose(self, ctx):\n        best_configs = best_configs(ctx, 2)\n        return None\n",
     "undefined name 'best_configs'; the helpers are called as h.best_configs(...)"),
    ("    def propose(self, ctx):\n        return self.untried(ctx)\n", "self.untried is used but never defined; did you mean the helper h.untried(...)?"),
    ("    def plan(self, ctx):\n        return {'focus': [self.least_explored(ctx)]}\n",
     "self.least_explored is used but never defined; define it"),
    ("    def propose(self, ctx):\n        return h.neighbour(ctx, 'A')\n", "h.neighbour takes (ctx, name, rng, value, scale)"),
    ("    def screen(self, ctx):\n        return None\n", "the hook must be `def screen(self, ctx, candidates):`"),
    ("    def accept(self, ctx, result, default):\n        return result['val_loss'] < 1\n", "result has no key 'val_loss'"),
    ("    def plan(self, ctx):\n        return {'guidance': str(ctx['best_val_bpb'])}\n", "ctx has no key 'best_val_bpb'"),
    ("    def plan(self, ctx):\n        return {'guidance': str(ctx['best']['score'])}\n", "ctx['best'] has no key 'score'"),
    ("    def plan(self, ctx):\n        return {'guidance': undefined_thing}\n", "undefined name 'undefined_thing'"),
    ("    def helper(self):\n        return 1\n", "defines none of the hooks"),
])
def test_each_failure_of_a_small_model_is_named_with_its_line(body: str, message: str) -> None:
    findings = check_mechanism(mechanism(body))
    assert any(message in f.message for f in findings), findings
    assert all(f.line > 0 for f in findings if "none of the hooks" not in f.message)


def test_state_defined_anywhere_and_the_metric_name_are_fine() -> None:
    body = ("    def __init__(self):\n        self.seen = []\n\n"
            "    def observe(self, ctx, result):\n        self.seen.append(result['val_bpb'])\n        self.last = result['value']\n\n"
            "    def plan(self, ctx):\n        rng = random.Random(ctx['seed'])\n"
            "        return {'focus': h.untried(ctx)[:1], 'guidance': str(self.last) + str(ctx['best']['value'])}\n")
    assert check_mechanism(mechanism(body), metric_name="val_bpb") == []
    assert any("val_bpb" in f.message for f in check_mechanism(mechanism(body)))


@pytest.mark.parametrize("entry", list_library(), ids=lambda e: e.name)
def test_the_reference_mechanisms_pass(entry) -> None:
    assert check_mechanism(library_source(entry.name)) == []


def test_ctx_in_init_is_explained() -> None:
    body = ("    def __init__(self):\n        self.counts = {name: 0 for name in h.editable(ctx)}\n\n"
            "    def observe(self, ctx, result):\n        return None\n")
    [finding] = check_mechanism(mechanism(body))
    assert "ctx is not available in __init__" in finding.message and finding.line == 10
