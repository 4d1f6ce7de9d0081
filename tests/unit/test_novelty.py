"""Honest novelty: renamed paraphrases of what the prompts showed are recognised as adaptations; different
mechanisms are not."""

from __future__ import annotations

import re

import pytest

from mechanisms.library import library_source
from mechanisms.novelty import DERIVED_AT, assess, default_references, similarity

# The shape of what a fresh make-run activated (issue 19): the one-factor design with every name changed, the
# comment copied, the docstring promising something else.
PARAPHRASE = '''
import random
import helpers as h


class DiverseExploration:
    """A random walk with simulated annealing over the parameters."""

    name = "diverseexploration"

    def __init__(self):
        self.counts = {}

    def propose(self, ctx):
        fresh = h.untried(ctx)
        if not fresh:
            return None  # every factor has been tried once: the design is done, the LLM takes over
        generator = random.Random(ctx["seed"])
        param = fresh[0]
        new_value = h.neighbour(ctx, param, generator, scale=3.0)
        if new_value is None:
            return None
        why = "exploring " + param
        return {"candidates": [h.candidate(param, new_value, why)], "skip_llm": True}

    def observe(self, ctx, result):
        for key in result["changes"]:
            self.counts[key] = self.counts.get(key, 0) + 1
'''

# The repair snippet pasted into a class of its own.
SNIPPET_COPY = '''
import random
import helpers as h


class Wanderer:
    name = "wanderer"

    def propose(self, ctx):
        options = h.untried(ctx) or h.editable(ctx)
        r = random.Random(ctx["seed"])
        pick = options[r.randrange(len(options))]
        return [h.candidate(pick, h.neighbour(ctx, pick, r), "wander")]
'''

# Something none of the references does: screen candidates by a crash model, and accept by a ranked margin.
INVENTED = '''
import helpers as h


class CrashAwareScreen:
    name = "crash_aware"

    def __init__(self):
        self.crashed = {}

    def screen(self, ctx, candidates):
        scores = []
        for i, cand in enumerate(candidates):
            risk = 0.0
            for key, value in cand["changes"].items():
                bad = self.crashed.get(key, [])
                close = [v for v in bad if isinstance(v, (int, float)) and isinstance(value, (int, float))
                         and abs(v - value) <= 0.25 * max(abs(v), 1e-9)]
                risk += len(close)
            scores.append((risk, -len(cand["changes"]), i))
        scores.sort()
        if scores[0][0] > 2:
            return {"reject": True, "reason": "every candidate sits next to a recorded crash"}
        return {"choose": scores[0][2]}

    def observe(self, ctx, result):
        if result["status"] in ("crash", "timeout"):
            for key, value in result["changes"].items():
                self.crashed.setdefault(key, []).append(value)
'''


def test_every_reference_is_its_own_closest_and_the_references_are_far_apart() -> None:
    references = default_references()
    assert {name for name, _ in references} >= {"library:one_factor", "library:tabu", "snippet:live_propose"}
    for name, text in references:
        assert assess(text).closest == name and assess(text).similarity == 1.0
        others = [similarity(text, other) for other_name, other in references if other_name != name]
        assert max(others) < DERIVED_AT, name


def test_a_renamed_paraphrase_of_the_worked_example_is_derived_not_invented() -> None:
    novelty = assess(PARAPHRASE)
    assert novelty.derived and novelty.closest == "library:one_factor", novelty
    assert novelty.label.startswith("derived from library:one_factor (similarity 0.")


def test_a_pasted_repair_snippet_is_derived_from_the_snippet() -> None:
    novelty = assess(SNIPPET_COPY)
    assert novelty.derived and novelty.closest == "snippet:live_propose", novelty


def test_a_different_mechanism_is_invented() -> None:
    novelty = assess(INVENTED)
    assert not novelty.derived and novelty.similarity < DERIVED_AT, novelty
    assert novelty.label.startswith("invented (closest ")


@pytest.mark.parametrize("name", ["one_factor", "tabu", "annealing"])
def test_renaming_alone_changes_nothing(name: str) -> None:
    source = library_source(name)
    renamed = source
    for attribute in set(re.findall(r"self\.(\w+)", source)):  # every attribute and method of self, everywhere
        renamed = re.sub(rf"\b{attribute}\b", f"z_{attribute}", renamed)
    renamed = re.sub(r"^class (\w+)", r"class Renamed\1", renamed, flags=re.M)
    assert renamed != source
    assert similarity(renamed, source) == 1.0


def test_source_that_does_not_parse_is_nobodys_copy() -> None:
    assert assess("class X(:\n  pass").similarity == 0.0


def test_a_mutant_is_derived_from_its_parent_whatever_the_similarity() -> None:
    tabu = library_source("tabu")
    # a heavy rewrite of tabu's screen: far enough to pass as invented without its parent
    mutant = tabu.replace('name = "tabu"', 'name = "probe"').replace(
        '''        allowed = [i for i, c in enumerate(candidates) if not self.is_tabu(c)]
        if not allowed:
            return {"reject": True, "reason": "every candidate repeats a recent configuration or move"}
        return {"choose": allowed[0]} if allowed[0] != 0 else None''',
        '''        scores = []
        for i, c in enumerate(candidates):
            fresh = sum(1 for k in c["changes"] if k not in self.discarded)
            scores.append((-fresh, len(c["changes"]), i))
        scores.sort()
        return {"choose": scores[0][2]} if scores and scores[0][2] != 0 else None''')
    assert mutant != tabu
    closeness = similarity(mutant, tabu)
    novelty = assess(mutant, parent=("library:tabu", tabu))
    assert novelty.derived and novelty.closest == "library:tabu" and novelty.similarity == closeness
    assert novelty.label == f"derived from library:tabu (similarity {closeness:.2f})"
    stored = assess(mutant, parent=("pattern_move@v1", library_source("ucb_bandit")))  # a parent far from it
    assert stored.derived and stored.label.startswith("derived from pattern_move@v1 (similarity ")
    assert stored.similarity < DERIVED_AT  # still an adaptation: it was asked to change that parent
