import random

import helpers as h


class EpsilonGreedy:
    """The mechanism prioritises exploration over exploitation by allowing the LLM to propose new values with a certain probability, and if the LLM proposes a value that is not in the current set of tried va"""

    name = "epsilon_greedy"

    def __init__(self):
        # Keep the state (tried_values, llm_prompt) in the dict self.state.
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the epsilon-greedy strategy here
        # Use the ctx["params"] to determine the parameters to consider
        # Use h.editable(ctx) to check if a parameter is editable
        # Use h.neighbour(ctx, NAME, rng) to propose a nearby value
        # Return the result of the propose method as specified by the API
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the state based on the result of the propose method
        # Use the ctx["params"] to determine the parameters to consider
        # Use h.editable(ctx) to check if a parameter is editable
        # Use h.neighbour(ctx, NAME, rng) to propose a nearby value
        # Return the result of the observe method as specified by the API
        pass
