import random

import helpers as h


class BudgetSetter:
    """The mechanism directly sets the training budget based on the current best value found, without relying on the advice from the plan. It returns the budget in the `observe` hook."""

    name = "budget_setter"

    def __init__(self):
        # Keep the state (budget) in the dict self.state.
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        ...  # your new body

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        if result["kept"]:
            # If the result is kept, set the budget to the current best value.
            self.state["budget"] = result["value"]
            return None
        else:
            # If the result is not kept, do nothing.
            return None
