"""Trusted helpers for mechanisms, importable inside the sandbox as `helpers` (`import helpers as h`).

Pure functions over the hook context (`ctx`) that a mechanism would otherwise write by hand and get wrong:
hashable config keys, tried-before, per-parameter statistics, untried parameters, a valid neighbouring or
random value, the best configs, better-under-the-goal, and the shape of a proposed candidate. Standard
library only and no I/O: the sandbox worker loads this file by path, and mechanisms see exactly `__all__`.
Every function takes plain dicts and lists (the ctx, an experiment view) and returns plain data.
"""

import json
import math
import random

__all__ = [
    "config_key",
    "tried",
    "editable",
    "untried",
    "param_stats",
    "param",
    "neighbour",
    "random_value",
    "best_configs",
    "is_better",
    "value_of",
    "candidate",
]

MAX_STEPS = 64  # bound of every internal loop: no helper can be made to run long


def _canonical(value):
    if isinstance(value, bool) or isinstance(value, str) or value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _canonical(v) for k, v in value.items()}
    return str(value)


def config_key(config):
    """A hashable, canonical key of a configuration dict: 3 and 3.0, tuples and lists compare equal."""
    return json.dumps(_canonical(config), sort_keys=True)


def tried(ctx, config):
    """Whether `config` (a full configuration dict) was already run in the trace the hook sees."""
    key = config_key(config)
    return any(config_key(view.get("config", {})) == key for view in ctx.get("trace", []))


def editable(ctx):
    """Names of the parameters a candidate may change now (not frozen), in the workload's order."""
    frozen = set(ctx.get("frozen", []))
    return [p["name"] for p in ctx.get("params", []) if p["name"] not in frozen]


def untried(ctx):
    """Editable parameters that no experiment in the trace has changed yet, in the workload's order."""
    changed = set()
    for view in ctx.get("trace", []):
        changed.update(view.get("changes", {}))
    return [name for name in editable(ctx) if name not in changed]


def param(ctx, name):
    """The schema of one parameter: {"name", "kind", "value", "low", "high", "choices", "log", ...} or None."""
    for spec in ctx.get("params", []):
        if spec.get("name") == name:
            return spec
    return None


def _comparable(value):
    """A value to compare: a number as it is, an experiment view or point by its value; anything else None."""
    if isinstance(value, dict):
        value = value.get("value")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        return None
    return value


def is_better(ctx, a, b):
    """Whether value `a` is strictly better than value `b` under the objective's goal. An experiment view or point
    stands for its value; None, NaN and anything that is not a number are never better (and anything is better
    than them)."""
    a, b = _comparable(a), _comparable(b)
    if a is None:
        return False
    if b is None:
        return True
    if ctx.get("objective", {}).get("goal", "minimize") == "maximize":
        return a > b
    return a < b


def value_of(view):
    """The measured value of an experiment view or a point (None when it measured nothing)."""
    return view.get("value") if isinstance(view, dict) else None


def param_stats(ctx):
    """Per editable parameter: {"tries", "kept", "crashes", "best_gain", "last_value"} over the trace.
    A gain is how much a kept change improved on the point it was made from (positive is better)."""
    stats = {name: {"tries": 0, "kept": 0, "crashes": 0, "best_gain": 0.0, "last_value": None} for name in editable(ctx)}
    maximize = ctx.get("objective", {}).get("goal", "minimize") == "maximize"
    reference = None
    for view in ctx.get("trace", []):
        measured = view.get("value")
        if view.get("index") == 0:
            reference = measured
            continue
        gain = 0.0
        if reference is not None and measured is not None:
            gain = (measured - reference) if maximize else (reference - measured)
        for name, new in view.get("changes", {}).items():
            entry = stats.get(name)
            if entry is None:
                continue
            entry["tries"] += 1
            entry["last_value"] = new
            if view.get("status") in ("crash", "timeout"):
                entry["crashes"] += 1
            if view.get("kept"):
                entry["kept"] += 1
                entry["best_gain"] = max(entry["best_gain"], gain)
        if view.get("kept") and measured is not None:
            reference = measured
    return stats


