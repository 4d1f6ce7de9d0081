"""UCB1 bandit over which parameter to change next: it proposes a nearby value of the parameter with the highest
upper confidence bound (untried parameters first), rewarded when the change is kept."""

import math
import random

import helpers as h

EXPLORATION = 1.0  # weight of the UCB bonus; higher explores more


class Respectplanadvice:
    """UCB1 bandit over parameters: propose a neighbouring value of the arm with the highest upper confidence bound."""

    name = "respectplanadvice"

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
            # Get the best parameter to explore
            best_param = self.best_arm(ctx)

            # Generate a nearby value for the best parameter
            nearby_value = h.neighbour(ctx, best_param, random.Random(ctx["seed"]))

            # Create a list of candidates with the nearby value
            candidates = [{"changes": {best_param: nearby_value}, "hypothesis": "next value", "config": {best_param: nearby_value}, "proposed_by": "ucb_bandit"}]

            # Return the list of candidates
            return candidates

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
