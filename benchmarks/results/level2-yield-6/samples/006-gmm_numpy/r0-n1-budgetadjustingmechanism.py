import random

import helpers as h


class Budgetadjustingmechanism:
    """The mechanism should keep track of the performance of the current set of candidates and adjust the budget based on that performance. The mechanism should propose new candidates based on the current set of candidates and the performance of the current set of candidates. The mechanism should observe the performance of the current set of candidates and update its state accordingly. The mechanism should change at least one decision of the loop when the trace gives it a reason to."""

    name = "budgetadjustingmechanism"

    def __init__(self):
        # Keep the state (The, current, set, of) in the dict self.state.
        # Do not change __init__: there is no ctx here. Fill self.state in observe(ctx, result).
        self.state = {
            "current": {},
            "best": {},
            "baseline": {}
        }

    def propose(self, ctx):
        """Put concrete candidates on the table. Return what the API says for propose, or None."""
        # Get the best configuration based on the current state
        best_config = self.state["best"]
        best_value = self.state["baseline"]["value"]

        # Find the parameters that have been changed in the current iteration
        changed_params = {name for name, value in ctx["changes"].items() if value != best_value}

        # If no parameters have been changed, return None
        if not changed_params:
            return None

        # Get the current budget and the number of trials for each parameter
        current_budget = ctx["objective"]["budget"]
        current_trials = {name: ctx["trace"][i]["changes"].get(name, 0) for i, config in enumerate(ctx["trace"]) if config["config"] == best_config}

        # Calculate the reward for each parameter
        rewards = {name: 1 if config["kept"] else 0 for name, config in ctx["trace"] if config["config"] == best_config}

        # Calculate the cumulative reward for each parameter
        cumulative_rewards = {name: sum(rewards[name] for i, config in enumerate(ctx["trace"]) if config["config"] == best_config)}

        # Calculate the reward ratio for each parameter
        reward_ratios = {name: cumulative_rewards[name] / (current_budget * current_trials[name]) if current_trials[name] > 0 else float("inf") for name in changed_params}

        # Sort the parameters by their reward ratio in descending order
        sorted_params = sorted(changed_params, key=lambda name: reward_ratios[name], reverse=True)

        # Pick the parameter with the highest reward ratio
        chosen_param = sorted_params[0]

        # Get the current value of the chosen parameter
        current_value = self.state["current"][chosen_param]

        # Calculate the new value of the chosen parameter
        new_value = h.neighbour(ctx, chosen_param, random.Random(ctx["seed"]))

        # Get the new budget based on the reward ratio
        new_budget = current_budget * reward_ratios[chosen_param]

        # Return the new budget and the new value of the chosen parameter
        return {"candidates": [h.candidate(chosen_param, new_value, "budget_adjustingmechanism: " + chosen_param + " changed to " + str(new_value))], "skip_llm": True}

    def observe(self, ctx, result):
        """After the decision: update self's state from `result`. Return what the API says for observe, or None."""
        # Update the current state with the new result
        self.state["current"] = result["config"]
        self.state["best"] = result["config"]
        self.state["baseline"] = result["config"]