def best_configs(ctx, k=3):
    """The k best measured experiments of the trace (views), best first."""
    measured = [view for view in ctx.get("trace", []) if view.get("value") is not None]
    maximize = ctx.get("objective", {}).get("goal", "minimize") == "maximize"
    measured.sort(key=lambda view: (-view["value"] if maximize else view["value"], view.get("index", 0)))
    return measured[: max(0, int(k))]


def _clamp(spec, number):
    low, high = spec.get("low"), spec.get("high")
    if low is not None:
        number = max(number, low)
    if high is not None:
        number = min(number, high)
    return number


def _scalar_step(spec, number, rng, scale):
    up = rng.random() < 0.5
    low, high = spec.get("low"), spec.get("high")
    if spec.get("log") and number > 0 and low is not None and low > 0:
        factor = 2.0 ** (scale * (1 if up else -1))
        moved = number * factor
    else:
        span = (high - low) / 10.0 if low is not None and high is not None and high > low else abs(number) / 2 or 1.0
        moved = number + span * scale * (1 if up else -1)
    return _clamp(spec, moved)


def _as_kind(spec, number):
    if spec.get("kind") == "int":
        return int(round(number))
    return float(number)


def _random_source(ctx, rng):
    """`rng` when it is a random generator; for a number (the local model's commonest slip: `random.random()` passed
    as the rng) or None, a generator seeded with it and the hook's seed, so the value stays deterministic."""
    if hasattr(rng, "random") and hasattr(rng, "choice"):
        return rng
    seed = rng if isinstance(rng, (int, float)) and not isinstance(rng, bool) else None
    return random.Random(f"{ctx.get('seed', 0)}:{seed}")


def neighbour(ctx, name, rng, value=None, scale=1.0):
    """A valid value of parameter `name` near `value` (default: its current value): doubled or halved on a log
    scale, a tenth of the range otherwise (times `scale`); another choice; the other bool. None if there is none.
    `rng` is a random.Random (a number is taken as its seed)."""
    rng = _random_source(ctx, rng)
    spec = param(ctx, name)
    if spec is None:
        return None
    if value is None:
        value = ctx.get("current", {}).get("config", {}).get(name, spec.get("value"))
    kind = spec.get("kind")
    if kind == "bool":
        return not value
    if kind == "choice":
        others = [c for c in spec.get("choices") or [] if c != value]
        return rng.choice(others) if others else None
    if kind == "float_tuple":
        items = list(value)
        if not items:
            return None
        position = rng.randrange(len(items))
        items[position] = float(_scalar_step(spec, float(items[position]), rng, scale))
        return items
    number = float(value)
    for _ in range(MAX_STEPS):
        moved = _as_kind(spec, _scalar_step(spec, number, rng, scale))
        if moved != value:
            return moved
        if kind == "int":
            moved = _as_kind(spec, _clamp(spec, number + rng.choice((-1, 1))))
            if moved != value:
                return moved
    return None


def random_value(ctx, name, rng):
    """A value of parameter `name` drawn uniformly from its range (log-uniformly on a log scale); None if unknown.
    `rng` is a random.Random (a number is taken as its seed)."""
    rng = _random_source(ctx, rng)
    spec = param(ctx, name)
    if spec is None:
        return None
    kind = spec.get("kind")
    if kind == "bool":
        return rng.random() < 0.5
    if kind == "choice":
        choices = spec.get("choices") or []
        return rng.choice(choices) if choices else None
    low, high = spec.get("low"), spec.get("high")
    if low is None or high is None:
        return neighbour(ctx, name, rng, scale=2.0)
    if kind == "float_tuple":
        return [rng.uniform(low, high) for _ in range(int(spec.get("length") or 0))]
    if spec.get("log") and low > 0:
        number = math.exp(rng.uniform(math.log(low), math.log(high)))
    else:
        number = rng.uniform(low, high)
    return _as_kind(spec, _clamp(spec, number))


def candidate(name, value, reason=""):
    """One proposed candidate that changes `name` to `value`: {"changes": {name: value}, "reason": reason}.
    For several parameters at once pass a dict as `name`: candidate({"A": 1, "B": 2}, None, "why")."""
    if isinstance(name, dict):
        return {"changes": dict(name), "reason": str(reason if value is None else value)[:300]}
    return {"changes": {name: value}, "reason": str(reason)[:300]}
