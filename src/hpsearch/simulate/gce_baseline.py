"""A non-learned estimate of the point-source fraction ``f_src`` of gce maps: count statistics.

Why this baseline: the first thing a physicist tries on the "diffuse or point sources?"
question is a photon-count statistic. A smooth excess gives Poisson counts around a smooth
mean; unresolved point sources (PS) make the counts *over-dispersed* (extra variance, a heavy
upper tail of bright pixels), more so the larger the PS share of the excess. This is the idea
behind the one-point statistics of the non-Poissonian template fit (Lee et al., PRL 116 (2016)
051103) and the wavelet peak counts of Bartels, Krishnamurthy & Weniger (PRL 116 (2016)
051102), reduced to a few numbers per map and a linear calibration fitted on simulated maps
with known ``f_src`` (exactly how the CNN is trained, so both see the same information).

Method, per map (``n x n`` counts covering ``roi_deg`` around the Galactic Center):

1. Smooth estimate ``m``: the map convolved with a Gaussian of ``smooth_deg`` (default 1 deg,
   a few PSF widths: wide enough not to follow a source, narrow enough to follow the
   background), by normalised convolution that leaves out the disk ``|b| < disk_deg`` (default
   2 deg, ~10x brighter than its surroundings, it would leak into the estimate) and the pixel
   itself (so a pixel's own excess is not absorbed into its mean).
2. Region: pixels within ``radius_deg`` (default 16 deg) of the center and with
   ``|b| >= min_latitude_deg`` (default 2.5 deg, clear of the disk's PSF-smeared edge), where
   the excess is brightest relative to the background.
3. Statistics of the residual ``r = counts - m`` over the region:

   * pixel excess variance ``V1 = sum(r**2 - m) / sum(m)`` (0 for Poisson counts, grows with
     ``sum_k S_k**2`` of the sources);
   * PSF-matched excess variance ``V2``: the same after convolving ``r`` with the PSF (a
     Gaussian of ``psf_deg``), normalised by the matched-filtered Poisson variance;
   * skewness of the matched-filtered significance ``z = (K * r) / sqrt(K**2 * m)``;
   * the mean of the top 1% of ``z`` (the brightest unresolved spots);
   * ``sqrt(max(V1, 0))`` and ``log1p(max(top1, 0))``, so that the linear fit can bend.

4. Calibration: an ordinary least-squares fit (small ridge, on standardised statistics) of
   ``f_src`` on the statistics over the training maps; predictions are clipped to [0, 1].

Why it is a fair opponent: it uses the same maps and labels as the network, knows the PSF and
the geometry (as any analysis would), and its knobs were tuned on the default simulation
(fitted on 4000 maps of the seed's three training background models, scored on 2000 maps of
all five; one knob at a time, then a few combinations: ``smooth_deg`` 0.7-2 deg,
``min_latitude_deg`` 2-4 deg, ``radius_deg`` 8-20 deg, ``disk_deg`` 1.5-3 deg); the defaults
are the best found, within ~0.005 in MAE of the other good settings. It is blind to what no
count statistic can see: a population of many faint sources is nearly Poisson, and the
statistics mix the PS fraction with the slope ``alpha`` and the excess's brightness, which is
where a network has to be cleverer, if it can. It is not a template fit: it needs no model of
the background, so it degrades gracefully on background models it was not calibrated on.

Measured on the default simulation (generator 1.0.0; fitted on 8192 maps of the seed's
training models, seed 101; scored on 4096 maps of all five models, seed 202; see the gce
module): MAE ~0.105 on held-out maps of the training models and ~0.11 on the two unseen
models, against ~0.25 for predicting the training mean.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpsearch.errors import InputError

__all__ = ["FEATURE_NAMES", "CountStatisticBaseline", "score"]

FEATURE_NAMES = ("v_pixel", "v_psf", "z_skew", "z_top1", "sqrt_v_pixel", "log1p_z_top1")
"""The statistics :meth:`CountStatisticBaseline.features` returns, in column order."""

_SOURCE = "CountStatisticBaseline"
_BATCH = 256


@dataclass
class CountStatisticBaseline:
    """Count statistics of the excess region, linearly calibrated to ``f_src`` (module doc).

    Attributes:
        roi_deg: Full side of the maps' square ROI in degrees (the simulator's ``roi_deg``).
        psf_deg: Gaussian PSF sigma in degrees, for the matched filter.
        smooth_deg: Gaussian sigma of the smooth-mean estimate, in degrees.
        disk_deg: Latitude below which pixels are left out of the smooth estimate.
        min_latitude_deg: Lowest ``|b|`` of the statistics' region, in degrees.
        radius_deg: Largest angle from the center of the statistics' region, in degrees.
        ridge: Ridge penalty on the standardised statistics (keeps the fit stable).
        coef_: Fitted intercept and weights (set by :meth:`fit`).
        mean_: Means of the statistics over the training maps (set by :meth:`fit`).
        scale_: Standard deviations of the statistics over the training maps.
    """

    roi_deg: float = 40.0
    psf_deg: float = 0.4
    smooth_deg: float = 1.0
    disk_deg: float = 2.0
    min_latitude_deg: float = 2.5
    radius_deg: float = 16.0
    ridge: float = 1e-3
    coef_: NDArray[np.float64] | None = field(default=None, repr=False)
    mean_: NDArray[np.float64] | None = field(default=None, repr=False)
    scale_: NDArray[np.float64] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        """Refuse knobs that cannot work, with an :class:`~hpsearch.errors.InputError`."""
        for name in ("roi_deg", "psf_deg", "smooth_deg", "radius_deg"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise InputError(_SOURCE, name, f"must be > 0, got {value!r}", "use the default")
        for name in ("disk_deg", "min_latitude_deg", "ridge"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise InputError(_SOURCE, name, f"must be >= 0, got {value!r}", "use the default")
        if self.min_latitude_deg >= self.roi_deg / 2:
            raise InputError(
                _SOURCE,
                "min_latitude_deg",
                f"{self.min_latitude_deg} leaves no pixel of a {self.roi_deg} deg ROI",
                "lower it below roi_deg / 2",
            )

    # ------------------------------------------------------------------------------ features

    def features(self, x: Any) -> NDArray[np.float64]:
        """The statistics of every map (columns: :data:`FEATURE_NAMES`).

        Args:
            x: Counts ``(n_maps, n, n)`` or ``(n_maps, n, n, 1)``; anything sliceable by rows
                (a numpy array or an h5py dataset, read 256 maps at a time).

        Returns:
            float64 ``(n_maps, len(FEATURE_NAMES))``.

        Raises:
            InputError: On maps that are not square 2-D count maps.
        """
        shape = tuple(getattr(x, "shape", np.shape(x)))
        if len(shape) == 4 and shape[-1] == 1:
            shape = shape[:3]
        if len(shape) != 3 or shape[1] != shape[2] or shape[1] < 8:
            raise InputError(
                _SOURCE,
                "x",
                f"expected (n_maps, n, n[, 1]) square maps, got shape {shape}",
                "pass the file's /x dataset",
            )
        geometry = _Geometry(self, shape[1])
        out = np.empty((shape[0], len(FEATURE_NAMES)))
        for start in range(0, shape[0], _BATCH):
            stop = min(start + _BATCH, shape[0])
            batch = np.asarray(x[start:stop], dtype=np.float64).reshape(stop - start, *shape[1:])
            out[start:stop] = geometry.statistics(batch)
        return out

    # ------------------------------------------------------------------------ fit, predict

    def fit(self, x: Any, y: ArrayLike) -> CountStatisticBaseline:
        """Calibrate on training maps with known ``f_src``.

        Args:
            x: Training maps (see :meth:`features`).
            y: Their ``f_src``, ``(n_maps,)``.

        Returns:
            ``self``, fitted.

        Raises:
            InputError: On mismatched lengths or fewer than 10 maps.
        """
        return self.fit_features(self.features(x), y)

    def fit_features(self, features: ArrayLike, y: ArrayLike) -> CountStatisticBaseline:
        """:meth:`fit` on precomputed :meth:`features` (to reuse them across studies)."""
        f = np.asarray(features, dtype=np.float64)
        target = np.asarray(y, dtype=np.float64).reshape(-1)
        if f.ndim != 2 or f.shape[0] != target.shape[0]:
            raise InputError(
                _SOURCE,
                "y",
                f"{target.shape[0]} targets for {f.shape[0]} maps",
                "pass one f_src per map",
            )
        if f.shape[0] < 10:
            raise InputError(
                _SOURCE, "x", f"needs >= 10 training maps, got {f.shape[0]}", "simulate more"
            )
        mean = f.mean(axis=0)
        scale = f.std(axis=0)
        scale[scale == 0] = 1.0
        design = np.c_[np.ones(len(f)), (f - mean) / scale]
        penalty = self.ridge * len(f) * np.eye(design.shape[1])
        penalty[0, 0] = 0.0  # the intercept is not shrunk
        self.coef_ = np.linalg.solve(design.T @ design + penalty, design.T @ target)
        self.mean_, self.scale_ = mean, scale
        return self

    def predict(self, x: Any) -> NDArray[np.float64]:
        """Estimated ``f_src`` of each map, in [0, 1].

        Raises:
            InputError: When called before :meth:`fit`.
        """
        return self.predict_features(self.features(x))

    def predict_features(self, features: ArrayLike) -> NDArray[np.float64]:
        """:meth:`predict` on precomputed :meth:`features`."""
        if self.coef_ is None or self.mean_ is None or self.scale_ is None:
            raise InputError(_SOURCE, "fit", "the baseline is not fitted", "call fit() first")
        f = np.asarray(features, dtype=np.float64)
        design = np.c_[np.ones(len(f)), (f - self.mean_) / self.scale_]
        return np.asarray(np.clip(design @ self.coef_, 0.0, 1.0))


class _Geometry:
    """Kernels and regions of one map size (FFTs on a 2x zero-padded grid: no wrap-around)."""

    def __init__(self, cfg: CountStatisticBaseline, n: int) -> None:
        pixel = cfg.roi_deg / n
        centres = (n / 2.0 - (np.arange(n) + 0.5)) * pixel
        lat, lon = np.meshgrid(np.radians(centres), np.radians(centres), indexing="ij")
        psi = np.degrees(np.arccos(np.clip(np.cos(lat) * np.cos(lon), -1.0, 1.0)))
        abs_b = np.degrees(np.abs(lat))
        self.region = (psi <= cfg.radius_deg) & (abs_b >= cfg.min_latitude_deg)
        if not self.region.any():
            raise InputError(
                _SOURCE,
                "radius_deg",
                "the statistics' region holds no pixel",
                "raise radius_deg or lower min_latitude_deg",
            )
        self.n = n
        size = 2 * n
        freq_sq = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2

        def gaussian(sigma_deg: float) -> NDArray[np.float64]:
            """Transfer function of a unit-sum Gaussian of ``sigma_deg`` on the padded grid."""
            sigma = sigma_deg / pixel
            return np.asarray(np.exp(-2.0 * math.pi**2 * sigma**2 * freq_sq))

        self.weight = (abs_b >= cfg.disk_deg).astype(np.float64)
        self.smooth = gaussian(cfg.smooth_deg)
        # The smoothing kernel's value at its centre: the weight of a pixel's own counts.
        self.self_weight = float(np.fft.irfft2(self.smooth, s=(size, size))[0, 0])
        self.psf = gaussian(cfg.psf_deg)
        # Transfer function of the squared PSF kernel: the variance of a filtered Poisson map.
        kernel = np.fft.irfft2(self.psf, s=(size, size))
        self.psf_squared = np.fft.rfft2(kernel**2)

    def _convolve(self, maps: NDArray[np.float64], transfer: NDArray[Any]) -> Any:
        size = 2 * self.n
        spectrum = np.fft.rfft2(maps, s=(size, size))
        return np.fft.irfft2(spectrum * transfer, s=(size, size))[..., : self.n, : self.n]

    def statistics(self, maps: NDArray[np.float64]) -> NDArray[np.float64]:
        """The :data:`FEATURE_NAMES` of a batch of ``(k, n, n)`` maps."""
        w = self.weight
        numerator = self._convolve(maps * w, self.smooth) - self.self_weight * maps * w
        denominator = self._convolve(w, self.smooth) - self.self_weight * w
        mean = np.clip(numerator / np.maximum(denominator, 1e-9), 1e-3, None)
        residual = maps - mean
        region = self.region
        r_pix = residual[:, region]
        m_pix = mean[:, region]
        v_pixel = (r_pix**2 - m_pix).sum(axis=1) / m_pix.sum(axis=1)
        filtered = self._convolve(residual, self.psf)[:, region]
        variance = np.clip(self._convolve(mean, self.psf_squared)[:, region], 1e-9, None)
        v_psf = (filtered**2 - variance).sum(axis=1) / variance.sum(axis=1)
        z = filtered / np.sqrt(variance)
        z_centered = z - z.mean(axis=1, keepdims=True)
        skew = (z_centered**3).mean(axis=1) / np.maximum(z_centered.std(axis=1) ** 3, 1e-12)
        top = max(1, round(0.01 * z.shape[1]))
        z_top = np.sort(z, axis=1)[:, -top:].mean(axis=1)
        return np.stack(
            [
                v_pixel,
                v_psf,
                skew,
                z_top,
                np.sqrt(np.clip(v_pixel, 0.0, None)),
                np.log1p(np.clip(z_top, 0.0, None)),
            ],
            axis=1,
        )


def score(
    y_true: ArrayLike, y_pred: ArrayLike, groups: Sequence[Any] | ArrayLike | None = None
) -> dict[str, Any]:
    """MAE, RMSE and bias of ``f_src`` estimates, overall and per group (background model).

    Args:
        y_true: True ``f_src``, ``(n,)``.
        y_pred: Estimates, ``(n,)``.
        groups: Optional label per map (e.g. the file's ``/background_model``; bytes are
            decoded as ASCII).

    Returns:
        ``{"n", "mae", "rmse", "bias"}`` (bias = mean of ``y_pred - y_true``), plus
        ``"groups": {label: {"n", "mae", "rmse", "bias"}}`` when ``groups`` is given.

    Raises:
        InputError: On arrays of different lengths or no maps.
    """
    truth = np.asarray(y_true, dtype=np.float64).reshape(-1)
    pred = np.asarray(y_pred, dtype=np.float64).reshape(-1)
    if truth.shape != pred.shape or truth.size == 0:
        raise InputError(
            "score",
            "y_pred",
            f"{pred.size} estimates for {truth.size} true values",
            "pass one estimate per map",
        )

    def summary(mask: NDArray[np.bool_]) -> dict[str, Any]:
        error = pred[mask] - truth[mask]
        return {
            "n": int(mask.sum()),
            "mae": float(np.abs(error).mean()),
            "rmse": float(np.sqrt((error**2).mean())),
            "bias": float(error.mean()),
        }

    result = summary(np.ones(truth.size, dtype=bool))
    if groups is not None:
        labels = np.asarray(
            [g.decode("ascii") if isinstance(g, bytes) else str(g) for g in np.asarray(groups)]
        )
        if labels.shape != truth.shape:
            raise InputError(
                "score",
                "groups",
                f"{labels.size} groups for {truth.size} maps",
                "pass one group per map",
            )
        result["groups"] = {str(g): summary(labels == g) for g in sorted(set(labels.tolist()))}
    return result
