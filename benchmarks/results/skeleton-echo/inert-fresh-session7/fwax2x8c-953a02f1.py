import random
import math

import helpers as h

class ConflictGuidance:
    """The mechanism implements a more sophisticated guidance strategy that considers the current state of the graph and the current budget. For example, the guidance might suggest a new colour if the graph """

    name = "conflict_guidance"

    def __init__(self):
        # Keep the state (conflict_state) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Your new body
        # Consider the current state of the graph and the current budget to decide what to propose.
        # Return a list of up to 4 candidates, each made with h.candidate(NAME, value, "reason"), or {"candidates": [...], "skip_llm": True} to skip the LLM this iteration.
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Your new body
        # Update the state of the mechanism based on the outcome of the experiment.
        # Return None (train candidates[0]), or {"choose": i} with an int i in range(len(candidates)), or {"reject": True, "reason": str} to ask for new candidates.
        pass
