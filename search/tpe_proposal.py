"""The Optuna TPE control arm (optional dependency): a full configuration proposed by TPE from the trace."""

from __future__ import annotations

import math
from typing import Any

from search.params import ParamKind, ParamSpec, json_value, same_value
from search.proposal import Proposal
from search.trace import Trace


def _distributions(specs: list[ParamSpec], frozen: tuple[str, ...]) -> dict[str, Any]:
    import optuna

    distributions: dict[str, Any] = {}
    for spec in specs:
        if spec.name in frozen:
            continue
        if spec.kind is ParamKind.INT:
            distributions[spec.name] = optuna.distributions.IntDistribution(int(spec.low), int(spec.high), log=spec.log and spec.low > 0)
        elif spec.kind is ParamKind.FLOAT:
            distributions[spec.name] = optuna.distributions.FloatDistribution(spec.low, spec.high, log=spec.log and spec.low > 0)
        elif spec.kind is ParamKind.CHOICE:
            distributions[spec.name] = optuna.distributions.CategoricalDistribution(list(spec.choices or ()))
        elif spec.kind is ParamKind.BOOL:
            distributions[spec.name] = optuna.distributions.CategoricalDistribution([False, True])
        else:  # float tuples become one float distribution per element
            for position in range(spec.length or 0):
                distributions[f"{spec.name}[{position}]"] = optuna.distributions.FloatDistribution(spec.low, spec.high)
    return distributions


def _flatten(config: dict[str, Any], distributions: dict[str, Any]) -> dict[str, Any]:
    flat = {}
    for name in distributions:
        if name.endswith("]"):
            base, position = name[:-1].split("[")
            flat[name] = float(config[base][int(position)])
        else:
            flat[name] = config[name]
    return flat


def tpe_proposal(specs: list[ParamSpec], trace: Trace, current: dict[str, Any], frozen: tuple[str, ...], seed: int) -> Proposal:
    """Rebuild a TPE study from the trace (so resumes and repeats are deterministic) and ask it for a config."""
    try:
        import optuna
    except ImportError as error:
        raise RuntimeError("the tpe arm needs Optuna: pip install -e '.[optuna]'") from error
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = _distributions(specs, frozen)
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed, n_startup_trials=5))
    for experiment in trace.experiments:
        state = optuna.trial.TrialState.COMPLETE if experiment.measured is not None else optuna.trial.TrialState.FAIL
        study.add_trial(optuna.trial.create_trial(params=_flatten(experiment.config, distributions),
                                                  distributions=distributions, state=state,
                                                  value=experiment.measured))
    trial = study.ask(distributions)
    changes: dict[str, Any] = {}
    for spec in specs:
        if spec.name in frozen:
            continue
        if spec.kind is ParamKind.FLOAT_TUPLE:
            value = [trial.params[f"{spec.name}[{i}]"] for i in range(spec.length or 0)]
        else:
            value = trial.params[spec.name]
        if not same_value(value, current.get(spec.name)) and not (isinstance(value, float) and math.isnan(value)):
            changes[spec.name] = json_value(value)
    return Proposal(changes=changes, hypothesis="optuna TPE")
