import random

import helpers as h


class Rlguidance:
    """The mechanism implements a more sophisticated guidance system that considers the current state of the system and the historical performance of the mechanisms. This could include using a reinforcement learning approach to learn from the historical data and make better decisions. The evidence could be that this approach has improved the makespan in previous runs, and the idea could be to implement a"""

    name = "rlguidance"

    def __init__(self):
        # Keep the state (current_state) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        # Your new body
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Your new body
        pass
