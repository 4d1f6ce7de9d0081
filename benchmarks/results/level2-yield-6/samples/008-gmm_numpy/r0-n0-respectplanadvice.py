import random

import helpers as h


class Respectplanadvice:
    """The mechanism respects the plan's advice and avoids the guidance, focus, avoid, n_candidates, temperature parameters by ignoring them and only using the advice, focus, avoid, n_candidates, temperature"""

    name = "respectplanadvice"

    def __init__(self):
        # Keep the state (None) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        advice = ctx["plan"]["guidance"]
        focus = ctx["plan"]["focus"]
        avoid = ctx["plan"]["avoid"]
        n_candidates = ctx["plan"]["n_candidates"]
        temperature = ctx["plan"]["temperature"]

        # Ignore guidance, focus, avoid, n_candidates, temperature parameters
        # and only use the advice
        if advice is not None:
            rng = random.Random(ctx["seed"])
            value = h.neighbour(ctx, advice, rng)
            if value is not None:
                reason = "Respectplanadvice: " + advice + " kept " + str(value)
                return {"candidates": [h.candidate(advice, value, reason)], "skip_llm": True}

        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        ...  # your new body
