"""Colour a fixed random graph with too few colours: a greedy construction, then tabu search over single recolourings.

The graph (125 vertices, each pair joined with probability one half: about 3,900 edges) is drawn once from a fixed
seed, so every run colours the same graph; SEED only drives the search's own randomness. There are 15 colours, fewer
than the graph needs, so some edges must join two vertices of one colour (a conflict); the search minimises how many.
Each restart builds a colouring (at random, greedily in a random order, or by DSATUR: the vertex with the most
colours among its neighbours first), each vertex taking the colour it conflicts least with, then changes the colour of
one conflicting vertex at a time: the best change over all conflicting vertices (TabuCol) or the best change of one
conflicting vertex drawn at random (min-conflicts), or with a probability a random change. A vertex may not take back
a colour it left for a tenure of moves (a constant plus a share of the conflicting vertices) unless that gives the
restart a new best. When the search stalls it goes on from the restart's best colouring with some vertices recoloured
at random. The budget is the number of colour changes (random recolourings included). The metric is `conflicts`, the
number of edges whose two ends share a colour in the best colouring found, lower is better. It is written to
`metrics.json` in the working directory (with a few counts).

    bilevel run --workload examples/graph_color/train.py --metric conflicts --fixed SEED,MOVES --levels 1
"""

import json
import math
import re

import numpy as np

# --- hyperparameters ---
INIT = "random"             # choice [random, greedy, dsatur]: each restart's colouring: random colours, greedy in a random order, or DSATUR (most coloured neighbours first)
RESTARTS = 1                # int [1, 20] log: colourings built, each followed by its share of the moves
MOVE = "minconf"            # choice [best, minconf]: the best change over all conflicting vertices, or over one conflicting vertex drawn at random
TENURE = 0                  # int [0, 50]: moves for which a vertex may not take back the colour it left (the constant part)
TENURE_SCALE = 0.0          # float [0.0, 2.0]: more tenure per conflicting vertex
WALK = 0.0                  # float [0.0, 0.5]: probability of a random change of a conflicting vertex instead
KICK = 0                    # int [0, 30]: vertices recoloured at random when the search stalls, from the restart's best colouring (0: never)
STALL = 500                 # int [10, 5000] log: moves without a new best before a kick
MOVES = 20000               # int [1000, 100000]: colour changes in all (the budget)
SEED = 0                    # int [0, 1000]: the search's seed (the graph does not depend on it)
# --- end hyperparameters ---

VERTICES, COLOURS = 125, 15  # bilevel: fixed (the problem)
DENSITY = 0.5  # bilevel: fixed (the problem: the probability of each edge)
INSTANCE_SEED = 20250803  # bilevel: fixed (the problem: the same graph in every run)


def check_block() -> None:
    """Exit with one line when a block value lies outside the range its comment declares (or is not a choice)."""
    with open(__file__, encoding="utf-8") as handle:
        block = handle.read().split("# --- hyperparameters ---")[1].split("# --- end hyperparameters ---")[0]
    for name, kind, bounds in re.findall(r"^(\w+) *=.*?# (int|float|choice|bool)\b(?: \[([^\]]*)\])?", block, re.M):
        value = globals()[name]
        if kind == "choice":
            ok = value in [choice.strip() for choice in bounds.split(",")]
        elif kind == "bool":
            ok = isinstance(value, bool)
        else:
            low, high = (float(bound) for bound in bounds.split(","))
            number = isinstance(value, int) if kind == "int" else isinstance(value, (int, float))
            ok = number and not isinstance(value, bool) and low <= value <= high
        if not ok:
            allowed = f" in [{bounds}]" if bounds else ""
            raise SystemExit(f"train.py: {name} = {value!r} is not a valid {kind}{allowed}")


def instance() -> np.ndarray:
    """The graph's symmetric adjacency matrix (no loops)."""
    rng = np.random.default_rng(INSTANCE_SEED)
    upper = np.triu(rng.random((VERTICES, VERTICES)) < DENSITY, 1)
    return upper | upper.T


