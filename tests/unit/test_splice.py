"""A mutant's patch spliced into its parent (mechanisms/splice.py): pure text in and out."""

from __future__ import annotations

import ast

import pytest

from mechanisms.library import library_source
from mechanisms.splice import SpliceError, splice

PARENT = '''"""A parent."""

import random

import helpers as h

STEP = 2  # how far


class Walker:
    """Walks."""

    name = "walker"

    def __init__(self):
        self.seen = 0

    @staticmethod
    def pick(arms):
        return arms[0]

    def propose(self, ctx):
        return None

    def observe(self, ctx, result):
        self.seen += STEP + self.pick([0])
'''


def methods(code: str) -> dict[str, str]:
    cls = next(n for n in ast.parse(code).body if isinstance(n, ast.ClassDef))
    return {n.name: ast.unparse(n) for n in cls.body if isinstance(n, ast.FunctionDef)}


def test_changed_methods_replace_their_namesakes_and_the_rest_of_the_parent_stays() -> None:
    patch = "STEP = 5\nLIMIT = 3\n\ndef propose(self, ctx):\n    self.reset()\n    return {'candidates': []}\n\n" \
            "def reset(self):\n    self.seen = 0\n"
    result = splice(PARENT, patch, class_name="Runner", mechanism_name="runner")
    assert result.replaced == ["propose", "STEP"] and result.added == ["reset", "LIMIT"]
    got = methods(result.code)
    assert list(got) == ["__init__", "pick", "propose", "observe", "reset"]  # order kept, new ones appended
    assert "return {'candidates': []}" in got["propose"] and got["observe"] == methods(PARENT)["observe"]
    assert "STEP = 5\n" in result.code and "STEP = 2" not in result.code and "LIMIT = 3" in result.code
    assert result.code.index("LIMIT = 3") < result.code.index("class Runner:")
    assert 'class Runner:\n    """Walks."""\n\n    name = "runner"\n' in result.code
    assert result.code.startswith('"""A parent."""')  # the module docstring stays first


def test_a_method_written_inside_a_class_and_a_decorated_one_are_replaced_whole() -> None:
    patch = "class Other:\n    name = 'other'\n\n    @staticmethod\n    def pick(arms):\n        return arms[-1]\n"
    result = splice(PARENT, patch, class_name="Runner", mechanism_name="runner")
    assert result.replaced == ["pick"] and result.code.count("@staticmethod") == 1
    assert "return arms[-1]" in result.code and "return arms[0]" not in result.code
    assert 'name = "runner"' in result.code and "other" not in result.code  # the session names the class


def test_a_whole_class_answer_that_dropped_a_constant_keeps_the_parents() -> None:
    tabu = library_source("tabu")
    dropped = tabu.replace("TENURE = 12  # experiments a configuration or a move stays tabu\n", "")
    result = splice(tabu, dropped.replace("count(p) >= 3", "count(p) >= 2"), class_name="Probe",
                    mechanism_name="probe")
    assert "TENURE = 12" in result.code and "count(p) >= 2" in result.code
    compile(result.code, "<spliced>", "exec")


def test_new_imports_are_added_once_after_the_parents() -> None:
    patch = "import math\nimport random\n\ndef propose(self, ctx):\n    return math.floor(1)\n"
    result = splice(PARENT, patch, class_name="Runner", mechanism_name="runner")
    assert result.code.count("import random") == 1 and result.code.count("import math") == 1
    assert result.code.index("import helpers as h") < result.code.index("import math") < result.code.index("STEP")


def test_a_parent_without_a_name_attribute_gets_one() -> None:
    parent = "class Bare:\n    def propose(self, ctx):\n        return None\n"
    result = splice(parent, "def propose(self, ctx):\n    return []\n", class_name="Runner", mechanism_name="runner")
    assert result.code == 'class Runner:\n    name = "runner"\n    def propose(self, ctx):\n        return []\n'


@pytest.mark.parametrize("answer, message", [
    ("print('hello')\n", "holds no method"),
    ("import os\n", "holds no method"),
    ("def propose(self, ctx):\n    return (\n", "does not parse"),
    ("(" * 400 + ")" * 400, "does not parse"),
])
def test_an_answer_with_nothing_to_splice_is_refused_with_the_reason(answer: str, message: str) -> None:
    with pytest.raises(SpliceError, match=message):
        splice(PARENT, answer, class_name="Runner", mechanism_name="runner")


def test_a_whole_class_answer_leaves_no_dead_parent_helper_and_brings_its_docstring() -> None:
    whole = ('class Other:\n    """Counts."""\n\n    name = "other"\n\n    def __init__(self):\n        self.count = 0\n\n'
             '    def propose(self, ctx):\n        return None\n\n    def observe(self, ctx, result):\n'
             '        self.count += 1\n')
    result = splice(library_source("ucb_bandit"), whole, class_name="Runner", mechanism_name="runner")
    assert result.removed == ["best_arm", "score"]  # they read self.pulls, which the new __init__ no longer sets
    assert list(methods(result.code)) == ["__init__", "propose", "observe"]
    assert '"""Counts."""' in result.code and "UCB1 bandit over parameters" not in result.code
    helper = "def pick(self):\n    return 1\n\ndef propose(self, ctx):\n    return self.pick()\n"
    assert "pick" in methods(splice(PARENT, helper, class_name="Runner", mechanism_name="runner").code)  # called


def test_an_import_that_binds_a_name_the_parent_binds_is_not_added() -> None:
    patch = "from helpers import h\nimport collections\n\ndef propose(self, ctx):\n    return h.editable(ctx)\n"
    result = splice(PARENT, patch, class_name="Runner", mechanism_name="runner")
    assert "from helpers import h" not in result.code and result.code.count("import collections") == 1
    assert result.added == ["import collections"]  # what the answer added, as it reads


def test_a_hole_copied_back_keeps_the_parents_body() -> None:
    # with_holes shows `...` where a method to rewrite was; an answer that fills one hole and copies another back
    # rewrote one method: the other keeps the parent's body.
    patch = ("def propose(self, ctx):\n    return []\n\n"
             "def observe(self, ctx, result):\n    \"\"\"Counts.\"\"\"\n    ...  # your new body\n")
    result = splice(PARENT, patch, class_name="Runner", mechanism_name="runner")
    assert result.replaced == ["propose"] and "...  # your new body" not in result.code
    assert methods(result.code)["observe"] == methods(PARENT)["observe"]
