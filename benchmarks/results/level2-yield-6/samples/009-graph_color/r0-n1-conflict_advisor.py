import random

import helpers as h


class ConflictAdvisor:
    """The mechanism implements a more sophisticated guidance mechanism that considers the context and the current state of the search, such as the number of conflicts and the current best configuration, to provide more relevant advice to the LLM. This would help the LLM make better decisions and avoid conflicts. The mechanism keeps the number of conflicts and the current best configuration in the state,
State: conflicts, best_config
It must change at least one decision of the loop when the trace gives it a reason to."""

    name = "conflict_advisor"

    def __init__(self):
        # Keep the state (conflicts, best_config) in the dict self.state.
        self.state = {}

    def plan(self, ctx):
        """Before the LLM proposes. Return what the API says for plan, or None."""
        # Consider the number of conflicts and the current best configuration
        conflicts = self.state.get('conflicts', 0)
        best_config = self.state.get('best_config', {})
        # Determine the guidance based on the current state
        if conflicts > 0:
            # If there are conflicts, advise the LLM to avoid the current best configuration
            return {"avoid": [h.config_key(best_config)], "guidance": f"Conflict detected, avoid {h.config_key(best_config)}."}
        else:
            # If there are no conflicts, advise the LLM to explore new configurations
            return {"guidance": "No conflicts detected, explore new configurations."}

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the state with the new information from the experiment
        self.state['conflicts'] = self.state.get('conflicts', 0) + 1 if not result["kept"] else 0
        best_config = result["config"]
        if not result["kept"]:
            self.state['best_config'] = best_config
