"""Simulated-annealing acceptance: sometimes keep a slightly worse result, so the search can leave a local optimum;
the temperature cools with every decision. The best point is never affected (only where the search stands)."""

import math
import random

import helpers as h

START_TEMPERATURE = 0.05  # in units of the objective: a worse result by this much is kept with probability 1/e
COOLING = 0.9  # the temperature is multiplied by this after every decision


class Annealing:
    """Annealing acceptance: keep a worse run with probability exp(-loss / T), T cooling geometrically."""

    name = "annealing"

    def __init__(self):
        self.temperature = START_TEMPERATURE

    def accept(self, ctx, result, default):
        if default or result["value"] is None:
            return None
        current = ctx["current"]["value"]
        worse_by = abs(result["value"] - current)
        if h.is_better(ctx, result["value"], current) or self.temperature <= 0:
            return None
        rng = random.Random(ctx["seed"])
        return rng.random() < math.exp(-worse_by / self.temperature) or None

    def observe(self, ctx, result):
        self.temperature = self.temperature * COOLING
