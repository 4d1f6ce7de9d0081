import random
import math

import helpers as h

class ConflictGuidance:
    """The mechanism implements a more sophisticated guidance strategy that considers the current state of the graph and the progress of the search. It uses a reinforcement learning algorithm that learns from past conflicts and suggests better candidates based on the current state of the graph."""

    name = "conflict_guidance"

    def __init__(self):
        # Keep the state (conflict_state) in the dict self.state.
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Your new body
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Your new body
        pass
