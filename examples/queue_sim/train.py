"""Run a help desk's staffing and dispatch policy through a discrete-event simulation (numpy only, no machine learning).

Customers arrive around the clock at a rate that peaks in the early afternoon; a fifth are urgent. Regular customers
are short or long jobs (known on arrival) and give up after an exponential patience; urgent ones never give up and
are never turned away. The policy decides how many agents are on duty (always, and extra during the fixed peak
shift), when on-call agents are called in (they arrive after a fixed travel time and go home after idling), which
waiting customer an agent takes next, how many agents are held back for urgent customers, and when regular arrivals
are turned away. The customers (arrival times, classes, service times, patience) are drawn from SEED alone, so
every policy faces the same ones for the same SEED; the cost rates are fixed. The metric is `cost_per_hour`: agent
pay plus waiting, rejection and abandonment costs per simulated hour, lower is better. It is written to
`metrics.json` in the working directory (with a few counts).

    bilevel run --workload examples/queue_sim/train.py --metric cost_per_hour --fixed SEED,HOURS --levels 1
"""

import heapq
import itertools
import json
import math

import numpy as np

# --- hyperparameters ---
SERVERS = 8                 # int [1, 30]: agents on duty around the clock
PEAK_EXTRA = 0              # int [0, 15]: extra agents on the peak shift (10:00 to 16:00 every day)
ON_CALL = 0                 # int [0, 15]: agents that can be called in when the queue grows
CALL_IN_QUEUE = 20          # int [1, 200] log: waiting customers that call in one on-call agent (one on the way at a time)
RELEASE_IDLE = 30.0         # float [1.0, 240.0] log: minutes an on-call agent stays idle before going home
ADMIT_LIMIT = 200           # int [1, 500] log: regular arrivals are turned away while this many customers wait
DISCIPLINE = "fifo"         # choice [fifo, priority, lead]: urgent customers queue with the rest, always first, or as if they had arrived URGENT_LEAD minutes earlier
URGENT_LEAD = 10.0          # float [1.0, 240.0] log: head start of an urgent customer, in minutes (DISCIPLINE lead only)
RESERVED = 0                # int [0, 5]: a regular customer starts only while more than this many agents are idle
SHORT_FIRST = False         # bool: a regular customer with a short job goes before regular ones with long jobs
HOURS = 2400                # int [24, 10000]: simulated hours (the budget)
SEED = 0                    # int [0, 1000]: the customers' seed (arrivals, classes, service times, patience)
# --- end hyperparameters ---

ARRIVALS_PER_MINUTE = 1.0  # bilevel: fixed (the problem: the mean arrival rate)
DAILY_SWING = 0.6  # bilevel: fixed (the problem: the rate is 1 +- this times the mean, highest at 13:00)
URGENT_SHARE = 0.2  # bilevel: fixed (the problem)
SHORT_SHARE = 0.6  # bilevel: fixed (the problem: the share of regular customers with a short job)
SERVICE_MINUTES = {"urgent": 10.0, "short": 4.0, "long": 14.0}  # bilevel: fixed (the problem: mean service times)
SERVICE_SPREAD = 0.5  # bilevel: fixed (the problem: the lognormal sigma of service times)
PATIENCE_MINUTES = 30.0  # bilevel: fixed (the problem: mean patience of a regular customer)
PEAK_SHIFT = (600.0, 960.0)  # bilevel: fixed (the problem: the peak shift, minutes after midnight)
TRAVEL_MINUTES = 20.0  # bilevel: fixed (the problem: an on-call agent's travel time, paid)
COST = {"agent_hour": 30.0, "on_call_hour": 50.0, "call_out": 15.0,  # bilevel: fixed (the cost rates)
        "urgent_wait_minute": 4.0, "regular_wait_minute": 0.5, "rejected": 40.0, "abandoned": 60.0}  # bilevel: fixed


