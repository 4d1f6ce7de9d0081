"""UCB1 bandit over which parameter to change next: it proposes a nearby value of the parameter with the highest
upper confidence bound (untried parameters first), rewarded when the change is kept."""

import math
import random

import helpers as h

EXPLORATION = 1.0  # weight of the UCB bonus; higher explores more


class Feedbackloopmechanism:
    """UCB1 bandit over parameters: propose a neighbouring value of the arm with the highest upper confidence bound."""

    name = "feedbackloopmechanism"

    def __init__(self):
        self.pulls = {}  # parameter -> experiments that changed it
        self.wins = {}  # parameter -> of those, experiments that were kept
        self.total = 0

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
        current_config = ctx["current"]
        best_param = self.best_arm(ctx)
        if not best_param:
            return None  # if no parameter is better, propose a random one
        new_value = h.neighbour(ctx, best_param, random)
        return {"changes": {best_param: new_value}, "hypothesis": "Proposal from UCB1 bandit", "config": current_config, "proposed_by": self.name}

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
