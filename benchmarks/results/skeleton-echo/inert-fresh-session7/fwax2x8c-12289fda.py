import random

import helpers as h


class Feedbackloopmechanism:
    """The feedback loop allows the mechanism to evaluate the effectiveness of the proposed candidates and adjust the plan accordingly. When a mechanism proposes candidates, it also observes the results of t"""

    name = "feedbackloopmechanism"

    def __init__(self):
        # Keep the state (None) in the dict self.state.
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        rng = random.Random(ctx["seed"])
        # Implement your logic here to propose candidates based on the current context and state
        # Return None or a list of up to 4 candidates
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Implement your logic here to update the state based on the result
        # Return None
        return None
