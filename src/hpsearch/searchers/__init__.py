"""Searchers: one converter per search library, each proposing through the same Recorder.

``make_searcher`` reads ``searcher.type`` and checks that the algorithm can search the study's
space and objectives before anything runs; the libraries themselves (hyperopt, Ray) are
imported only by the searchers that use them.
"""

from __future__ import annotations

import importlib.util

from hpsearch.errors import InputError
from hpsearch.searchers._base import ProposalSampler, Scalarisation, Searcher
from hpsearch.spec import CategoricalParam, Study

__all__ = ["ProposalSampler", "Scalarisation", "Searcher", "make_searcher"]


def make_searcher(study: Study) -> Searcher:
    """The searcher a study file names, checked against its space and objectives.

    Raises:
        InputError: The searcher cannot search this space (CMA-ES and categorical
            parameters or choices; grid search and continuous ranges or a grid larger than the
            budget), its ``weights`` do not match the objectives, or a library it needs is
            missing.
    """
    spec = study.spec
    kind = spec.searcher.type
    weights = spec.searcher.weights
    if weights is not None and len(weights) != len(spec.objectives):
        raise InputError(
            study.source,
            "searcher.weights",
            f"{len(weights)} weight(s) for {len(spec.objectives)} objective(s)",
            "give one weight per entry of `objectives`, in the same order",
        )
    if kind == "optuna-cmaes":
        categorical = [
            name for name, p in study.space.params().items() if isinstance(p, CategoricalParam)
        ]
        if categorical:
            raise InputError(
                study.space.source,
                f"params.{categorical[0]}",
                f"optuna-cmaes searches continuous and integer ranges only, but {categorical} "
                "are categorical parameters or choices",
                "use optuna-tpe, optuna-gp or hyperopt-tpe for this space, or fix those values",
            )
    if kind == "optuna-gp" and importlib.util.find_spec("torch") is None:
        raise InputError(
            study.source,
            "searcher.type",
            "optuna-gp needs PyTorch, which is not installed",
            "install it with `pip install 'hpsearch[gp]'`, or use optuna-tpe",
        )
    if kind == "random":
        from hpsearch.searchers._ray import RandomSearcher

        return RandomSearcher(study)
    if kind == "grid":
        from hpsearch.searchers._ray import GridSearcher

        return GridSearcher(study)
    if kind == "hyperopt-tpe":
        from hpsearch.searchers._hyperopt import HyperoptSearcher

        return HyperoptSearcher(study)
    from hpsearch.searchers._optuna import OptunaSearcher

    return OptunaSearcher(spec)
