import random

import helpers as h


class Explorationandexploitation:
    """The mechanism implements a simple exploration and exploitation strategy by proposing new candidates and picking the one with the best validation score. It keeps the best configuration found so far and"""

    name = "explorationandexploitation"

    def __init__(self):
        # Keep the state (best_config) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the strategy to propose new candidates.
        # You can use h.untried(ctx) to get the editable parameters.
        # You can use h.neighbour(ctx, NAME, rng) to get a nearby value.
        # You can use h.candidate(NAME, value, reason) to create a candidate.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.tried(ctx, config) to check if a config has been tried.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can use h.is_better(ctx, a, b) to compare two values.
        # You can use h.value_of(view) to get the value of a view.
        # You can use h.config_key(config) to get the key of a config.
        # You can
