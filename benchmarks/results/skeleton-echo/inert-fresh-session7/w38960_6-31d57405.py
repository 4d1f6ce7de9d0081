import random

import helpers as h


class Bayesianoptimization:
    """The proposed mechanism evaluates the potential impact of each parameter setting on the objective using a Bayesian optimization algorithm, which can evaluate the potential impact of each parameter sett"""

    name = "bayesianoptimization"

    def __init__(self):
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the propose method using Bayesian optimization
        # This method should propose a nearby value of the parameter with the highest upper confidence bound
        # It should also update the state with the proposed changes and the new value
        # Return None or a list of up to 4 candidates
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Implement the observe method using Bayesian optimization
        # This method should update the state with the observed changes and the new value
        # Return None or None
        pass
