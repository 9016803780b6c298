"""The Optuna converter: hpsearch's search space in, Optuna's define-by-run calls out.

All of Optuna's conventions live here and nowhere else: ``suggest_int`` includes ``high``,
``log`` and ``step`` exclude each other, categorical choices must be plain scalars. Other search
libraries get a converter of their own, decoding to the same nested dict.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna

from hpsearch.spec import CategoricalParam, FloatParam, IntParam, SearcherSpec, SearchSpace


def suggest(space: SearchSpace, trial: optuna.Trial) -> dict[str, Any]:
    """Draw every parameter of ``space`` on ``trial`` and return the nested dict."""
    flat: dict[str, Any] = {}
    for name, param in space.params().items():
        if isinstance(param, FloatParam):
            flat[name] = trial.suggest_float(
                name, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            flat[name] = trial.suggest_int(
                name, param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, CategoricalParam):
            flat[name] = trial.suggest_categorical(name, param.choices)
    return space.decode(flat)


def distributions(space: SearchSpace) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna distributions of ``space``, for trials written after the fact (``add_trial``)."""
    out: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, param in space.params().items():
        if isinstance(param, FloatParam):
            out[name] = optuna.distributions.FloatDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        elif isinstance(param, IntParam):
            out[name] = optuna.distributions.IntDistribution(
                param.low, param.high, log=param.log, step=param.step
            )
        else:
            out[name] = optuna.distributions.CategoricalDistribution(param.choices)
    return out


def make_sampler(spec: SearcherSpec, seed: int) -> optuna.samplers.BaseSampler:
    """Build the sampler a study file names.

    TPE runs with ``constant_liar`` because Ray keeps several trials running at once: without
    it, every concurrent ask sees the same history and proposes nearly the same point.
    """
    if spec.type == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(
            seed=seed, n_startup_trials=spec.n_startup_trials, constant_liar=True
        )
