"""Mechanical fixes of a small model's commonest mistakes: each fix is exact, and the result passes the static
checks that the original failed (the cases are from a real local-model session of a `make run`)."""

from __future__ import annotations

import pytest

from mechanisms.autofix import autofix
from mechanisms.policy import check_source
from mechanisms.static_check import (
    ACCEPT_RESULT_KEYS,
    CTX_KEYS,
    CTX_SYNONYMS,
    POINT_KEYS,
    RESULT_KEYS,
    RESULT_SYNONYMS,
    check_mechanism,
)


def mechanism(body: str, imports: str = "import random\n\nimport helpers as h\n") -> str:
    return imports + "\n\nclass M:\n    name = 'm'\n\n" + body


def test_the_session_that_failed_in_make_run_is_fixed_and_passes_the_static_checks() -> None:
    body = ("    def propose(self, ctx):\n"
            "        candidates = []\n"
            "        for name in ctx[\"params\"]:\n"
            "            if ctx[\"current_config\"][name] == ctx['best_config'][name]:\n"
            "                value = h.neighbour(ctx, name, random.Random(ctx[\"seed\"]))\n"
            "                candidates.append(h.candidate(name, value, 'différent'))\n"
            "        return candidates\n")
    source = mechanism(body)
    assert check_mechanism(source), "the original must fail"
    fixed, why = autofix(source)
    assert check_mechanism(fixed) == []
    assert 'for name in h.editable(ctx):' in fixed
    assert 'if ctx["current"]["config"][name] == ctx["best"]["config"][name]:' in fixed
    assert len(why) == 3


def test_helpers_called_as_methods_or_bare_become_helper_calls_and_the_import_is_added() -> None:
    source = mechanism("    def propose(self, ctx):\n        names = untried(ctx)\n"
                       "        return self.untried(ctx)[:1] and None\n", imports="import random\n")
    fixed, why = autofix(source)
    assert fixed.startswith("import helpers as h\n")
    assert "names = h.untried(ctx)" in fixed and "return h.untried(ctx)[:1]" in fixed
    assert check_mechanism(fixed) == []


def test_a_method_the_class_defines_is_left_alone() -> None:
    source = mechanism("    def untried(self, ctx):\n        return []\n\n"
                       "    def propose(self, ctx):\n        return self.untried(ctx) or None\n")
    assert autofix(source) is None


def test_result_keys_a_model_means_are_mapped_and_unknown_ones_left_for_the_repair() -> None:
    source = mechanism("    def accept(self, ctx, result, default):\n"
                       "        return result['score'] < 1 and result['accepted'] and result['zzz']\n")
    fixed, _ = autofix(source)
    # accept decides "kept": what the model meant there is the loop's default decision
    assert 'result["value"] < 1 and result["default_kept"] and result[\'zzz\']' in fixed
    assert [f.message for f in check_mechanism(fixed)] == [
        f"result has no key 'zzz'; its keys are {', '.join(sorted(ACCEPT_RESULT_KEYS))}"]
    observe = mechanism("    def observe(self, ctx, result):\n        self.last = result['accepted']\n")
    assert 'self.last = result["kept"]' in autofix(observe)[0]  # type: ignore[index]


def test_kept_read_in_accept_is_found_and_fixed() -> None:
    # A session-6 mutant passed its liveness replay and raised KeyError: 'kept' in accept in the live run.
    source = mechanism("    def accept(self, ctx, result, default):\n        return result['kept'] and default\n")
    assert [f.message for f in check_mechanism(source)] == [
        "result has no key 'kept' in accept (accept decides it); did you mean result['default_kept']?; its keys are "
        f"{', '.join(sorted(ACCEPT_RESULT_KEYS))}"]
    fixed, why = autofix(source)  # type: ignore[misc]
    assert 'return result["default_kept"] and default' in fixed and check_mechanism(fixed) == []


def test_nothing_to_fix_or_code_that_does_not_parse_gives_none() -> None:
    assert autofix(mechanism("    def propose(self, ctx):\n        return h.untried(ctx) and None\n")) is None
    assert autofix("class M:\n    def propose(self, ctx:\n") is None
    assert autofix("x = 1\n") is None


