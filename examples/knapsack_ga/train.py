"""Solve a fixed 0/1 knapsack instance with a genetic algorithm (numpy only, no machine learning).

The instance (200 items, weights and strongly correlated values, a capacity of a third of the total weight) is drawn
once from a fixed seed, so every run solves the same problem, and its optimum is computed exactly by dynamic
programming; SEED only drives the algorithm's own randomness. Each generation breeds a new population by selection,
crossover and bit-flip mutation; an overweight child is either penalised or repaired greedily. The budget is the
number of children evaluated, so a larger population means fewer generations. The metric is `value_gap`, the relative
gap between the optimum and the best feasible packing found, lower is better (0: optimal). It is written to
`metrics.json` in the working directory (with a few counts).

    bilevel run --workload examples/knapsack_ga/train.py --metric value_gap --fixed SEED,EVALUATIONS --levels 1
"""

import json

import numpy as np

# --- hyperparameters ---
POPULATION = 40             # int [10, 400] log: individuals per generation
MUTATION_RATE = 0.02        # float [1e-4, 0.2] log: probability of flipping each item of a child
CROSSOVER_RATE = 0.6        # float [0.0, 1.0]: share of children bred by crossover (the rest copy one parent)
CROSSOVER = "one_point"     # choice [one_point, two_point, uniform]: how two parents are combined
SELECTION = "roulette"      # choice [roulette, tournament, rank]: how parents are chosen
TOURNAMENT_SIZE = 2         # int [2, 16]: contestants per parent (tournament selection only)
ELITES = 0                  # int [0, 20]: best individuals copied unchanged into the next generation
REPAIR = False              # bool: drop an overweight child's worst value-per-weight items instead of penalising it
PENALTY = 1.0               # float [0.01, 100.0] log: fitness lost per unit of excess weight, in mean values per weight
EVALUATIONS = 20000         # int [1000, 200000]: children evaluated in all (the budget)
SEED = 0                    # int [0, 1000]: the algorithm's seed (the instance does not depend on it)
# --- end hyperparameters ---

ITEMS = 200  # bilevel: fixed (the problem)
INSTANCE_SEED = 20240917  # bilevel: fixed (the problem: the same items in every run)


def instance() -> tuple[np.ndarray, np.ndarray, int]:
    """Integer weights in [10, 100], values = weight + 10 +- noise (strongly correlated: hard for greedy rules)."""
    rng = np.random.default_rng(INSTANCE_SEED)
    weights = rng.integers(10, 101, size=ITEMS)  # bilevel: fixed (the problem)
    values = weights + 10 + rng.integers(-5, 6, size=ITEMS)  # bilevel: fixed (the problem)
    return weights, values, int(weights.sum() // 3)  # bilevel: fixed (the problem)


def optimum(weights: np.ndarray, values: np.ndarray, capacity: int) -> int:
    best = np.zeros(capacity + 1, dtype=np.int64)  # best[c]: the most value within weight c, items so far
    for weight, value in zip(weights.tolist(), values.tolist()):
        best[weight:] = np.maximum(best[weight:], best[:-weight] + value)
    return int(best[-1])


def main() -> None:
    weights, values, capacity = instance()
    best_possible = optimum(weights, values, capacity)
    rng = np.random.default_rng(SEED)
    worst_first = np.argsort(values / weights)  # the order a repair drops items in
    scale = PENALTY * float(values.sum() / weights.sum())
    n = POPULATION
    elites = min(ELITES, n - 1)
    population = rng.random((n, ITEMS)) < 0.5

    def evaluate(pop: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if REPAIR:  # drop the worst items of each overweight row until it fits
            chosen = pop[:, worst_first]
            load = chosen * weights[worst_first]
            excess = load.sum(axis=1, keepdims=True) - capacity
            dropped = chosen & (np.cumsum(load, axis=1) - load < excess)
            pop = pop.copy()
            pop[:, worst_first] = chosen & ~dropped
        value, weight = pop @ values, pop @ weights
        fitness = value - scale * np.maximum(weight - capacity, 0)
        return pop, fitness.astype(float), np.where(weight <= capacity, value, 0)

    def parents(fitness: np.ndarray, count: int) -> np.ndarray:
        if SELECTION == "tournament":
            contestants = rng.integers(0, n, size=(count, TOURNAMENT_SIZE))
            return contestants[np.arange(count), np.argmax(fitness[contestants], axis=1)]
        if SELECTION == "rank":
            weight = np.empty(n)
            weight[np.argsort(fitness)] = np.arange(1, n + 1)
        else:  # roulette on the fitness shifted to be positive
            weight = fitness - fitness.min() + 1e-9
        return rng.choice(n, size=count, p=weight / weight.sum())

    population, fitness, feasible = evaluate(population)
    best_value = int(feasible.max())
    evaluated, generations = n, 0
    while evaluated + n - elites <= EVALUATIONS:
        children = n - elites
        mothers, fathers = population[parents(fitness, children)], population[parents(fitness, children)]
        if CROSSOVER == "uniform":
            from_father = rng.random((children, ITEMS)) < 0.5
        else:
            cuts = np.sort(rng.integers(1, ITEMS, size=(children, 2)), axis=1)
            if CROSSOVER == "one_point":
                cuts[:, 1] = ITEMS
            position = np.arange(ITEMS)
            from_father = (position >= cuts[:, :1]) & (position < cuts[:, 1:])
        from_father &= (rng.random(children) < CROSSOVER_RATE)[:, None]
        offspring = np.where(from_father, fathers, mothers) ^ (rng.random((children, ITEMS)) < MUTATION_RATE)
        offspring, child_fitness, child_feasible = evaluate(offspring)
        best_value = max(best_value, int(child_feasible.max()))
        keep = np.argsort(fitness)[n - elites:]
        population = np.concatenate([population[keep], offspring])
        fitness = np.concatenate([fitness[keep], child_fitness])
        evaluated += children
        generations += 1
    value_gap = (best_possible - best_value) / best_possible
    metrics = {"value_gap": value_gap, "best_value": best_value, "optimum": best_possible,
               "generations": generations, "evaluations": evaluated}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"value_gap {value_gap:.6f} (best {best_value} of {best_possible}, {generations} generations)")


if __name__ == "__main__":
    main()
