import random

import helpers as h


class Budgetadjustingmechanism:
    """The mechanism should keep track of the performance of the current set of candidates and adjust the budget based on that performance. The mechanism should propose new candidates based on the current set of candidates and the performance of the current set of candidates. The mechanism should observe the performance of the current set of candidates and update its state accordingly. The mechanism should change at least one decision of the loop when the trace gives it a reason to."""

    name = "budgetadjustingmechanism"

    def __init__(self):
        # Keep the state (The, current, set, of) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Implement the logic to propose new candidates based on the current set of candidates and the performance of the current set of candidates.
        # This could involve using a performance metric, such as the validation BPP, to determine the best candidates to propose.
        # You should also consider the budget and the performance of the current set of candidates to decide whether to propose new candidates or not.
        # Return the proposed candidates as a list of dictionaries, where each dictionary contains the changes to be made to the parameters.
        # If you decide not to propose new candidates, return None.
        pass

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Implement the logic to update the state of the mechanism based on the result of the experiment.
        # This could involve updating the performance metrics, such as the validation BPP, to determine the best candidates to propose.
        # You should also consider the budget and the performance of the current set of candidates to decide whether to propose new candidates or not.
        # Update the state of the mechanism in self.state.
        # Return None.
        pass
