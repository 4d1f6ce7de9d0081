import random

import helpers as h

class PrioritizeExploration:
    """The mechanism prioritises exploration over exploitation by introducing a trade-off parameter. This parameter could be a trade-off between the exploration rate (a higher value means more exploration) and the exploitation rate (a higher value means more exploitation). The mechanism could use this parameter to decide how much exploration to perform, and how much exploitation to perform. The mechanism"""

    name = "prioritize_exploration"

    def __init__(self):
        # Keep the state (The, state, of, the) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        return None
