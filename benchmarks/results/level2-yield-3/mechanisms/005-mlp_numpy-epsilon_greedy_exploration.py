import random

import helpers as h


class EpsilonGreedyExploration:
    """The mechanism prioritises exploration over exploitation by using an epsilon-greedy exploration strategy. When proposing candidates, the mechanism sets a value for epsilon and uses it to decide whether"""

    name = "epsilon_greedy_exploration"

    def __init__(self):
        # Keep the state (Current, candidates, epsilon, value) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {
            "current": None,
            "candidates": [],
            "epsilon": 0.1,  # initial exploration rate
            "value": None
        }

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        return None

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        rng = random.Random(ctx["seed"])
        if self.state["epsilon"] > 0:
            # Explore by proposing a new candidate
            candidates = h.editable(ctx)
            if not candidates:
                return None
            arm = random.choice(candidates)
            value = h.neighbour(ctx, arm, rng)
            if value is None:
                return None
            reason = "Exploration: " + arm + " proposed " + str(value)
            return {"candidates": [h.candidate(arm, value, reason)], "skip_llm": True}
        else:
            # Exploit by selecting the best candidate
            candidates = h.editable(ctx)
            if not candidates:
                return None
            arm = self.state["current"]
            value = h.neighbour(ctx, arm, rng)
            if value is None:
                return None
            reason = "Exploitation: " + arm + " proposed " + str(value)
            return {"candidates": [h.candidate(arm, value, reason)], "skip_llm": True}

    def screen(self, ctx, candidates):
        """After proposing, pick which candidate trains. Return what the API says for screen, or None."""
        return None

    def accept(self, ctx, result, default):
        """After training, override keep/discard. `default` is the decision without you (True = keep). Return what the API says for accept, or None."""
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        reward = 1 if result["kept"] else 0
        for name in result["changes"]:
            if name == self.state["current"]:
                self.state["value"] = result["value"]
            else:
                self.state["current"] = name
        self.state["epsilon"] *= 0.99  # decay exploration rate
