import random
import math

import helpers as h

class ConflictGuidance:
    """The proposed candidates are evaluated based on the current state of the graph and the progress of the search. This could involve tracking the number of conflicts, the number of colors used, and the number of moves made."""

    name = "conflict_guidance"

    def __init__(self):
        # Initialize the state with default values
        self.state = {
            "conflict_count": 0,
            "color_count": 0,
            "move_count": 0,
            "conflicts_since_last_improvement": 0
        }

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        arms = h.editable(ctx)
        if not arms:
            return None

        # Calculate the current conflict count
        conflict_count = sum(1 for change in ctx["trace"] if change["status"] == "crash")

        # Calculate the current color count
        color_count = sum(1 for change in ctx["trace"] if change["hypothesis"] == "color")

        # Calculate the current move count
        move_count = sum(1 for change in ctx["trace"] if change["hypothesis"] == "move")

        # Calculate the number of conflicts since the last improvement
        conflicts_since_last_improvement = conflict_count - self.state["conflicts_since_last_improvement"]

        # Determine the best arm based on the current state
        best_arm = None
        for arm in arms:
            # Calculate the bonus based on the conflict count, color count, move count, and conflicts since the last improvement
            bonus = conflict_count * 10 + color_count * 5 + move_count * 2 + conflicts_since_last_improvement * 1
            if best_arm is None or bonus > self.state["best_arm_bonus"]:
                best_arm = arm
                self.state["best_arm_bonus"] = bonus

        if best_arm is None:
            return None

        # Generate a nearby value for the best arm
        rng = random.Random(ctx["seed"])
        value = h.neighbour(ctx, best_arm, rng)
        if value is None:
            return None

        reason = "Conflict guidance: " + best_arm + " kept " + str(self.state["best_arm_bonus"])
        return {"candidates": [h.candidate(best_arm, value, reason)], "skip_llm": True}

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            self.state["conflict_count"] += 1 if name in ctx["trace"] and ctx["trace"][ctx["trace"].index(name) - 1]["status"] == "crash" else 0
            self.state["color_count"] += 1 if name in ctx["trace"] and ctx["trace"][ctx["trace"].index(name) - 1]["hypothesis"] == "color" else 0
            self.state["move_count"] += 1 if name in ctx["trace"] and ctx["trace"][ctx["trace"].index(name) - 1]["hypothesis"] == "move" else 0
            self.state["conflicts_since_last_improvement"] = max(0, self.state["conflicts_since_last_improvement"] - 1)
