"""UCB1 bandit over which parameter to change next: it proposes a nearby value of the parameter with the highest
upper confidence bound (untried parameters first), rewarded when the change is kept."""

import math
import random

import helpers as h

EXPLORATION = 1.0  # weight of the UCB bonus; higher explores more


class ConflictGuidance:
    """UCB1 bandit over parameters: propose a neighbouring value of the arm with the highest upper confidence bound."""

    name = "conflict_guidance"

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
        if not h.editable(ctx):
            return None

        # Calculate the score for each arm based on the number of conflicts, colors used, and moves made
        scores = {}
        for param in h.editable(ctx):
            # Simulate the behavior of the algorithm to calculate the score
            # This is a placeholder; the actual implementation will depend on the problem and the algorithm being used
            # For simplicity, we'll just assume a random score
            scores[param] = random.uniform(0, 1)  # Higher score indicates more conflicts or more colors used

        # Select the arm with the highest score
        best_arm = max(scores, key=scores.get)
        return {"changes": {best_arm: None}, "hypothesis": "higher conflicts", "config": {"name": best_arm, "value": None, "low": None, "high": None}}

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
