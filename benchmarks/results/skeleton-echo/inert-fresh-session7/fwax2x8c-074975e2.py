import random

import helpers as h


class Feedbackloopmechanism:
    """The feedback loop allows the mechanism to evaluate the effectiveness of the proposed candidates and adjust the plan accordingly. When a mechanism proposes candidates, it also observes the results of t"""

    name = "feedbackloopmechanism"

    def __init__(self):
        # Keep the state (None) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Your new body
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Your new body
        pass
