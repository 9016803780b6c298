"""Point-source fraction of the Galactic-Center excess from photon-count maps (seed study 004).

Inputs: ``(H, W, 1)`` maps of photon counts, 1-6 GeV (``hpsearch simulate gce``, or a user's
file of that layout). Target: ``f_src``, the fraction of the excess's photons that come from
point sources. Seed 004 (Caron et al. 2018, arXiv:1708.06706) trains on maps of three diffuse
background models and tests on two others, a domain-shift test; a study does the same with a
split by group (``data.groups: {key: background_model, train: [...], test: [...]}``), so the
validation maps (drawn from the training models) measure the error on *seen* models and the
test maps on *unseen* ones.

Training is the generic regression (:func:`hpsearch.tasks.generic.train_model`, mean squared
error). Counts enter through the Anscombe transform ``2 sqrt(x + 3/8)``, which makes Poisson
noise nearly unit-variance whatever the brightness, before the standardisation.

Reported besides the generic regression metrics: ``mae``, ``rmse`` and ``bias`` of ``f_src`` in
its own units (not standardised), on validation and test maps, and the test MAE of every
background model (``test_mae_<model>``), as the seed tabulates them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.objective import TrialContext
from hpsearch.tasks import generic

if TYPE_CHECKING:
    from hpsearch.objective import DataRef

METRICS = (
    *(m for m in generic.METRICS if "accuracy" not in m),
    "val_f_src_mae",
    "test_f_src_mae",
    "val_f_src_rmse",
    "test_f_src_rmse",
    "val_f_src_bias",
    "test_f_src_bias",
)

#: The per-map dataset naming its diffuse background model.
GROUP_KEY = "background_model"


def preprocess(x: np.ndarray) -> np.ndarray:
    """Anscombe's transform of Poisson counts: ``2 sqrt(x + 3/8)``, variance about 1."""
    out: np.ndarray = 2.0 * np.sqrt(np.maximum(x, 0.0) + 0.375)
    return out


def input_stats(data: DataRef) -> dict[str, Any]:
    """Mean and std of the transformed counts, and of ``f_src``, once per study."""
    return generic.channel_stats(data, preprocess)


def scores(truth: np.ndarray, predicted: np.ndarray, groups: np.ndarray | None) -> dict[str, float]:
    """MAE, RMSE and bias of ``f_src``; with groups, the MAE of each (``mae_<group>``)."""
    error = np.asarray(predicted, dtype=np.float64).reshape(-1) - truth.reshape(-1)
    result = {
        "f_src_mae": float(np.abs(error).mean()),
        "f_src_rmse": float(np.sqrt((error**2).mean())),
        "f_src_bias": float(error.mean()),
    }
    if groups is not None:
        names = np.array([g.decode() if isinstance(g, bytes) else str(g) for g in groups])
        for name in sorted(set(names.tolist())):
            result[f"mae_{name}"] = float(np.abs(error[names == name]).mean())
    return result


def train(ctx: TrialContext) -> None:
    """Train one ``f_src`` regressor on the study's maps."""
    data = ctx.data
    cache: dict[str, tuple[np.ndarray, np.ndarray | None]] = {}

    def score(part: str, predictions: np.ndarray) -> dict[str, float]:
        if part not in cache:
            truth = data.read(data.y_key, part).astype(np.float64)
            try:
                groups: np.ndarray | None = data.read(GROUP_KEY, part)
            except KeyError:  # a user's file without background models
                groups = None
            cache[part] = (truth, groups if part == "test" else None)
        truth, groups = cache[part]
        return scores(truth, predictions, groups)

    generic.train_model(ctx, preprocess=preprocess, score_predictions=score)
