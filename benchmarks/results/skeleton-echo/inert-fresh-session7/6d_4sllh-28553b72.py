import random

import helpers as h


class Thompsonsampling:
    """The mechanism implements Thompson sampling to choose candidates that considers the trade-off between exploration and exploitation. It keeps track of the current best configuration and the number of ti"""

    name = "thompsonsampling"

    def __init__(self):
        # Keep the state (best_config, name, value, tried_params) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        return None
