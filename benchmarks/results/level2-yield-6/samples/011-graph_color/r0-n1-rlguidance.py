import random

import helpers as h

class Rlguidance:
    """The mechanism implements a reinforcement learning approach to learn to provide more informed guidance to the LLM, considering the context and the current state of the search, such as the number of conflicts and the current value of the objective."""

    name = "rlguidance"

    def __init__(self):
        # Keep the state (conflicts, objective_value) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {"conflicts": 0, "objective_value": 0}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        rng = random.Random(ctx["seed"])
        # Calculate the upper confidence bound for each parameter
        upper_confidence_bounds = {param: self.state["objective_value"] / self.state["conflicts"] for param in ctx["params"]}
        # Choose the parameter with the highest upper confidence bound
        chosen_param = max(upper_confidence_bounds, key=upper_confidence_bounds.get)
        # Propose a nearby value of the chosen parameter
        value = h.neighbour(ctx, chosen_param, rng)
        if value is None:
            return None
        reason = "RL guidance: " + chosen_param + " kept " + str(self.state["conflicts"]) + " of " + str(self.state["objective_value"])
        return {"candidates": [h.candidate(chosen_param, value, reason)], "skip_llm": True}

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        reward = 1 if result["kept"] else 0
        # Update the state based on the outcome of the experiment
        self.state["conflicts"] += reward
        self.state["objective_value"] += reward
        # Return None as the API requires this
        return None
