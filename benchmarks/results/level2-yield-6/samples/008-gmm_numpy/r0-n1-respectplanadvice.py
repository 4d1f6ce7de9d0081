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
        advice = ctx["plan"]
        if advice is None:
            return None
        # Ignore the guidance, focus, avoid, n_candidates, temperature parameters
        proposed = h.candidate(ctx["params"][0]["name"], advice["guidance"], "advice ignored")
        proposed["changes"] = {ctx["params"][0]["name"]: advice["guidance"]}
        proposed["reason"] = "Respectplanadvice: " + advice["guidance"]
        return {"candidates": [proposed], "skip_llm": True}

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # No state to update
        return None