@pytest.mark.parametrize("key", sorted(CTX_SYNONYMS))
def test_every_ctx_synonym_names_keys_that_exist(key: str) -> None:
    assert key not in CTX_KEYS
    parts = CTX_SYNONYMS[key].strip("[]").split('"]["')
    assert parts[0].strip('"') in CTX_KEYS
    if len(parts) > 1:
        assert parts[1].strip('"') in POINT_KEYS | {"goal", "name"}


def test_every_result_synonym_names_a_key_that_exists() -> None:
    assert set(RESULT_SYNONYMS.values()) <= RESULT_KEYS
    assert not set(RESULT_SYNONYMS) & RESULT_KEYS


def test_the_static_finding_suggests_what_autofix_would_write() -> None:
    findings = check_mechanism(mechanism("    def plan(self, ctx):\n        return {'guidance': str(ctx['best_value'])}\n"))
    assert 'did you mean ctx["best"]["value"]?' in findings[0].message


# -- imports: the commonest refusal of a mutant in the local-model yield run at 6e129d2 --------------------------
BANDIT_BODY = ("    def propose(self, ctx):\n        rng = random.Random(ctx['seed'])\n"
               "        names = h.untried(ctx) or h.editable(ctx)\n        if not names:\n            return None\n"
               "        name = names[rng.randrange(len(names))]\n        bonus = math.sqrt(2.0)\n"
               "        return [h.candidate(name, h.neighbour(ctx, name, rng), f'ucb {bonus:.2f}')]\n")


@pytest.mark.parametrize("imports", ["from helpers import h\nimport random\nimport math\n",
                                     "import mechanisms.helpers as h\nimport random\nimport math\n",
                                     "from mechanisms import helpers as h\nimport random\nimport math\n"])
def test_helpers_imported_under_another_path_become_the_allowed_import(imports: str) -> None:
    source = mechanism(BANDIT_BODY, imports=imports)
    assert check_source(source).violations, "the original must break the policy"
    fixed, why = autofix(source)
    assert fixed.startswith("import helpers as h\n") and imports.splitlines()[0] not in fixed
    assert check_source(fixed).violations == () and check_mechanism(fixed) == []
    assert why == [f"`{imports.splitlines()[0]}` became `import helpers as h`"]


def test_other_names_imported_from_helpers_are_kept() -> None:
    source = mechanism(BANDIT_BODY.replace("h.untried(ctx)", "untried(ctx)"),
                       imports="from helpers import h, untried\nimport random\nimport math\n")
    fixed, _ = autofix(source)
    assert "import helpers as h\nfrom helpers import untried\n" in fixed
    assert check_source(fixed).violations == ()


def test_modules_used_but_never_imported_are_imported() -> None:
    source = mechanism(BANDIT_BODY, imports="")
    assert check_source(source).violations, "the original must break the policy"
    fixed, why = autofix(source)
    assert fixed.startswith("import helpers as h\nimport random\nimport math\n")
    assert check_source(fixed).violations == () and check_mechanism(fixed) == []
    assert why == ["added the missing import(s): import helpers as h; import random; import math"]


def test_a_missing_import_goes_after_the_module_docstring() -> None:
    source = '"""A bandit."""\n' + mechanism(BANDIT_BODY, imports="import random\n\nimport helpers as h\n")
    fixed, why = autofix(source.replace("import random\n", ""))  # type: ignore[misc]
    assert fixed.startswith('"""A bandit."""\nimport random\n') and check_source(fixed).violations == ()


def test_a_name_the_code_binds_itself_is_not_taken_for_a_module() -> None:
    body = "    def propose(self, ctx):\n        math = 3\n        return None if math else None\n"
    assert autofix(mechanism(body)) is None


def test_a_base_class_is_dropped() -> None:
    source = mechanism(BANDIT_BODY).replace("class M:", "class M(Parent):")
    assert check_source(source).violations, "the original must break the policy"
    fixed, why = autofix(source)
    assert "\nclass M:\n" in fixed and check_source(fixed).violations == () and check_mechanism(fixed) == []
    assert "class M(Parent) became class M: (no base)" in why
