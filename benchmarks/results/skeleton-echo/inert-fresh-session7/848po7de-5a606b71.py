import random
import math

import helpers as h

class LearningRateExploitation:
    """The mechanism changes the learning rate based on the performance of the best model so far. When the best model performs well, the learning rate is increased, and when the best model performs poorly, the learning rate is decreased."""
    name = "learning_rate_exploitation"

    def __init__(self):
        # Initialize the learning rate to a reasonable value.
        self.state = {"learning_rate": 0.1}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Use the learning rate to propose a new value for the parameter.
        # You can use h.neighbour(ctx, parameter, rng) to get a nearby value.
        # Return None if no suitable value is found.
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the learning rate based on the performance of the best model.
        # You can use h.is_better(ctx, current_best, new_model) to determine if the new model is better.
        # If the new model is better, increase the learning rate. If the new model is worse, decrease the learning rate.
        # Return None if no suitable value is found.
        return None
