"""A realistic simulated trace, for validating a mechanism without a recorded run (`bilevel mechanisms validate
FILE`), for tests and for benchmarks: a tinygpt-like parameter block, an LLM-like proposer (fixates on favourites,
sometimes repeats itself), a smooth objective with noise, occasional out-of-memory crashes, the default keep rule."""

from __future__ import annotations

import math
import random
from typing import Any

from mechanisms.replay import synthetic_candidates
from search.config import SearchConfig
from search.iteration import default_keep
from search.params import ParamSpec, json_value
from search.space import SearchSpace
from search.trace import Experiment, RunOutcome, Trace, config_with
from workloads.hyperblock import parse_block, parse_params

HYPERBLOCK = """
# --- hyperparameters ---
DEPTH = 4                      # int [1, 8]: transformer blocks
ASPECT_RATIO = 16              # int [4, 64]: model width = DEPTH * ASPECT_RATIO
HEAD_DIM = 32                  # int [8, 128]: attention head size
SEQ_LEN = 128                  # int [32, 512]: context length
DEVICE_BATCH_SIZE = 16         # int [1, 128]: sequences per micro-batch
TOTAL_BATCH_SIZE = 2048        # int [256, 65536] log: tokens per optimizer step
OPTIMIZER = "adamw"            # choice [adamw, muon]: optimizer of the weight matrices
MATRIX_LR = 0.003              # float [1e-5, 0.3] log: learning rate of weight matrices
EMBEDDING_LR = 0.003           # float [1e-5, 0.3] log: learning rate of embeddings
WEIGHT_DECAY = 0.1             # float [0.0, 0.5]: AdamW weight decay
ADAM_BETAS = (0.9, 0.95)       # float_tuple [0.5, 0.9999]: AdamW betas
WARMUP_RATIO = 0.05            # float [0.0, 0.5]: fraction of steps warming up
WARMDOWN_RATIO = 0.3           # float [0.0, 0.9]: fraction of steps cooling down
USE_BIAS = False               # bool: bias terms in linear layers
# --- end hyperparameters ---
"""
FAVOURITES = ("MATRIX_LR", "EMBEDDING_LR", "DEPTH", "TOTAL_BATCH_SIZE", "OPTIMIZER")
SEARCH_CONFIG = SearchConfig(frozen=("SEQ_LEN",), n_candidates=1)


def tinygpt_specs() -> list[ParamSpec]:
    return parse_params(HYPERBLOCK)


def tinygpt_space() -> SearchSpace:
    block = parse_block(HYPERBLOCK)
    return SearchSpace(params=block.params, constraints=block.constraints)


def _objective(config: dict[str, Any]) -> float | None:
    """val_bpb of a config without noise, or None for an out-of-memory crash."""
    if config["DEVICE_BATCH_SIZE"] * config["SEQ_LEN"] > 8192 or config["HEAD_DIM"] > config["DEPTH"] * config["ASPECT_RATIO"]:
        return None
    value = 2.86
    value -= 0.25 if config["OPTIMIZER"] == "muon" else 0.0
    value += 0.12 * abs(math.log10(config["MATRIX_LR"] / 0.02)) - 0.12 * abs(math.log10(0.003 / 0.02))
    value += 0.08 * abs(math.log10(config["EMBEDDING_LR"] / 0.01)) - 0.08 * abs(math.log10(0.003 / 0.01))
    value += 0.05 * (abs(config["DEPTH"] - 2) - 2)
    value += 0.04 * (abs(math.log2(config["TOTAL_BATCH_SIZE"] / 1024)) - 1)
    return value


def simulated_trace(experiments: int = 60, seed: int = 0) -> Trace:
    """A trace of `experiments` runs (baseline included) as an unassisted inner loop would produce it."""
    rng = random.Random(seed)
    specs = tinygpt_specs()
    baseline_config = {spec.name: json_value(spec.value) for spec in specs}
    baseline = _run(0, {}, "baseline", baseline_config, rng, None)
    trace = Trace(experiments=[baseline])
    for _ in range(1, experiments):
        state = trace.state()
        current = state.current.config
        earlier = [e for e in trace.experiments[1:] if e.changes]
        if earlier and rng.random() < 0.15:
            repeated = rng.choice(earlier)  # LLMs repeat themselves
            changes, hypothesis = dict(repeated.changes), repeated.hypothesis
        else:
            favourites = [s for s in specs if s.name in FAVOURITES] if rng.random() < 0.7 else specs
            moves = synthetic_candidates(favourites, current, SEARCH_CONFIG.frozen, rng, rng.choice((1, 1, 2)))
            changes = {name: value for move in moves for name, value in move["changes"].items()}
            hypothesis = "tune " + ", ".join(changes)
        if not changes:
            continue
        config = config_with(current, changes)
        trace = trace.appended(_run(len(trace), changes, hypothesis, config, rng, state))
    return trace


def _run(index: int, changes: dict[str, Any], hypothesis: str, config: dict[str, Any], rng: random.Random, state: Any) -> Experiment:
    clean = _objective(config)
    if clean is None:
        outcome = RunOutcome(status="crash", seed=0, error_tail="RuntimeError: DefaultCPUAllocator: can't allocate memory")
    else:
        outcome = RunOutcome(status="ok", value=round(clean + rng.gauss(0, 0.02), 4), seed=0, steps=390, wall_seconds=33.0)
    measured = outcome.value if outcome.ok else None
    kept = state is not None and default_keep(state, measured)
    return Experiment(
        index=index,
        generation=max(0, index - 1) // 10,
        iteration=max(0, index - 1) % 10,
        changes=changes,
        hypothesis=hypothesis,
        config=config,
        outcome=outcome,
        default_kept=kept,
        kept=kept,
    )
