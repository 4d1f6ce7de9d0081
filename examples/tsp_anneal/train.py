"""Solve a fixed 60-city travelling-salesman instance by simulated annealing (numpy only, no machine learning).

The cities are drawn once from a fixed seed, so every run solves the same problem; SEED only drives the annealing's
own randomness. Each step tries one move (a 2-opt reversal, a swap of two cities, or an or-opt move of a short
segment) and accepts it by the Metropolis rule at the current temperature, which cools geometrically after every
MOVES_PER_TEMPERATURE moves; on stagnation the search can reheat from the best tour found. The metric is
`tour_length`, the length of the best closed tour found in the unit square, lower is better. It is written to
`metrics.json` in the working directory (with a few counts).

    bilevel run --workload examples/tsp_anneal/train.py --metric tour_length --fixed SEED,STEPS --levels 1
"""

import json
import math

import numpy as np

# --- hyperparameters ---
INITIAL_TEMPERATURE = 1.0   # float [1e-4, 10.0] log: starting temperature (a typical edge is about 0.1 long)
COOLING = 0.95              # float [0.5, 0.9999]: temperature factor after each stage of moves
MOVES_PER_TEMPERATURE = 100  # int [1, 5000] log: moves tried at each temperature (one stage)
TWO_OPT_SHARE = 0.5         # float [0.0, 1.0]: share of moves that reverse a segment (2-opt)
OR_OPT_SHARE = 0.5          # float [0.0, 1.0]: of the other moves, the share that relocate a segment of 1-3 cities (the rest swap two cities)
REHEAT_AFTER = 0            # int [0, 500]: stages without a new best before reheating from the best tour (0: never)
REHEAT_FRACTION = 0.3       # float [0.001, 1.0] log: reheat temperature as a share of INITIAL_TEMPERATURE
GREEDY_START = False        # bool: start from the nearest-neighbour tour instead of a random one
STEPS = 40000               # int [1000, 500000]: moves tried in all (the budget)
SEED = 0                    # int [0, 1000]: annealing seed (the cities do not depend on it)
# --- end hyperparameters ---

CITIES = 60
INSTANCE_SEED = 20240601  # the problem: the same cities in every run


def nearest_neighbour_tour(distance: list[list[float]], start: int) -> list[int]:
    left = set(range(len(distance))) - {start}
    tour = [start]
    while left:
        here = distance[tour[-1]]
        tour.append(min(left, key=lambda city: here[city]))
        left.remove(tour[-1])
    return tour


def length_of(tour: list[int], distance: list[list[float]]) -> float:
    return sum(distance[tour[k - 1]][tour[k]] for k in range(len(tour)))


def main() -> None:
    cities = np.random.default_rng(INSTANCE_SEED).uniform(0.0, 1.0, size=(CITIES, 2))
    distance = np.sqrt(((cities[:, None, :] - cities[None, :, :]) ** 2).sum(axis=2)).tolist()
    n = CITIES
    rng = np.random.default_rng(SEED)
    # Every random number the run needs, drawn up front (per-move numpy calls would dominate the run time).
    kinds = rng.random(STEPS).tolist()
    subkinds = rng.random(STEPS).tolist()
    firsts = rng.integers(0, n, size=STEPS).tolist()
    seconds = rng.integers(0, n, size=STEPS).tolist()
    lengths = rng.integers(1, 4, size=STEPS).tolist()
    accepts = rng.random(STEPS).tolist()
    if GREEDY_START:
        tour = nearest_neighbour_tour(distance, int(rng.integers(0, n)))
    else:
        tour = [int(city) for city in rng.permutation(n)]
    current = length_of(tour, distance)
    best, best_tour = current, tour[:]
    temperature = INITIAL_TEMPERATURE
    stale_stages = accepted = reheats = 0
    improved_this_stage = False
    relocated = tour
    for step in range(STEPS):
        i, j = firsts[step], seconds[step]
        if kinds[step] < TWO_OPT_SHARE:  # reverse tour[i..j]
            i, j = min(i, j), max(i, j)
            if j - i < 1 or (i == 0 and j == n - 1):
                delta, move = 0.0, None
            else:
                a, b, c, d = tour[i - 1], tour[i], tour[j], tour[(j + 1) % n]
                delta = distance[a][c] + distance[b][d] - distance[a][b] - distance[c][d]
                move = ("reverse", i, j)
        elif subkinds[step] < OR_OPT_SHARE:  # move the segment at i (1-3 cities) to before rest[j]
            size = lengths[step]
            i = min(i, n - size)
            segment, rest = tour[i:i + size], tour[:i] + tour[i + size:]
            m = len(rest)
            j %= m
            if j == i % m:
                delta, move = 0.0, None
            else:
                before, after = rest[i - 1], rest[i % m]
                removed = distance[before][segment[0]] + distance[segment[-1]][after] - distance[before][after]
                u, v = rest[j - 1], rest[j]
                forward = distance[u][segment[0]] + distance[segment[-1]][v]
                backward = distance[u][segment[-1]] + distance[segment[0]][v]
                if backward < forward:
                    segment = segment[::-1]
                delta = min(forward, backward) - distance[u][v] - removed
                relocated, move = rest[:j] + segment + rest[j:], ("relocate", i, j)
        else:  # swap the cities at i and j
            if i == j:
                delta, move = 0.0, None
            else:
                edges = {(i - 1) % n, i, (j - 1) % n, j}  # edge k joins tour[k] and tour[k + 1]
                before_swap = sum(distance[tour[k]][tour[(k + 1) % n]] for k in edges)
                tour[i], tour[j] = tour[j], tour[i]
                delta = sum(distance[tour[k]][tour[(k + 1) % n]] for k in edges) - before_swap
                tour[i], tour[j] = tour[j], tour[i]
                move = ("swap", i, j)
        if move is not None and (delta <= 0.0 or (temperature > 0.0 and accepts[step] < math.exp(-delta / temperature))):
            kind, x, y = move
            if kind == "reverse":
                tour[x:y + 1] = tour[x:y + 1][::-1]
            elif kind == "relocate":
                tour = relocated
            else:
                tour[x], tour[y] = tour[y], tour[x]
            current += delta
            accepted += 1
            if current < best - 1e-12:
                best, best_tour, improved_this_stage = current, tour[:], True
        if (step + 1) % MOVES_PER_TEMPERATURE == 0:  # the end of a stage: cool, or reheat on stagnation
            stale_stages = 0 if improved_this_stage else stale_stages + 1
            improved_this_stage = False
            if REHEAT_AFTER > 0 and stale_stages >= REHEAT_AFTER:
                temperature = REHEAT_FRACTION * INITIAL_TEMPERATURE
                tour, current, stale_stages = best_tour[:], best, 0
                reheats += 1
            else:
                temperature *= COOLING
    tour_length = length_of(best_tour, distance)  # recomputed: no drift from the summed deltas
    metrics = {"tour_length": tour_length, "accepted": accepted, "reheats": reheats,
               "final_temperature": temperature, "steps": STEPS}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"tour_length {tour_length:.6f} (accepted {accepted} of {STEPS} moves, {reheats} reheats)")


if __name__ == "__main__":
    main()
