"""A mutant gets back what it dropped from its parent (mechanisms/parent_restore.py through autofix): the mutants are
trimmed from the local model's yield run at c43e9e5 (benchmarks/results/level2-yield-2), the parents are the real
library mechanisms, and the restored code passes the policy and static checks that the original failed."""

from __future__ import annotations

import ast

from mechanisms.autofix import autofix
from mechanisms.library import library_source
from mechanisms.parent_restore import restore_from_parent
from mechanisms.policy import check_source
from mechanisms.static_check import check_mechanism

# Session 7, sample 10 (parent library:tabu, asked for a new rule): TENURE and `import random` dropped, `h` misimported.
TABU_MUTANT = '''from helpers import h

class EpsilonGreedyExploitation:
    name = "epsilon_greedy_exploitation"

    def __init__(self, epsilon=0.1):
        self.epsilon = epsilon
        self.configs = []
        self.moves = []

    def screen(self, ctx, candidates):
        if random.random() < self.epsilon:
            return None
        allowed = [i for i, c in enumerate(candidates) if h.config_key(c["config"]) not in self.configs]
        return {"choose": allowed[0]} if allowed and allowed[0] != 0 else None

    def observe(self, ctx, result):
        self.configs = (self.configs + [h.config_key(result["config"])])[-TENURE:]
        self.moves = (self.moves + list(result["changes"]))[-TENURE:]
'''

# Session 12, sample 11 (parent library:ucb_bandit, asked for a new state variable): EXPLORATION and the imports dropped.
BANDIT_MUTANT = '''from collections import defaultdict

class Ucb:
    name = "ucb_bandit"

    def __init__(self):
        self.pulls = defaultdict(int)
        self.wins = defaultdict(int)
        self.total = 0

    def score(self, arm):
        pulls = self.pulls.get(arm, 0)
        if pulls == 0:
            return float("inf")
        return self.wins.get(arm, 0) / pulls + EXPLORATION * math.sqrt(2 * math.log(max(self.total, 1)) / pulls)

    def propose(self, ctx):
        arms = h.editable(ctx)
        if not arms:
            return None
        arm = max(arms, key=self.score)
        value = h.neighbour(ctx, arm, random.Random(ctx["seed"]))
        return {"candidates": [h.candidate(arm, value, "ucb")]} if value is not None else None

    def observe(self, ctx, result):
        for name in result["changes"]:
            self.pulls[name] += 1
            self.wins[name] += 1 if result["kept"] else 0
            self.total += 1
'''

# Session 17, sample 11 (parent library:ucb_bandit): a subclass of the parent that calls its best_arm and state.
SUBCLASS_MUTANT = '''from helpers import h

class EpsilonGreedyExploitation(ParameterBandit):
    name = "epsilon_greedy_exploitation"

    def __init__(self):
        super().__init__()
        self.epsilon = 0.1

    def propose(self, ctx):
        arm = self.best_arm(ctx)
        if arm is None or random.random() < self.epsilon:
            return None
        value = h.neighbour(ctx, arm, random.Random(ctx["seed"]))
        return {"candidates": [h.candidate(arm, value, "greedy")]} if value is not None else None

    def observe(self, ctx, result):
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + (1 if result["kept"] else 0)
            self.total += 1
        self.epsilon = max(self.epsilon - 0.01, 0) if result["kept"] else min(self.epsilon + 0.01, 1)
'''


def undefined(source: str) -> list[str]:
    return [v.message.split("'")[1] for v in check_source(source).violations if "is not defined" in v.message]


def passes(source: str) -> bool:
    return check_source(source).ok and check_mechanism(source) == []


def test_a_dropped_tenure_is_restored_from_the_tabu_parent_and_the_mutant_passes_the_checks() -> None:
    assert "TENURE" in undefined(autofix(TABU_MUTANT)[0])  # type: ignore[index]  # without the parent: still broken
    fixed, why = autofix(TABU_MUTANT, parent_source=library_source("tabu"), parent_label="library:tabu")  # type: ignore[misc]
    ast.parse(fixed)
    assert "TENURE = 12  # experiments a configuration or a move stays tabu\n" in fixed
    assert "restored TENURE from the parent library:tabu" in why
    assert passes(fixed)


def test_a_dropped_exploration_and_its_imports_are_restored_from_the_bandit_parent() -> None:
    assert set(undefined(BANDIT_MUTANT)) == {"EXPLORATION", "math", "h", "random"}
    assert "EXPLORATION" in undefined(autofix(BANDIT_MUTANT)[0])  # type: ignore[index]
    fixed, why = autofix(BANDIT_MUTANT, parent_source=library_source("ucb_bandit"), parent_label="library:ucb_bandit")  # type: ignore[misc]
    assert "EXPLORATION = 1.0" in fixed and "import math\n" in fixed and "import helpers as h\n" in fixed
    assert "restored EXPLORATION from the parent library:ucb_bandit" in why
    assert "restored `import math` from the parent library:ucb_bandit" in why
    assert "from collections import defaultdict" in fixed  # the mutant's own import stays
    assert passes(fixed)


def test_a_subclass_of_the_parent_gets_its_methods_and_state_and_loses_the_base() -> None:
    old, _ = autofix(SUBCLASS_MUTANT)  # type: ignore[misc]
    assert any("self.best_arm is used but never defined" in f.message for f in check_mechanism(old))
    fixed, why = autofix(SUBCLASS_MUTANT, parent_source=library_source("ucb_bandit"), parent_label="library:ucb_bandit")  # type: ignore[misc]
    methods = [n.name for n in ast.walk(ast.parse(fixed)) if isinstance(n, ast.FunctionDef)]
    assert sorted(methods) == ["__init__", "best_arm", "observe", "propose", "score"]  # each once: its own kept
    assert "restored best_arm, score from the parent library:ucb_bandit" in why
    assert "super()" not in fixed and "        self.pulls = {}" in fixed and "self.epsilon = 0.1" in fixed
    assert "class EpsilonGreedyExploitation:" in fixed and passes(fixed)


def test_nothing_the_mutant_defines_itself_is_restored() -> None:
    own = BANDIT_MUTANT.replace("from collections import defaultdict\n",
                                "import math\nimport random\n\nimport helpers as h\nfrom collections import defaultdict"
                                "\n\nEXPLORATION = 2.5\n")
    assert passes(own)
    assert restore_from_parent(own, library_source("ucb_bandit"), "library:ucb_bandit") == (own, [])
    local = own.replace("EXPLORATION = 2.5\n", "").replace("        pulls = self", "        EXPLORATION = 0.5\n"
                                                                                    "        pulls = self")
    assert restore_from_parent(local, library_source("ucb_bandit"), "library:ucb_bandit") == (local, [])
    own_method = SUBCLASS_MUTANT.replace("class EpsilonGreedyExploitation(ParameterBandit):",
                                         "class EpsilonGreedyExploitation:").replace(
        "    def propose", "    def best_arm(self, ctx):\n        return None\n\n    def propose")
    restored, why = restore_from_parent(own_method, library_source("ucb_bandit"), "library:ucb_bandit")
    assert restored.count("def best_arm") == 1 and not any("best_arm" in w for w in why)


def test_unparseable_code_or_parent_is_left_alone() -> None:
    assert restore_from_parent("class M:\n    def propose(self, ctx:\n", library_source("tabu"), "p") == (
        "class M:\n    def propose(self, ctx:\n", [])
    assert restore_from_parent(TABU_MUTANT, "TENURE = (\n", "p") == (TABU_MUTANT, [])
