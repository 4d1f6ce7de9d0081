"""The random-search control arm: proposals drawn at random from the same space, 1-3 changes per iteration."""

from __future__ import annotations

import math
import random
from typing import Any

from search.params import ParamKind, ParamSpec, json_value, same_value
from search.proposal import MAX_CHANGES, Proposal
from search.trace import same_config

MAX_DRAWS = 50  # redraws to avoid an already-tried config (a tiny space may have none left)


def random_value(spec: ParamSpec, rng: random.Random) -> Any:
    """A value drawn uniformly from the parameter's range (log-uniformly for `log` parameters)."""
    if spec.kind is ParamKind.BOOL:
        return rng.random() < 0.5
    if spec.kind is ParamKind.CHOICE:
        return rng.choice(list(spec.choices or ()))
    low, high = float(spec.low), float(spec.high)  # type: ignore[arg-type]
    if spec.kind is ParamKind.FLOAT_TUPLE:
        return [rng.uniform(low, high) for _ in range(spec.length or 0)]
    if spec.log and low > 0:
        value = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        value = rng.uniform(low, high)
    return int(round(value)) if spec.kind is ParamKind.INT else value


def random_proposal(specs: list[ParamSpec], current: dict[str, Any], frozen: tuple[str, ...], seed: int,
                    tried: list[dict[str, Any]] = ()) -> Proposal:
    """1-3 random changes of non-frozen parameters, each different from the current value, leading to a config
    not in `tried` when one can be found in a bounded number of draws (deterministic in seed). The LLM arms get
    already-tried configs refused too, so the control arm does not spend its budget on repeats either."""
    rng = random.Random(seed)
    editable = [spec for spec in specs if spec.name not in frozen]
    changes: dict[str, Any] = {}
    for _ in range(MAX_DRAWS):
        changes = _draw(editable, current, rng)
        if changes and not any(same_config({**current, **changes}, seen) for seen in tried):
            break
    if not changes:
        raise ValueError("no parameter could take a value different from the current one")
    return Proposal(changes=changes, hypothesis="random search")


def _draw(editable: list[ParamSpec], current: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    count = rng.randint(1, min(MAX_CHANGES, len(editable)))
    changes: dict[str, Any] = {}
    for spec in rng.sample(editable, count):
        for _ in range(20):  # a different value is almost always found at once; bounded for tiny choice sets
            value = random_value(spec, rng)
            if not same_value(value, current.get(spec.name)):
                changes[spec.name] = json_value(value)
                break
    return changes
