"""Schedule a fixed job-shop instance: randomised greedy construction by a priority rule, then iterated local search.

The instance (10 jobs on 10 machines; each job visits every machine once in its own order, for 1 to 99 time units) is
drawn once from a fixed seed, so every run schedules the same shop; SEED only drives the search's own randomness. A
schedule is a sequence of job numbers (the k-th occurrence of a job is its k-th operation), decoded by starting each
operation as early as its job and its machine allow. Each restart builds a sequence greedily, one operation at a time
among the candidates the rule allows, by a weighted priority (work left in the job, a short operation, work left on
the machine) plus Gumbel noise; then improves it by moves (swap, insert, or the later of two consecutive operations
on one machine of a critical path moved in front of the earlier, with its job's operations that lie between them in
the sequence), accepting a worse sequence with the Metropolis rule at a temperature, and kicks the restart's best
sequence with random moves when the search stalls. The budget is the number of decoded schedules, constructions
included. The metric is `makespan`, the finishing time of the last operation of the best schedule found, lower is
better (the machine and job lower bound is reported with it). It is written to `metrics.json` in the working
directory (with a few counts).

    bilevel run --workload examples/jobshop_sched/train.py --metric makespan --fixed SEED,EVALUATIONS --levels 1
"""

import json
import math
import re

import numpy as np

# --- hyperparameters ---
W_WORK = 0.0                # float [0.0, 5.0]: priority weight of the work left in the operation's job
W_SHORT = 1.0               # float [0.0, 5.0]: priority weight of a short operation (shortest processing time)
W_LOAD = 0.0                # float [0.0, 5.0]: priority weight of the work left on the operation's machine
NOISE = 0.5                 # float [0.0, 5.0]: scale of the Gumbel noise added to the priorities (0: deterministic)
CANDIDATES = "all"          # choice [all, active, nondelay]: every job's next operation, the Giffler-Thompson conflict set, or those that can start earliest
RESTARTS = 1                # int [1, 50] log: greedy constructions, each followed by its share of the local search
MOVE = "swap"               # choice [swap, insert, critical]: the local search's move
KICK = 0                    # int [0, 20]: random moves (of MOVE's kind) applied to the restart's best sequence when the search stalls (0: never)
STALL = 200                 # int [10, 5000] log: moves without a new best before a kick
TEMPERATURE = 0.0           # float [0.0, 50.0]: Metropolis temperature in time units (0: only moves that do not worsen)
EVALUATIONS = 20000         # int [1000, 200000]: schedules decoded in all (the budget)
SEED = 0                    # int [0, 1000]: the search's seed (the instance does not depend on it)
# --- end hyperparameters ---

JOBS, MACHINES = 10, 10  # bilevel: fixed (the problem)
INSTANCE_SEED = 20250611  # bilevel: fixed (the problem: the same shop in every run)


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


def instance() -> tuple[list[list[int]], list[list[int]]]:
    """Each job's machine order (a random permutation) and processing times (integers in [1, 99])."""
    rng = np.random.default_rng(INSTANCE_SEED)
    routes = [rng.permutation(MACHINES).tolist() for _ in range(JOBS)]
    times = rng.integers(1, 100, size=(JOBS, MACHINES)).tolist()  # bilevel: fixed (the problem)
    return routes, times


