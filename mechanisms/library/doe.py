"""One-factor-at-a-time design of experiments: put each untried parameter on the table once, at a chosen level."""

import random

import helpers as h


class OneFactorDesign:
    """Design of experiments: propose the next untried parameter alone, at a level away from its current value."""

    name = "one_factor"

    def __init__(self):
        self.levels = {}  # parameter -> how many times this design has moved it

    def propose(self, ctx):
        untried = h.untried(ctx)
        if not untried:
            return None  # every factor has been tried once: the design is done, the LLM takes over
        rng = random.Random(ctx["seed"])
        name = untried[0]
        # alternate directions across designs: doubled / halved on log scales, a tenth of the range otherwise
        value = h.neighbour(ctx, name, rng, scale=2.0)
        if value is None:
            return None
        reason = "one factor at a time: " + name + " has never been tried"
        return {"candidates": [h.candidate(name, value, reason)], "skip_llm": True}

    def observe(self, ctx, result):
        for name in result["changes"]:
            self.levels[name] = self.levels.get(name, 0) + 1
