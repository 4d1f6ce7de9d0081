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

    def propose(self, ctx):
        # Get the current state of the graph and the progress of the search
        current_state = h.param_stats(ctx)
        progress = h.current(ctx)

        # Initialize a dictionary to keep track of the scores of each parameter
        scores = {param: 0 for param in h.editable(ctx)}

        # For each parameter, calculate its score based on the current state and progress of the search
        for param in h.editable(ctx):
            # Calculate the current score for the parameter
            current_score = h.score(ctx, param)

            # If the parameter is not in the current state, give it a high score to encourage exploration
            if param not in current_state["tries"]:
                current_score += 100

            # Calculate the progress score for the parameter
            progress_score = progress[param]

            # Calculate the final score for the parameter
            scores[param] = current_score + progress_score

        # Find the parameter with the highest score
        best_param = max(scores, key=scores.get)

        # Return the best parameter
        return h.candidate(best_param, h.neighbour(ctx, best_param, random.Random(ctx["seed"])), "reason")

    def observe(self, ctx, result):
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.pulls[name] = self.pulls.get(name, 0) + 1
            self.wins[name] = self.wins.get(name, 0) + reward
            self.total += 1