def main() -> None:
    check_block()
    routes, times = instance()
    rng = np.random.default_rng(SEED)
    ops = JOBS * MACHINES
    job_work = [sum(row) for row in times]
    machine_work = [0] * MACHINES
    for j in range(JOBS):
        for k in range(MACHINES):
            machine_work[routes[j][k]] += times[j][k]
    lower_bound = max(max(job_work), max(machine_work))
    mean_time = sum(job_work) / ops
    evaluations = 0  # bilevel: fixed (the count the budget is spent against)

    def makespan(seq: list[int]) -> int:
        """The semi-active schedule's makespan: each operation starts when its job and its machine are both free."""
        nonlocal evaluations
        evaluations += 1
        done, job_free, machine_free = [0] * JOBS, [0] * JOBS, [0] * MACHINES
        for j in seq:
            k = done[j]
            m = routes[j][k]
            end = max(job_free[j], machine_free[m]) + times[j][k]
            job_free[j] = machine_free[m] = end
            done[j] = k + 1
        return max(machine_free)

    def critical_pairs(seq: list[int]) -> list[tuple[int, int]]:
        """(earlier, later) sequence positions of consecutive operations on one machine along a critical path."""
        done, job_free, machine_free = [0] * JOBS, [0] * JOBS, [0] * MACHINES
        job_last, machine_last = [-1] * JOBS, [-1] * MACHINES
        start, link = [0] * ops, [(-1, False)] * ops  # the position that set the start, and whether it is the machine
        for pos, j in enumerate(seq):
            k = done[j]
            m = routes[j][k]
            if machine_free[m] > job_free[j]:
                start[pos], link[pos] = machine_free[m], (machine_last[m], True)
            else:
                start[pos], link[pos] = job_free[j], (job_last[j], False)
            job_free[j] = machine_free[m] = start[pos] + times[j][k]
            job_last[j], machine_last[m], done[j] = pos, pos, k + 1
        pos = max(range(MACHINES), key=machine_free.__getitem__)
        pos = machine_last[pos]
        pairs = []
        while start[pos] > 0:
            before, on_machine = link[pos]
            if on_machine:
                pairs.append((before, pos))
            pos = before
        return pairs

    def construct() -> list[int]:
        """One greedy sequence: among the rule's candidates, the operation of the highest noisy priority."""
        done, job_free, machine_free = [0] * JOBS, [0] * JOBS, [0] * MACHINES
        job_left, machine_left = list(job_work), list(machine_work)
        seq = []
        for _ in range(ops):
            ready = [j for j in range(JOBS) if done[j] < MACHINES]
            machine = {j: routes[j][done[j]] for j in ready}
            duration = {j: times[j][done[j]] for j in ready}
            start = {j: max(job_free[j], machine_free[machine[j]]) for j in ready}
            if CANDIDATES == "active":  # operations on the machine of the earliest finish that could start before it
                first = min(ready, key=lambda j: start[j] + duration[j])
                ready = [j for j in ready if machine[j] == machine[first]
                         and start[j] < start[first] + duration[first]]
            elif CANDIDATES == "nondelay":
                earliest = min(start.values())
                ready = [j for j in ready if start[j] == earliest]
            noise = rng.gumbel(size=len(ready)) if NOISE else [0.0] * len(ready)
            priority = [(W_WORK * job_left[j] / (MACHINES * mean_time) - W_SHORT * duration[j] / mean_time
                         + W_LOAD * machine_left[machine[j]] / (JOBS * mean_time) + NOISE * g, j)
                        for j, g in zip(ready, noise)]
            j = max(priority)[1]
            m = machine[j]
            job_free[j] = machine_free[m] = start[j] + duration[j]
            job_left[j] -= duration[j]
            machine_left[m] -= duration[j]
            done[j] += 1
            seq.append(j)
        return seq

    def insert(seq: list[int]) -> list[int]:
        out = list(seq)
        out.insert(int(rng.integers(ops)), out.pop(int(rng.integers(ops))))
        return out

    def neighbour(seq: list[int], pairs: list[tuple[int, int]]) -> list[int]:
        if MOVE == "critical" and pairs:  # the later operation goes first on its machine: its job's operations
            before, pos = pairs[int(rng.integers(len(pairs)))]  # in between move in front with it, in their order
            job, between = seq[pos], seq[before:pos + 1]
            return seq[:before] + [job] * between.count(job) + [j for j in between if j != job] + seq[pos + 1:]
        if MOVE == "swap":
            out = list(seq)
            a, b = (int(i) for i in rng.integers(ops, size=2))  # bilevel: fixed (two positions)
            out[a], out[b] = out[b], out[a]
            return out
        return insert(seq)  # insert, and critical on a path without a machine link

    best_value, kicks, worse_accepted = math.inf, 0, 0
    for restart in range(RESTARTS):
        share = EVALUATIONS * (restart + 1) // RESTARTS  # the evaluations spent by the end of this restart
        current = construct()
        value = makespan(current)
        local, local_value = current, value
        pairs = critical_pairs(current) if MOVE == "critical" else []
        stalled = 0
        while evaluations < share:
            candidate = neighbour(current, pairs)
            candidate_value = makespan(candidate)
            delta = candidate_value - value
            if delta <= 0 or (TEMPERATURE > 0 and rng.random() < math.exp(-delta / TEMPERATURE)):
                worse_accepted += delta > 0
                current, value = candidate, candidate_value
                pairs = critical_pairs(current) if MOVE == "critical" else []
            if value < local_value:
                local, local_value, stalled = current, value, 0
            else:
                stalled += 1
            if KICK and stalled >= STALL and evaluations < share:  # go on from the restart's best, shaken
                current, pairs = local, critical_pairs(local) if MOVE == "critical" else []
                for _ in range(KICK):
                    current = neighbour(current, pairs)
                    pairs = critical_pairs(current) if MOVE == "critical" else []
                value, stalled, kicks = makespan(current), 0, kicks + 1
        if local_value < best_value:
            best_value = local_value

    metrics = {"makespan": best_value, "lower_bound": lower_bound, "gap": best_value / lower_bound - 1.0,
               "evaluations": evaluations, "kicks": kicks, "worse_accepted": worse_accepted}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"makespan {best_value} (lower bound {lower_bound}, gap {metrics['gap']:.4f}, {evaluations} schedules, "
          f"{kicks} kicks, {worse_accepted} worse moves accepted)")


if __name__ == "__main__":
    main()