def main() -> None:
    check_block()
    adjacency = instance()
    n, k = VERTICES, COLOURS
    edges = int(adjacency.sum()) // 2
    neighbours = [np.flatnonzero(row) for row in adjacency]
    counts = adjacency.astype(np.int64)
    rows = np.arange(n)
    rng = np.random.default_rng(SEED)
    moves, kicks, walks = 0, 0, 0  # bilevel: fixed (the counts the budget is spent against)

    def construct() -> np.ndarray:
        """One colouring: each vertex in turn takes the colour it conflicts least with (the lowest on a tie)."""
        if INIT == "random":
            return rng.integers(k, size=n)
        colour = np.full(n, -1)
        seen = np.zeros((n, k), dtype=np.int64)  # coloured neighbours of each colour
        order = rng.permutation(n)
        for step in range(n):
            if INIT == "dsatur":  # the most distinct colours among its neighbours, then the most uncoloured ones
                open_ = colour < 0
                key = ((seen > 0).sum(axis=1) * n + counts[:, open_].sum(axis=1)) * n + order  # order: random ties
                v = int(np.flatnonzero(open_)[np.argmax(key[open_])])
            else:
                v = int(order[step])
            c = int(np.argmin(seen[v]))
            colour[v] = c
            seen[neighbours[v], c] += 1
        return colour

    best_value = math.inf
    for restart in range(RESTARTS):
        share = MOVES * (restart + 1) // RESTARTS  # the moves spent by the end of this restart
        colour = construct()
        gamma = counts @ np.eye(k, dtype=np.int64)[colour]  # gamma[v, c]: neighbours of v coloured c
        value = int(gamma[rows, colour].sum()) // 2
        local, local_value = colour.copy(), value
        tabu = np.zeros((n, k), dtype=np.int64)  # the move up to which a vertex may not take a colour back
        stalled = 0
        while moves < share and local_value > 0:
            own = gamma[rows, colour]
            conflicted = np.flatnonzero(own > 0)
            if WALK and rng.random() < WALK:
                v = int(conflicted[rng.integers(len(conflicted))])
                c = int((colour[v] + 1 + rng.integers(k - 1)) % k)
                walks += 1
            else:
                candidates = conflicted if MOVE == "best" else conflicted[rng.integers(len(conflicted))][None]
                delta = gamma[candidates] - own[candidates, None]
                delta[np.arange(len(candidates)), colour[candidates]] = 2 * n  # staying is no move
                forbidden = (tabu[candidates] > moves) & (value + delta >= local_value)  # unless a new best
                delta = np.where(forbidden, delta + n, delta)  # a tabu change only where every change is tabu
                ties = np.flatnonzero(delta == delta.min())
                i, c = divmod(int(ties[rng.integers(len(ties))]), k)
                v = int(candidates[i])
            old = int(colour[v])
            value += int(gamma[v, c] - gamma[v, old])
            colour[v] = c
            gamma[neighbours[v], old] -= 1
            gamma[neighbours[v], c] += 1
            tabu[v, old] = moves + 1 + TENURE + round(TENURE_SCALE * len(conflicted))
            moves += 1
            if value < local_value:
                local, local_value, stalled = colour.copy(), value, 0
            else:
                stalled += 1
            if KICK and stalled >= STALL and moves < share:  # go on from the restart's best, partly recoloured
                colour = local.copy()
                kicked = rng.choice(n, size=min(KICK, share - moves), replace=False)
                colour[kicked] = (colour[kicked] + 1 + rng.integers(k - 1, size=len(kicked))) % k
                moves += len(kicked)
                gamma = counts @ np.eye(k, dtype=np.int64)[colour]
                value, stalled, kicks = int(gamma[rows, colour].sum()) // 2, 0, kicks + 1
                if value < local_value:
                    local, local_value = colour.copy(), value
        best_value = min(best_value, local_value)
        if best_value == 0:
            break

    metrics = {"conflicts": int(best_value), "edges": edges, "conflict_share": best_value / edges, "moves": moves,
               "kicks": kicks, "walks": walks}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"conflicts {best_value} of {edges} edges ({moves} moves, {kicks} kicks, {walks} random changes)")


if __name__ == "__main__":
    main()