def customers(hours: int, seed: int) -> dict[str, np.ndarray]:
    """Arrival times (minutes, by thinning a Poisson process at the peak rate), classes, service times, patience."""
    rng = np.random.default_rng(seed)
    horizon = 60.0 * hours  # bilevel: fixed (the problem)
    peak_rate = ARRIVALS_PER_MINUTE * (1.0 + DAILY_SWING)
    times = np.cumsum(rng.exponential(1.0 / peak_rate, size=int(peak_rate * horizon * 1.1) + 100))  # bilevel: fixed
    times = times[times < horizon]
    rate = ARRIVALS_PER_MINUTE * (1.0 + DAILY_SWING * np.cos(2.0 * np.pi * (times - 780.0) / 1440.0))  # bilevel: fixed
    times = times[rng.random(times.size) * peak_rate < rate]
    n = times.size
    urgent = rng.random(n) < URGENT_SHARE
    short = ~urgent & (rng.random(n) < SHORT_SHARE)
    mean = np.where(urgent, SERVICE_MINUTES["urgent"], np.where(short, SERVICE_MINUTES["short"], SERVICE_MINUTES["long"]))
    service = mean * rng.lognormal(-0.5 * SERVICE_SPREAD**2, SERVICE_SPREAD, size=n)  # bilevel: fixed (the problem)
    patience = rng.exponential(PATIENCE_MINUTES, size=n)
    return {"time": times, "urgent": urgent, "short": short, "service": service, "patience": patience}


