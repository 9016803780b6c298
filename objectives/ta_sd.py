"""Air-shower reconstruction from Telescope Array surface-detector grids (seed study 002).

Inputs: ``(N, N, T, 2)`` grids of two-layer counter waveforms in VEM per 20 ns bin, centred on
the standard reconstruction's core (``hpsearch simulate ta_sd``, or a user's file of that
layout). Targets: the columns of :data:`hpsearch.simulate.ta_sd_fit.TARGET_NAMES` (direction
cosines ``u_x, u_y``, ``log10 E/eV``, the core in km), either

* ``targets/fit_error`` (the study's ``data.y_key``; the seed's choice): truth minus the
  standard LDF + timing fit, so the network learns to correct the fit, or
* ``targets/truth``: the shower itself, with no help from the fit.

Training is the generic regression (:func:`hpsearch.tasks.generic.train_model`): mean squared
error on standardised targets, the trial's model family, optimizer (the seed trained with
adadelta), L2, dropout and Gaussian-noise input layer. Signals are heavy-tailed (a counter near
the core sees thousands of VEM, one at 2 km a few), so inputs enter as ``log(1 + VEM)`` before
the per-layer standardisation.

Besides the explained variance of every target (the seed's score), each epoch reports what a
physicist reads first, for the network and, once, for the standard fit on the same events:

* ``angular_resolution_deg``: 68% quantile of the space angle between reconstructed and true
  arrival direction (TA's definition);
* ``energy_resolution``: standard deviation of ``E_rec / E_true - 1``.
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
    "val_angular_resolution_deg",
    "test_angular_resolution_deg",
    "val_energy_resolution",
    "test_energy_resolution",
    "fit_angular_resolution_deg",
    "fit_energy_resolution",
)

#: Targets that are the fit's errors rather than the truth.
FIT_ERROR_KEY = "targets/fit_error"


def preprocess(x: np.ndarray) -> np.ndarray:
    """``log(1 + VEM)``: compresses the counters' signals, which span four decades."""
    out: np.ndarray = np.log1p(np.maximum(x, 0.0))
    return out


def input_stats(data: DataRef) -> dict[str, Any]:
    """Per-layer mean and std of ``log(1 + VEM)``, and the targets', once per study."""
    return generic.channel_stats(data, preprocess)


class _Scorer:
    """Resolutions of the network's reconstruction, from a part's predictions.

    The truth, and the fit's values when the targets are its errors, are read once per part
    (in file order, the order of the predictions).
    """

    def __init__(self, data: DataRef) -> None:
        self.data = data
        self.errors = data.y_key == FIT_ERROR_KEY
        self._truth: dict[str, np.ndarray] = {}
        self._fit: dict[str, np.ndarray] = {}

    def truth(self, part: str) -> np.ndarray:
        if part not in self._truth:
            self._truth[part] = self.data.read("targets/truth", part).astype(np.float64)
        return self._truth[part]

    def fit(self, part: str) -> np.ndarray:
        if part not in self._fit:
            errors = self.data.read(FIT_ERROR_KEY, part).astype(np.float64)
            self._fit[part] = self.truth(part) - errors
        return self._fit[part]

    def __call__(self, part: str, predictions: np.ndarray) -> dict[str, float]:
        from hpsearch.simulate.ta_sd_fit import angular_resolution_deg, energy_resolution

        truth = self.truth(part)
        rec = np.asarray(predictions, dtype=np.float64).reshape(len(truth), -1)
        if self.errors:
            rec = self.fit(part) + rec
        return {
            "angular_resolution_deg": angular_resolution_deg(rec[:, :2], truth[:, :2]),
            "energy_resolution": energy_resolution(rec[:, 2], truth[:, 2]),
        }


def fit_resolutions(
    data: DataRef, part: str = "test", scorer: _Scorer | None = None
) -> dict[str, float]:
    """The standard fit's resolutions on the study's ``part`` events: the baseline to beat."""
    from hpsearch.simulate.ta_sd_fit import angular_resolution_deg, energy_resolution

    scorer = scorer or _Scorer(data)
    truth, fit = scorer.truth(part), scorer.fit(part)
    return {
        "angular_resolution_deg": angular_resolution_deg(fit[:, :2], truth[:, :2]),
        "energy_resolution": energy_resolution(fit[:, 2], truth[:, 2]),
    }


def train(ctx: TrialContext) -> None:
    """Train one reconstruction network; the last report also holds the fit's resolutions."""
    scorer = _Scorer(ctx.data)
    fit = {f"fit_{k}": v for k, v in fit_resolutions(ctx.data, scorer=scorer).items()}
    report = ctx.report

    def with_fit(metrics: dict[str, Any]) -> None:
        report({**metrics, **fit} if metrics.get("complete") else metrics)

    ctx.report = with_fit
    try:
        generic.train_model(ctx, preprocess=preprocess, score_predictions=scorer)
    finally:
        ctx.report = report
