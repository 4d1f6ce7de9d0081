"""UCB1 bandit over which parameter to change next: it proposes a nearby value of the parameter with the highest
upper confidence bound (untried parameters first), rewarded when the change is kept."""

import math
import random

import helpers as h

EXPLORATION = 1.0  # weight of the UCB bonus; higher explores more


class ConflictAdvisor:
    """UCB1 bandit over parameters: propose a neighbouring value of the arm with the highest upper confidence bound."""

    name = "conflict_advisor"

    def __init__(self):
        self.pulls = {}  # parameter -> experiments that changed it
        self.wins = {}  # parameter -> of those, experiments that were kept
        self.total = 0
        # added new state variable
        self.conflicts = 0
        self.current_best = None

    def score(self, arm):
        pulls = self.pulls.get(arm, 0)
        if pulls == 0:
            return float("inf")  # every parameter is tried once before any is repeated
        mean = self.wins.get(arm, 0) / pulls
        return mean + EXPLORATION * math.sqrt(2 * math.log(max(self.total, 1)) / pulls)

    def best_arm(self, ctx):
        arms = h.editable(ctx)
        if not arms:
            return None
        return max(arms, key=lambda arm: (self.score(arm), -arms.index(arm)))

    def propose(self, ctx):
        arms = h.editable(ctx)
        if not arms:
            return None
        best_arm = self.best_arm(ctx)
        if best_arm is None:
            return None
        # updated to consider conflicts
        if h.is_better(ctx, {"config": ctx["current"]["config"], "value": self.current_best},
                             {"config": {"config": ctx["current"]["config"], "value": best_arm}, "value": self.score(best_arm)}):
            self.conflicts += 1
        elif h.is_better(ctx, {"config": ctx["current"]["config"], "value": self.current_best},
                             {"config": {"config": ctx["current"]["config"], "value": self.score(best_arm)}}, strict=True):
            self.conflicts -= 1
        # added logic to decide the best arm
        if self.conflicts <= 2:  # or any threshold you choose
            return best_arm
        # updated to consider the current best configuration
        self.current_best = ctx["current"]["value"]
        # proposed new value
        return h.neighbour(ctx, "config", random.Random(ctx["seed"]))

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
