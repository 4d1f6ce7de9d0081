"""The random-search control arm: candidates drawn at random from the same space (1 to max_changes changes), valid
under the same rules as every other proposal (ranges, constraints, no repeats)."""

from __future__ import annotations

import math
import random
from typing import Any

from search.iteration import Candidate, ProposalBatch, ProposalRequest
from search.params import ParamKind, ParamSpec, json_value, same_value
from search.space import CandidateError

MAX_DRAWS = 200  # redraws to find a valid, untried configuration (a tiny or tightly constrained space may have none)


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


def random_proposal(request: ProposalRequest, seed: int) -> ProposalBatch:
    """One random candidate from the current point, deterministic in `seed`; refusals are counted, not fatal."""
    rng = random.Random(seed)
    editable = request.space.editable(request.point.config.frozen)
    batch = ProposalBatch()
    if not editable:
        batch.errors.append("every parameter is frozen")
        return batch
    cap = min(request.point.config.max_changes, len(editable))
    current = request.state.current.config
    last_error = ""
    for _ in range(MAX_DRAWS):
        changes = _draw(editable, current, rng, cap)
        try:
            effective = request.check(changes)
        except CandidateError as error:
            last_error = str(error)
            continue
        batch.candidates.append(Candidate(changes=effective, hypothesis="random search", proposed_by="random"))
        return batch
    batch.errors.append(f"no valid untried configuration in {MAX_DRAWS} random draws (last: {last_error[:200]})")
    return batch


def _draw(editable: list[ParamSpec], current: dict[str, Any], rng: random.Random, cap: int) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    for spec in rng.sample(editable, rng.randint(1, cap)):
        for _ in range(20):  # a different value is almost always found at once; bounded for tiny choice sets
            value = random_value(spec, rng)
            if not same_value(value, current.get(spec.name)):
                changes[spec.name] = json_value(value)
                break
    return changes


def random_proposer(request: ProposalRequest) -> ProposalBatch:
    """The random arm as a Proposer: its draws are seeded by the decision point (the same on resume)."""
    return random_proposal(request, request.point.hook_seed + request.screen_round)