def main() -> None:
    horizon = 60.0 * HOURS  # bilevel: fixed (the problem)
    c = customers(HOURS, SEED)
    arrival, urgent, short = c["time"].tolist(), c["urgent"].tolist(), c["short"].tolist()
    service, patience = c["service"].tolist(), c["patience"].tolist()
    n = len(arrival)
    lead = {"fifo": 0.0, "priority": math.inf, "lead": URGENT_LEAD}[DISCIPLINE]
    events: list[tuple[float, int, str, int, int]] = []  # (time, tie-breaker, kind, customer or agent, version)

    tie = itertools.count()

    def schedule(time: float, kind: str, who: int, version: int) -> None:
        heapq.heappush(events, (time, next(tie), kind, who, version))

    if PEAK_EXTRA:
        for day in range(math.ceil(HOURS / 24)):  # bilevel: fixed (the problem: a day is 24 hours)
            schedule(1440.0 * day + PEAK_SHIFT[0], "peak_start", 0, 0)  # bilevel: fixed (the problem)
            schedule(1440.0 * day + PEAK_SHIFT[1], "peak_end", 0, 0)  # bilevel: fixed (the problem)

    urgent_queue: list[tuple[float, int]] = []  # (arrival - lead, customer)
    regular_queue: list[tuple[int, float, int]] = []  # (long job behind short ones, arrival, customer)
    in_queue, waiting = [False] * n, 0
    idle = SERVERS  # idle agents of the round-the-clock staff and the peak shift (interchangeable)
    idle_on_call: list[int] = []  # idle on-call agents, the most recently idle last
    on_call_since: dict[int, float] = {}  # on-call agents called and not gone home: since when they are paid
    version: dict[int, int] = {}  # an on-call agent's count of changes: it goes home if idle and unchanged since
    peak_on_duty, peak_since, peak_minutes, peak_leaving = 0, 0.0, 0.0, 0
    calls, on_the_way, rejected, abandoned, served = 0, False, 0, 0, 0
    waited_urgent, waited_regular, on_call_minutes = 0.0, 0.0, 0.0

    def peak_change(now: float, delta: int) -> None:
        nonlocal peak_on_duty, peak_since, peak_minutes
        peak_minutes += peak_on_duty * (now - peak_since)
        peak_on_duty, peak_since = peak_on_duty + delta, now

    def dispatch(now: float) -> None:
        """Idle agents take waiting customers (urgent or regular, by their keys) while the policy lets them."""
        nonlocal idle, waiting, served, waited_urgent, waited_regular
        while idle or idle_on_call:
            while regular_queue and not in_queue[regular_queue[0][2]]:
                heapq.heappop(regular_queue)  # gave up
            free = idle + len(idle_on_call)
            regular_ok = bool(regular_queue) and free > RESERVED
            if not urgent_queue and not regular_ok:
                return
            if urgent_queue and (not regular_ok or urgent_queue[0][0] <= regular_queue[0][1]):
                customer = heapq.heappop(urgent_queue)[1]
                waited_urgent += now - arrival[customer]
            else:
                customer = heapq.heappop(regular_queue)[2]
                waited_regular += now - arrival[customer]
            in_queue[customer] = False
            waiting -= 1
            served += 1
            if idle:  # the staff on duty first, so that on-call agents can go home
                idle -= 1
                schedule(now + service[customer], "done", -1, 0)
            else:
                agent = idle_on_call.pop()
                version[agent] += 1
                schedule(now + service[customer], "done", agent, 0)

    def agent_free(now: float, agent: int) -> None:
        """An agent is free (a customer done, or an on-call agent arrived); a peak agent past its shift goes home."""
        nonlocal idle, peak_leaving
        if agent >= 0:
            idle_on_call.append(agent)
            version[agent] += 1
            schedule(now + RELEASE_IDLE, "release", agent, version[agent])
        elif peak_leaving:
            peak_leaving -= 1
            peak_change(now, -1)
        else:
            idle += 1

    index, now = 0, 0.0
    while True:
        next_arrival = arrival[index] if index < n else math.inf
        now = min(next_arrival, events[0][0] if events else math.inf)
        if now >= horizon:
            now = horizon
            break
        if now == next_arrival:
            customer, index = index, index + 1
            if not urgent[customer] and waiting >= ADMIT_LIMIT:
                rejected += 1
                continue
            in_queue[customer] = True
            waiting += 1
            if urgent[customer]:
                heapq.heappush(urgent_queue, (now - lead, customer))
            else:
                heapq.heappush(regular_queue, (int(SHORT_FIRST and not short[customer]), now, customer))
                schedule(now + patience[customer], "give_up", customer, 0)
            dispatch(now)
            if waiting >= CALL_IN_QUEUE and len(on_call_since) < ON_CALL and not on_the_way:
                agent = calls
                calls += 1
                on_the_way = True
                on_call_since[agent], version[agent] = now, 0
                schedule(now + TRAVEL_MINUTES, "arrives", agent, 0)
            continue
        _, _, kind, who, seen = heapq.heappop(events)
        if kind == "done":
            agent_free(now, who)
            dispatch(now)
        elif kind == "give_up":
            if in_queue[who]:
                in_queue[who] = False
                waiting -= 1
                abandoned += 1
                waited_regular += patience[who]
        elif kind == "arrives":
            on_the_way = False
            agent_free(now, who)
            dispatch(now)
        elif kind == "release" and version[who] == seen:  # idle since the check was set: home
            idle_on_call.remove(who)
            on_call_minutes += now - on_call_since.pop(who)
        elif kind == "peak_start":
            staying = min(peak_leaving, PEAK_EXTRA)  # agents still finishing from the shift before stay on
            peak_leaving -= staying
            peak_change(now, PEAK_EXTRA - staying)
            idle += PEAK_EXTRA - staying
            dispatch(now)
        elif kind == "peak_end":
            going = min(idle, PEAK_EXTRA)
            idle -= going
            peak_leaving += PEAK_EXTRA - going
            peak_change(now, -going)

    peak_change(now, 0)
    on_call_minutes += sum(now - since for since in on_call_since.values())  # still on call at the end
    waited_urgent += sum(now - arrival[k] for _, k in urgent_queue)
    waited_regular += sum(now - arrival[k] for _, _, k in regular_queue if in_queue[k])
    costs = {"agents": COST["agent_hour"] * (SERVERS * HOURS + peak_minutes / 60.0),  # bilevel: fixed (the cost)
             "on_call": COST["on_call_hour"] * on_call_minutes / 60.0 + COST["call_out"] * calls,  # bilevel: fixed
             "waiting": COST["urgent_wait_minute"] * waited_urgent + COST["regular_wait_minute"] * waited_regular,
             "rejected": COST["rejected"] * rejected, "abandoned": COST["abandoned"] * abandoned}
    cost_per_hour = sum(costs.values()) / HOURS
    metrics = {"cost_per_hour": cost_per_hour, "customers": n, "served": served, "rejected": rejected,
               "abandoned": abandoned, "calls": calls, **{f"{k}_per_hour": v / HOURS for k, v in costs.items()}}
    with open("metrics.json", "w", encoding="utf-8") as handle:
        json.dump(metrics, handle)
    print(f"cost_per_hour {cost_per_hour:.3f} ({n} customers, {served} served, {rejected} turned away, "
          f"{abandoned} gave up, {calls} call-outs)")


if __name__ == "__main__":
    main()
