"""UCB1 bandit over which parameter to explore next: parameters whose changes were kept are tried again."""

import math

EXPLORATION = 1.0  # weight of the UCB bonus; higher explores more


class ParameterBandit:
    """UCB1 bandit over parameters: plan focuses on the parameter with the highest upper confidence bound."""

    name = "ucb_bandit"

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

    def plan(self, ctx):
        frozen = set(ctx["frozen"])
        arms = [p["name"] for p in ctx["params"] if p["name"] not in frozen]
        if not arms:
            return None
        best = max(arms, key=lambda arm: (self.score(arm), -arms.index(arm)))
        tries = self.pulls.get(best, 0)
        kept = self.wins.get(best, 0)
        return {"focus": [best], "guidance": f"Change {best} this time (kept {kept} of {tries} earlier tries)."}

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
