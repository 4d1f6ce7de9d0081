import random

import helpers as h


class Constraintshandlingmechanism:
    """The mechanism implements the propose and observe hooks. It keeps track of the current budget, data, and the best configuration. The propose hook puts concrete candidates on the table, and the observe """

    name = "constraintshandlingmechanism"

    def __init__(self):
        # Keep the state (budget, data, best_config) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the propose hook according to the problem description
        # This is a placeholder for your implementation
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Implement the observe hook according to the problem description
        # This is a placeholder for your implementation
        pass
