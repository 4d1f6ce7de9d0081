import random

import helpers as h


class Rlguidance:
    """The mechanism implements a more sophisticated guidance system that considers the current state of the system and the historical performance of the mechanisms. It uses a reinforcement learning approach"""

    name = "rlguidance"

    def __init__(self):
        # Keep the state (current_state, historical_performance) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        # Implement the plan logic here
        # Consider the current state and historical performance to make a decision
        # Return the advice, guidance, focus, avoid, n_candidates, temperature, or None
        pass

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the propose logic here
        # Generate concrete candidates based on the current state and historical performance
        # Return the candidates or None
        pass

    def screen(self, ctx, candidates):
        """After proposing, pick which candidate trains. Return what the API says for screen, or None."""
        # Implement the screen logic here
        # Select the candidate that trains based on the historical performance and the current state
        # Return the candidate or None
        pass

    def accept(self, ctx, result, default):
        """After training, override keep/discard. Return what the API says for accept, or None."""
        # Implement the accept logic here
        # Override the decision based on the historical performance and the current state
        # Return None, True, or False
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the state based on the result
        # Return None
        pass
