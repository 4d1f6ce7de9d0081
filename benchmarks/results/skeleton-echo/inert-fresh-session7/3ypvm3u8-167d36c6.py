import random

import helpers as h


class PrioritizeTriesMechanism:
    """The mechanism prioritises the most tried parameters by adding a new hook `prioritize_tries` that checks the `most_tried_params` list and returns the candidates with the highest number of tries. The `p"""

    name = "prioritize_tries_mechanism"

    def __init__(self):
        # Keep the state (The, state, of, the) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {"most_tried_params": set()}

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        return None

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the state with the new experiment
        experiment = result["changes"]
        for name, value in experiment.items():
            if name in self.state["most_tried_params"]:
                self.state["most_tried_params"].remove(name)
            self.state["most_tried_params"].add(name)
        return None
