"""Bayes-optimal accuracy of the xgamma task, estimated from the simulator's own generative model.

Why: a searched network's test accuracy means little without the ceiling it is measured
against. The xgamma simulator (:mod:`hpsearch.simulate.xgamma`) is a known generative model, so
the best any classifier can do on its events, the Bayes-optimal accuracy, can be computed
rather than guessed: for each test event, ``p(waveform | X-ray)`` and ``p(waveform | gamma)``
with every latent variable of the event integrated out under the simulator's priors and noise
model; the class with the larger posterior is the Bayes decision.

Method (details in :func:`log_evidence` and :class:`NoiseModel`):

* Noise. The simulator adds white noise, a random walk, 1/f noise (a fixed circular filter on
  white noise) and a constant offset, all Gaussian and independent of the signal, so the noise
  is one 256-dimensional Gaussian with a covariance computed exactly from the simulator's own
  filter (:func:`hpsearch.simulate.xgamma._flicker_kernel_norm`).
* Signal. Given a pulse's latents (class, expected charge ``lam``, start ``t0``, drift time or
  CsI(Tl) decay constants and fast fraction), each signal electron arrives at an independent
  time whose distribution is known in closed form (a Gaussian for an X-ray; an exponential
  mixture convolved with the uniform drift-time mixture for a gamma). Electron counts per
  sample are then Poisson (gamma) or multinomial with Fano-smeared total (X-ray); they enter
  the likelihood as a Gaussian with that mean and covariance, seen through the preamp's
  response. The signal covariance is small next to the electronic noise (at most ~3% of it in
  any direction), so it is kept to first order; the second-order remainder is printed.
* Latents. The charge ``lam`` (log-uniform on the common window), ``t0`` and the shape
  parameters are integrated numerically: a log-spaced grid in ``lam``, a lattice in ``t0``
  weighted by the exact distribution of the leading-edge trigger walk (the 200th electron's
  arrival time is a Gamma (gamma) or Beta (X-ray) order statistic) convolved with the trigger
  jitter, an equal-cell grid over the X-ray drift time and scrambled Sobol points over the gamma's
  ``(tau_fast, tau_slow, fast_fraction)``. Sums use log-sum-exp.
* What is approximate: pile-up (5% of events carry a second pulse) is not modelled; the
  electron counts are not conditioned on the trigger crossing (only ``t0`` is); counts are
  Gaussian; the integrals are finite sums. Each is checked: the output shows the accuracy on
  events with and without pile-up, a chi-square of every test event against its true latents,
  the trigger-walk model against the true walks, and the figures again with every sample count
  doubled.

What the figures are: the likelihood-ratio classifier is an achievable classifier, so its test
accuracy estimates a lower bound on the Bayes-optimal accuracy (up to the finite-sample noise
its binomial interval shows). The mean over events of the larger posterior is an estimate of
the Bayes-optimal accuracy itself, with less sampling noise, valid to the extent the
likelihood is exact. Networks and the rise-time cut are achievable classifiers too: lower
bounds. ``--network`` trains a network with the xgamma objective's own model building and
training loop on 20x the study's training events (fresh events from another seed) and scores
it on the same test events, a cross-check that no classifier beats the likelihood ratio: by
default the best searched configuration (``--curves`` or ``--storage``), else the seed's
ResNet-10 (``studies/xgamma_seed_models.yaml``).

Usage (times on a 2-core CPU shared with another 2-process job)::

    python benchmarks/xgamma_limit.py                     # ~2 min: test + 12000 fresh events
    python benchmarks/xgamma_limit.py --network --curves benchmarks/curves/xgamma_families.h5 \
        --out results/xgamma_limit.md                     # ~13 min: + 112000-event network

    # docs/xgamma_limit.md: the test events of make bench's table (~23 min)
    python benchmarks/xgamma_limit.py --network --set data.simulate.events=16000 \
        --set 'data.split={train: 0.5, val: 0.25, test: 0.25}' --set data.path=data/xgamma_16k.h5 \
        --curves benchmarks/curves/xgamma_families_16k.h5 --out results/xgamma_limit.md
"""

from __future__ import annotations

import os

# One BLAS thread: the matrices here are small (256 x 256), where threads gain little, and on a
# machine whose cores are busy OpenBLAS's spinning threads made a 256 x 256 Cholesky ~70x slower.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import argparse
import itertools
import json
import math
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from scipy import linalg, special, stats
from scipy.stats import qmc

from hpsearch.cli._common import overrides_argument
from hpsearch.simulate.xgamma import (
    _GAUSS_10_90_SIGMAS,
    _GAUSS_Q10,
    _WALK_GRID_NS,
    _WALK_GRID_START_NS,
    _WALK_GRID_STOP_NS,
    TRUTH_FIELDS,
    XGammaConfig,
    _flicker_kernel_norm,
    simulate_events,
)

FloatArray = NDArray[np.float64]

#: Events and latent points evaluated at once: the work array holds events x points x charges
#: float64 values (600 x 128 x 128 x 8 bytes = 79 MB with the doubled setting).
_EVENT_CHUNK = 600
_TEMPLATE_BATCH = 128
#: Prior weight below which a (t0, charge) cell is skipped: far below anything that matters.
_PRIOR_FLOOR = 1e-12


# --------------------------------------------------------------------------- arguments


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line (see the module docstring)."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--study",
        type=Path,
        default=Path("studies/xgamma_families.yaml"),
        help="the study whose test events are scored (its data file is simulated if missing)",
    )
    overrides_argument(
        parser,
        "override a key of the study, as `hpsearch run --set` does (e.g. the data size a "
        "learning-curve table was recorded with); repeatable",
    )
    parser.add_argument("--out", type=Path, help="write the Markdown report here too")
    parser.add_argument(
        "--events",
        type=int,
        default=0,
        help="score only the first N test events (0: all); for quick trials",
    )
    parser.add_argument("--shape-samples", type=int, default=32, help="Sobol points, gamma shape")
    parser.add_argument("--drift-samples", type=int, default=32, help="X-ray drift-time grid")
    parser.add_argument("--charge-samples", type=int, default=64, help="log-charge grid points")
    parser.add_argument("--t0-step-xray", type=float, default=4.0, help="X-ray t0 lattice, ns")
    parser.add_argument("--t0-step-gamma", type=float, default=10.0, help="gamma t0 lattice, ns")
    parser.add_argument(
        "--no-doubling",
        action="store_true",
        help="skip the second pass with every sample count doubled (the MC-stability check)",
    )
    parser.add_argument("--qmc-seed", type=int, default=0, help="scrambling of the Sobol points")
    parser.add_argument(
        "--fresh-events",
        type=int,
        default=12000,
        help="also score this many fresh events (same simulator, another seed): the same limit "
        "with a 3x narrower interval, and a finer calibration check (0: skip)",
    )
    parser.add_argument(
        "--network", action="store_true", help="also train and score the network cross-check"
    )
    parser.add_argument(
        "--network-factor",
        type=float,
        default=20.0,
        help="network training events as a multiple of the study's training part",
    )
    parser.add_argument(
        "--network-epochs",
        type=int,
        default=5,
        help="training epochs (5 x 112000 events: ~10 min on 2 busy CPU cores)",
    )
    parser.add_argument(
        "--network-model",
        default="auto",
        help="auto: the best searched configuration (from --curves or --storage), else the "
        "seed's ResNet-10; or an entry of studies/xgamma_seed_models.yaml, or a JSON object of "
        "trial parameters",
    )
    parser.add_argument(
        "--curves",
        type=Path,
        help="learning-curve table of the study (hpsearch curves record): its best row by final "
        "val_accuracy is the 'best searched model'",
    )
    parser.add_argument(
        "--storage",
        help="Optuna storage URL of a finished search (with --study-name): its best COMPLETE "
        "trial by val_accuracy is the 'best searched model'",
    )
    parser.add_argument("--study-name", help="the search's study name in --storage")
    parser.add_argument(
        "--searched-accuracy",
        type=float,
        help="test accuracy of the best searched model, when no curve table is given",
    )
    parser.add_argument(
        "--searched-label", default="best searched model", help="its name in the table"
    )
    return parser.parse_args(argv)


@dataclass(frozen=True)
class Settings:
    """How finely the latent variables are integrated; doubled for the stability check.

    Attributes:
        shape_samples: Scrambled Sobol points over the gamma's (tau_fast, tau_slow, fraction).
        drift_samples: Quantile-midpoint grid points over the X-ray drift time.
        charge_samples: Log-spaced grid points over the expected charge.
        t0_step_xray: Lattice step of the X-ray start time, ns.
        t0_step_gamma: Lattice step of the gamma start time, ns.
        qmc_seed: Seed of the Sobol scrambling.
    """

    shape_samples: int
    drift_samples: int
    charge_samples: int
    t0_step_xray: float
    t0_step_gamma: float
    qmc_seed: int

    def doubled(self) -> Settings:
        """Every count doubled, every step halved, and fresh Sobol scrambling."""
        return Settings(
            shape_samples=2 * self.shape_samples,
            drift_samples=2 * self.drift_samples,
            charge_samples=2 * self.charge_samples,
            t0_step_xray=self.t0_step_xray / 2,
            t0_step_gamma=self.t0_step_gamma / 2,
            qmc_seed=self.qmc_seed + 1,
        )

    def describe(self) -> str:
        """One line for the report."""
        return (
            f"{self.shape_samples} gamma-shape Sobol points, {self.drift_samples} drift times, "
            f"{self.charge_samples} charges, t0 every {self.t0_step_xray:g} ns (X-ray) / "
            f"{self.t0_step_gamma:g} ns (gamma)"
        )


# --------------------------------------------------------------------------- noise model


@dataclass(frozen=True)
class NoiseModel:
    """The simulator's readout as linear algebra: noise covariance and preamp response.

    Why exact: every noise term of ``_simulate_block`` is Gaussian and independent of the
    signal, so ``waveform = P @ counts + noise`` with ``noise ~ N(0, cov)``. The covariance is
    the sum of white ``s_w^2 I``, random walk ``s_rw^2 (min(i, j) + 1)``, 1/f noise (the
    circular autocorrelation of the simulator's filter, taken at lag ``|i - j|``) and the offset
    ``s_o^2`` everywhere. ``P`` is the preamp's running sum with feedback decay.

    Attributes:
        cov: Noise covariance, electrons^2, ``(n, n)``.
        chol: Its lower Cholesky factor.
        preamp: ``P[i, j] = keep^(i - j)`` for ``j <= i``: charge arriving in sample ``j`` as
            seen in sample ``i``.
        gram: ``P^T cov^-1 P``, the template-space metric every likelihood term uses.
    """

    cov: FloatArray
    chol: FloatArray
    preamp: FloatArray
    gram: FloatArray

    @classmethod
    def from_config(cls, cfg: XGammaConfig) -> NoiseModel:
        """Build the model for ``cfg``; the flicker filter is the simulator's own function."""
        n = cfg.n_samples
        index = np.arange(n)
        lag = np.abs(index[:, None] - index[None, :])
        impulse = np.fft.irfft(_flicker_kernel_norm(2 * n), 2 * n)
        autocorr = np.fft.irfft(np.abs(np.fft.rfft(impulse)) ** 2, 2 * n)
        cov = (
            cfg.white_noise_e**2 * np.eye(n)
            + cfg.random_walk_e**2 * (np.minimum(index[:, None], index[None, :]) + 1.0)
            + cfg.flicker_noise_e**2 * autocorr[lag]
            + cfg.baseline_offset_e**2
        )
        if cfg.preamp_decay_ns > 0:
            keep = math.exp(-cfg.sample_period_ns / cfg.preamp_decay_ns)
            preamp = np.tril(keep ** (index[:, None] - index[None, :]).clip(min=0).astype(float))
        else:
            preamp = np.tril(np.ones((n, n)))
        chol = np.linalg.cholesky(cov)
        whitened = linalg.solve_triangular(chol, preamp, lower=True)
        return cls(cov=cov, chol=chol, preamp=preamp, gram=whitened.T @ whitened)

    def project(self, waveforms: NDArray[Any]) -> FloatArray:
        """``P^T cov^-1 w`` per event: all a template's likelihood needs from a waveform."""
        solved = linalg.cho_solve((self.chol, True), np.asarray(waveforms, dtype=np.float64).T)
        projected: FloatArray = (self.preamp.T @ solved).T
        return projected


# --------------------------------------------------------------------------- pulse shapes


def xray_cdf(rel_ns: FloatArray, drift_ns: float) -> FloatArray:
    """CDF of an X-ray electron's arrival time relative to ``t0`` (the 10% point).

    The simulator draws ``sigma * (z - q10)`` with ``sigma = drift / 2.563``: a Gaussian of
    mean ``-q10 * sigma`` and width ``sigma``.
    """
    sigma = drift_ns / _GAUSS_10_90_SIGMAS
    cdf: FloatArray = special.ndtr((rel_ns + _GAUSS_Q10 * sigma) / sigma)
    return cdf


def _drift_mixture(cfg: XGammaConfig) -> tuple[tuple[float, float, float], ...]:
    """The SDD drift-time distribution as (weight, low, high) uniform components."""
    tail = cfg.drift_tail_fraction
    return (
        (1.0 - tail, cfg.drift_min_ns, cfg.drift_max_ns),
        (tail, cfg.drift_max_ns, cfg.drift_tail_max_ns),
    )


def gamma_cdf(
    rel_ns: FloatArray, tau_fast: float, tau_slow: float, fraction: float, cfg: XGammaConfig
) -> FloatArray:
    """CDF of a gamma photoelectron's arrival time relative to the interaction time ``t0``.

    Arrival = exponential delay (fast with probability ``fraction``, else slow) + a drift time
    from the uniform mixture of :func:`_drift_mixture`. For one exponential and one uniform
    ``[a, b]`` the convolution has the closed form ``(G(x - a) - G(x - b)) / (b - a)`` with
    ``G(y) = y - tau (1 - exp(-y / tau))`` for ``y > 0``.
    """

    def integrated(y: FloatArray, tau: float) -> FloatArray:
        y = np.maximum(y, 0.0)
        value: FloatArray = y + tau * np.expm1(-y / tau)
        return value

    total = np.zeros_like(rel_ns)
    for weight, low, high in _drift_mixture(cfg):
        if weight <= 0:
            continue
        for share, tau in ((fraction, tau_fast), (1.0 - fraction, tau_slow)):
            part = (integrated(rel_ns - low, tau) - integrated(rel_ns - high, tau)) / (high - low)
            total += weight * share * part
    return total


def bin_probabilities(cdf_at_upper_edges: FloatArray) -> FloatArray:
    """Probability that an electron lands in each sample, from the CDF at the upper edges.

    The simulator puts early electrons (before the trace) into sample 0 and drops late ones,
    so sample 0 takes everything below its upper edge and the last sample stops at the trace
    end. Works on the last axis.
    """
    probs: FloatArray = np.diff(cdf_at_upper_edges, axis=-1, prepend=0.0)
    return np.clip(probs, 0.0, None)


# --------------------------------------------------------------------------- priors


def charge_grid(low: float, high: float, count: int) -> tuple[FloatArray, FloatArray]:
    """Midpoints of ``count`` equal steps in log charge, and their log widths."""
    edges = np.linspace(math.log(low), math.log(high), count + 1)
    mids = 0.5 * (edges[1:] + edges[:-1])
    return np.exp(mids), np.diff(edges)


def charge_prior(cfg: XGammaConfig, gamma: bool, count: int) -> tuple[FloatArray, FloatArray]:
    """The expected-charge grid of a class and the log prior weight of each point.

    Both classes draw the expected charge log-uniformly from the part of the common window
    their band reaches; for a gamma that part depends on the light yield (uniform), so the
    prior is averaged over a fine grid of yields (with the defaults it is the whole window for
    every yield, and the average changes nothing).
    """
    if not gamma:
        low, high = cfg._xray_charge_range()
        charges, widths = charge_grid(low, high, count)
        return charges, np.log(widths / math.log(high / low))
    yields = np.linspace(cfg.light_yield_min_e_per_kev, cfg.light_yield_max_e_per_kev, 2001)
    lows = np.maximum(cfg.charge_min_e, cfg.gamma_energy_min_kev * yields)
    highs = np.minimum(cfg.charge_max_e, cfg.gamma_energy_max_kev * yields)
    charges, widths = charge_grid(float(lows.min()), float(highs.max()), count)
    inside = (charges[:, None] >= lows) & (charges[:, None] <= highs)
    density = np.mean(inside / np.log(highs / lows), axis=1)  # per unit log charge
    with np.errstate(divide="ignore"):
        return charges, np.log(density * widths)


@dataclass(frozen=True)
class WalkModel:
    """The leading-edge trigger: where it puts ``t0`` given a pulse's shape and charge.

    The simulator histograms the noiseless pulse's electron times on a 4 ns grid and takes the
    upper edge of the bin in which the ``threshold``-th electron arrives as the walk; then
    ``t0 = pretrigger - walk + jitter``, clipped to the trace. The ``k``-th arrival time has
    ``P(T_k <= t) = P(Poisson(lam F(t)) >= k)`` for a gamma (Poisson photostatistics) and
    ``P(Binomial(N, F(t)) >= k)`` for an X-ray (``N ~ lam`` electrons, Fano-narrow), exactly.
    """

    cfg: XGammaConfig
    edges: FloatArray = field(init=False)
    walks: FloatArray = field(init=False)

    def __post_init__(self) -> None:
        n_bins = round((_WALK_GRID_STOP_NS - _WALK_GRID_START_NS) / _WALK_GRID_NS)
        edges = _WALK_GRID_START_NS + _WALK_GRID_NS * np.arange(1, n_bins)
        object.__setattr__(self, "edges", edges)
        object.__setattr__(
            self, "walks", _WALK_GRID_START_NS + _WALK_GRID_NS * np.arange(1, n_bins + 1)
        )

    def pmf(self, cdf_at_edges: FloatArray, charges: FloatArray, gamma: bool) -> FloatArray:
        """``P(walk = walks[m])`` per charge, ``(n_charges, n_bins)``.

        Args:
            cdf_at_edges: The electron arrival CDF at :attr:`edges` (relative to ``t0``).
            charges: Expected charges.
            gamma: Poisson (gamma) or binomial (X-ray) counting.
        """
        k = np.minimum(self.cfg.trigger_threshold_e, charges)[:, None]
        level = np.clip(cdf_at_edges, 0.0, 1.0)[None, :]
        if gamma:
            below = special.gammainc(k, charges[:, None] * level)
        else:
            n = np.maximum(charges[:, None], k)
            below = special.betainc(k, n - k + 1.0, level)
        cumulative = np.concatenate(
            [np.zeros((len(charges), 1)), below, np.ones((len(charges), 1))], axis=1
        )
        pmf: FloatArray = np.clip(np.diff(cumulative, axis=1), 0.0, None)
        return pmf

    def t0_weights(self, pmf: FloatArray, step_ns: float) -> tuple[FloatArray, FloatArray]:
        """The ``t0`` lattice a pulse shape needs and each point's prior weight per charge.

        ``t0 = pretrigger - walk + jitter`` on a lattice of ``step_ns`` (midpoint rule); the
        mass the clip moves to ``t0 = 0`` goes to the lattice point 0.

        Returns:
            ``(t0_ns (k,), weights (n_charges, k))``; lattice points whose weight is below
            :data:`_PRIOR_FLOOR` for every charge are dropped.
        """
        cfg = self.cfg
        jitter = cfg.trigger_jitter_ns
        used = np.flatnonzero(pmf.max(axis=0) > _PRIOR_FLOOR * 1e-3)
        centres = cfg.pretrigger_ns - self.walks[used]
        trace_ns = cfg.n_samples * cfg.sample_period_ns
        low = max(0.0, float(centres.min()) - 7 * jitter)
        high = min(trace_ns, float(centres.max()) + 7 * jitter)
        t0 = step_ns * np.arange(math.floor(low / step_ns), math.ceil(high / step_ns) + 1)
        t0 = t0[(t0 >= 0) & (t0 <= trace_ns)]
        offsets = t0[None, :] - centres[:, None]  # (walk bins, lattice)
        density = np.exp(-0.5 * (offsets / jitter) ** 2) / (jitter * math.sqrt(2 * math.pi))
        weights = pmf[:, used] @ (density * step_ns)
        if t0.size and t0[0] == 0.0:
            clipped = pmf[:, used] @ special.ndtr(-centres / jitter)
            weights[:, 0] = 0.5 * weights[:, 0] + clipped
        keep = weights.max(axis=0) > _PRIOR_FLOOR
        return t0[keep], weights[:, keep]

    def walk_pit(
        self, cdf_at_edges: FloatArray, charge: float, gamma: bool, walk: float, uniform: float
    ) -> float:
        """Randomised PIT of a true walk, ``P(W < walk) + u P(W = walk)`` (model check).

        The walk takes values on a 4 ns grid (a sharp X-ray's on one or two of them), so the
        plain ``P(W <= walk)`` is neither centred nor uniform; with ``u`` uniform on [0, 1]
        the randomised value is exactly uniform when the model is right.
        """
        pmf = self.pmf(cdf_at_edges, np.array([charge]), gamma)[0]
        below = float(pmf[self.walks < walk - 1e-3].sum())
        at = float(pmf[np.abs(self.walks - walk) <= 1e-3].sum())
        return below + uniform * at


# --------------------------------------------------------------------------- templates


@dataclass
class TemplateBatch:
    """Mean arrival probabilities per sample for a batch of latent points, with their priors.

    Attributes:
        probs: ``(n_samples, k)``: column ``j`` is the expected fraction of the charge arriving
            in each sample for latent point ``j`` (before the preamp).
        log_prior: ``(k, n_charges)``: log prior weight of latent point ``j`` at each charge of
            the class's grid (shape weight x t0 weight x charge weight).
    """

    probs: FloatArray
    log_prior: FloatArray


def _log(values: FloatArray) -> FloatArray:
    with np.errstate(divide="ignore"):
        logged: FloatArray = np.log(values)
    return logged


def class_templates(
    cfg: XGammaConfig, gamma: bool, settings: Settings, charges: FloatArray, log_charge: FloatArray
) -> Iterator[TemplateBatch]:
    """Every latent point of one class, in batches: shape x t0 lattice, with prior weights.

    X-ray shape: the drift time on the midpoints of equal cells, weighted by the mixture's
    probability of each cell (:func:`drift_grid`). Gamma shape: scrambled Sobol points in the
    box of ``tau_fast``, ``tau_slow`` and ``fast_fraction`` (uniform jitters, equal weights);
    the per-electron drift is integrated in closed form by :func:`gamma_cdf`.
    """
    walk = WalkModel(cfg)
    upper = cfg.sample_period_ns * np.arange(1, cfg.n_samples + 1)
    if gamma:
        sobol = qmc.Sobol(d=3, scramble=True, seed=settings.qmc_seed)
        unit = sobol.random(settings.shape_samples)
        taus_f = cfg.tau_fast_ns * (1 - cfg.tau_jitter + 2 * cfg.tau_jitter * unit[:, 0])
        taus_s = cfg.tau_slow_ns * (1 - cfg.tau_jitter + 2 * cfg.tau_jitter * unit[:, 1])
        fracs = np.clip(
            cfg.fast_fraction + cfg.fast_fraction_jitter * (2 * unit[:, 2] - 1), 0.0, 1.0
        )
        shapes: list[tuple[float, ...]] = [
            (float(a), float(b), float(c)) for a, b, c in zip(taus_f, taus_s, fracs, strict=True)
        ]
        log_shapes = np.full(len(shapes), -math.log(len(shapes)))
        step = settings.t0_step_gamma
    else:
        drifts, drift_weights = drift_grid(cfg, settings.drift_samples)
        shapes = [(float(d),) for d in drifts]
        log_shapes = _log(drift_weights)
        step = settings.t0_step_xray

    def cdf(rel: FloatArray, shape: tuple[float, ...]) -> FloatArray:
        return pulse_cdf(rel, gamma, shape, cfg)

    pending_p: list[FloatArray] = []
    pending_w: list[FloatArray] = []
    pending = 0
    for shape, log_shape in zip(shapes, log_shapes, strict=True):
        pmf = walk.pmf(cdf(walk.edges, shape), charges, gamma)
        t0, weights = walk.t0_weights(pmf, step)
        if t0.size == 0:
            continue
        probs = bin_probabilities(cdf(upper[None, :] - t0[:, None], shape))  # (k, n)
        pending_p.append(probs.T)
        pending_w.append(log_shape + _log(weights.T) + log_charge[None, :])
        pending += t0.size
        if pending >= _TEMPLATE_BATCH:
            yield TemplateBatch(np.concatenate(pending_p, axis=1), np.concatenate(pending_w))
            pending_p, pending_w, pending = [], [], 0
    if pending:
        yield TemplateBatch(np.concatenate(pending_p, axis=1), np.concatenate(pending_w))


def pulse_cdf(
    rel_ns: FloatArray, gamma: bool, shape: tuple[float, ...], cfg: XGammaConfig
) -> FloatArray:
    """Arrival CDF of a pulse: ``shape`` is ``(drift,)`` (X-ray) or ``(tau_f, tau_s, f)``."""
    if gamma:
        return gamma_cdf(rel_ns, shape[0], shape[1], shape[2], cfg)
    return xray_cdf(rel_ns, shape[0])


def drift_grid(cfg: XGammaConfig, count: int) -> tuple[FloatArray, FloatArray]:
    """Midpoints of ``count`` equal cells over the SDD drift range and each cell's probability.

    Equal cells in drift time, not in probability: the rare long drifts of the tail (10% of
    the mass over half the range) are the X-rays that look most like gammas, and a quantile
    grid would leave them three points and miss the longest.
    """
    edges = np.linspace(cfg.drift_min_ns, cfg.drift_tail_max_ns, count + 1)
    cdf = np.zeros_like(edges)
    for weight, low, high in _drift_mixture(cfg):
        cdf += weight * np.clip((edges - low) / (high - low), 0.0, 1.0)
    mids: FloatArray = 0.5 * (edges[1:] + edges[:-1])
    return mids, np.diff(cdf)


# --------------------------------------------------------------------------- likelihood


@dataclass
class Evidence:
    """Log marginal likelihoods of both classes per event, and diagnostics.

    Attributes:
        log_xray: ``log p(w | X-ray)`` up to a constant shared by both classes.
        log_gamma: ``log p(w | gamma)``, same constant.
        templates: Latent (shape, t0) points integrated over, per class.
        second_order: Largest ``lam^2 tr(M^2) / 4`` over the latent points: the size (in nats)
            of the neglected second-order term of the signal covariance.
        seconds: Wall time.
    """

    log_xray: FloatArray
    log_gamma: FloatArray
    templates: dict[str, int]
    second_order: float
    seconds: float

    def log_odds(self, gamma_fraction: float) -> FloatArray:
        """Posterior log odds of gamma over X-ray, with the simulator's class prior."""
        prior = math.log(gamma_fraction / (1.0 - gamma_fraction))
        odds: FloatArray = self.log_gamma - self.log_xray + prior
        return odds


def log_evidence(
    projected: FloatArray, noise: NoiseModel, cfg: XGammaConfig, settings: Settings
) -> Evidence:
    """``log p(w | class)`` for every event, all latents integrated out.

    For a latent point with arrival probabilities ``p`` and charge ``lam`` the waveform is
    Gaussian with mean ``lam P p`` and covariance ``cov + lam P S P^T``, where ``S = diag(p)``
    (Poisson photoelectrons) or ``diag(p) - (1 - F) p p^T`` (X-ray: multinomial arrival of a
    Fano-smeared total). Whitened, ``lam P S P^T`` is at most a few percent of the noise, so
    the log density is expanded to first order in it:
    ``log N = const - |r|^2/2 + lam r^T M r / 2 - lam tr(M) / 2`` with ``r`` the whitened
    residual. Every term reduces to products of ``y = P^T cov^-1 w`` with ``p`` and
    ``K p`` (``K = P^T cov^-1 P``), so a latent point costs a few dot products per event and
    the charge enters as a cubic polynomial, summed over its grid.
    """
    start = time.perf_counter()
    gram = noise.gram
    gram_diag = np.diag(gram)
    squared = projected**2
    results: dict[str, FloatArray] = {}
    counts: dict[str, int] = {}
    worst = 0.0
    for name, gamma in (("xray", False), ("gamma", True)):
        charges, log_charge = charge_prior(cfg, gamma, settings.charge_samples)
        powers = np.stack([charges, charges**2, charges**3])  # (3, L)
        fano = 0.0 if gamma else 1.0 - cfg.fano_factor
        total = np.full(projected.shape[0], -np.inf)
        count = 0
        for batch in class_templates(cfg, gamma, settings, charges, log_charge):
            p = batch.probs  # (n, k)
            kp = gram @ p
            mm = np.einsum("nk,nk->k", p, kp)
            trace_m = gram_diag @ p - fano * mm
            m_m_m = np.einsum("nk,nk->k", p, kp**2) - fano * mm**2
            # tr(M^2) of the Poisson form; the X-ray's (Fano-reduced) M is smaller.
            tr_m2 = np.einsum("ik,ij,jk->k", p, gram**2, p)
            worst = max(worst, float(np.max(charges[-1] ** 2 * tr_m2 / 4)))
            # The charge's cubic coefficient and the prior do not depend on the event.
            fixed = (0.5 * m_m_m)[:, None] * powers[2] + batch.log_prior  # (k, L)
            for lo in range(0, projected.shape[0], _EVENT_CHUNK):
                y = projected[lo : lo + _EVENT_CHUNK]
                zm = y @ p  # (E, k)
                z_m_z = squared[lo : lo + _EVENT_CHUNK] @ p - fano * zm**2
                z_m_m = y @ (p * kp) - fano * zm * mm
                c1 = zm - 0.5 * trace_m + 0.5 * z_m_z
                c2 = -0.5 * mm - z_m_m
                value = c1[:, :, None] * powers[0]
                value += c2[:, :, None] * powers[1]
                value += fixed[None, :, :]
                chunk = special.logsumexp(value, axis=(1, 2))
                total[lo : lo + _EVENT_CHUNK] = np.logaddexp(total[lo : lo + _EVENT_CHUNK], chunk)
            count += p.shape[1]
        results[name] = total
        counts[name] = count
    return Evidence(
        log_xray=results["xray"],
        log_gamma=results["gamma"],
        templates=counts,
        second_order=worst,
        seconds=time.perf_counter() - start,
    )


# --------------------------------------------------------------------------- study events


@dataclass
class TestEvents:
    """The study's test events, as its trials read them.

    Attributes:
        waveforms: ``(E, n_samples)`` float32 traces, file order.
        labels: ``(E,)`` 0 X-ray, 1 gamma.
        truth: The simulator's latent truth per event.
        indices: Global event indices in the data file.
        cfg: The simulator configuration the file was written with.
        data: The study's :class:`~hpsearch.objective.DataRef`.
        study_seed: The study's master seed.
        n_train: Events in the study's training part.
        reproduced: Whether a fresh simulation (same seed and config) gives the same events.
        file_seed: The simulator seed the data file was written with.
    """

    waveforms: NDArray[np.float32]
    labels: NDArray[np.int64]
    truth: dict[str, NDArray[Any]]
    indices: NDArray[np.int64]
    cfg: XGammaConfig
    data: Any
    study_seed: int
    n_train: int
    reproduced: bool
    file_seed: int


def study_test_events(study_path: Path, overrides: Sequence[str] = ()) -> TestEvents:
    """Load the study, simulate its data file if missing, and read its test split.

    Uses the package's own path: :func:`hpsearch.prepare.prepare` (data file, split, input
    statistics exactly as a search gets them). Then re-simulates the file's events with
    :func:`~hpsearch.simulate.xgamma.simulate_events` from the seed and configuration stored
    in the file, to confirm that these are the simulator's events for that seed.
    """
    from rich.console import Console

    from hpsearch.prepare import prepare
    from hpsearch.spec import load_study

    prepared = prepare(load_study(study_path, list(overrides)), Console(stderr=True, quiet=True))
    data = prepared.data
    info = data.info()
    attrs = info.attrs
    if attrs.get("task") != "xgamma":
        sys.exit(f"{study_path}: the data file {info.path} is not xgamma simulator output")
    cfg = XGammaConfig.from_dict(json.loads(attrs["config"]))
    split = data.split()
    blocks = split.test[np.argsort(split.test[:, 0], kind="stable")]
    indices = np.concatenate([np.arange(a, b) for a, b in blocks.tolist()])
    waveforms = data.read(data.x_key, "test")
    labels = data.read(data.y_key, "test").astype(np.int64)
    truth = {name: data.read(f"truth/{name}", "test") for name in TRUTH_FIELDS}
    fresh, fresh_labels, _ = simulate_events(int(info.n_events), int(attrs["seed"]), cfg)
    reproduced = bool(
        np.array_equal(fresh[indices], waveforms) and np.array_equal(fresh_labels[indices], labels)
    )
    return TestEvents(
        waveforms=waveforms,
        labels=labels,
        truth=truth,
        indices=indices,
        cfg=cfg,
        data=data,
        study_seed=int(prepared.study.spec.seed),
        n_train=split.n_events("train"),
        reproduced=reproduced,
        file_seed=int(attrs["seed"]),
    )


# --------------------------------------------------------------------------- model checks


@dataclass
class ModelCheck:
    """How well the likelihood's model describes the test events, given their true latents.

    Attributes:
        chi2_mean: Mean of ``r^T C^-1 r / n`` over events without pile-up (1 if exact).
        chi2_sd: Its standard deviation over events (``sqrt(2 / n)`` = 0.088 if exact).
        chi2_expected_sd: ``sqrt(2 / n)``.
        walk_pit_mean: Mean randomised probability-integral transform of the true trigger
            walks under the walk model (0.5 if exact).
        walk_pit_ks: Kolmogorov-Smirnov distance of those PIT values from uniform.
        walk_ks_critical: The 5% critical value of that distance for this many events.
        n_events: Events checked (those without pile-up).
    """

    chi2_mean: float
    chi2_sd: float
    chi2_expected_sd: float
    walk_pit_mean: float
    walk_pit_ks: float
    walk_ks_critical: float
    n_events: int


def model_check(events: TestEvents, noise: NoiseModel) -> ModelCheck:
    """Compare each test event with the model at its true latents (pile-up events left out).

    The chi-square uses the full covariance ``cov + lam P S P^T`` (no first-order expansion);
    a mean near 1 and a spread near ``sqrt(2 / n)`` say that mean pulse, electron-count noise
    and electronic noise are modelled as the simulator makes them.
    """
    cfg = events.cfg
    truth = events.truth
    walk = WalkModel(cfg)
    upper: FloatArray = cfg.sample_period_ns * np.arange(1, cfg.n_samples + 1, dtype=np.float64)
    chi2: list[float] = []
    pit: list[float] = []
    rng = np.random.default_rng(0)
    for i in np.flatnonzero(truth["pileup"] == 0):
        gamma = bool(events.labels[i] == 1)
        t0 = float(truth["t0_ns"][i])
        shape: tuple[float, ...]
        if gamma:
            charge = float(truth["energy_kev"][i]) * float(truth["light_yield_e_per_kev"][i])
            shape = tuple(
                float(truth[k][i]) for k in ("tau_fast_ns", "tau_slow_ns", "fast_fraction")
            )
            fano = 0.0
        else:
            charge = float(truth["energy_kev"][i]) * 1000.0 / cfg.pair_energy_ev
            shape = (float(truth["drift_time_ns"][i]),)
            fano = 1.0 - cfg.fano_factor
        p = bin_probabilities(pulse_cdf(upper - t0, gamma, shape, cfg))
        response = noise.preamp @ p
        mean = charge * response
        cov = (
            noise.cov
            + (noise.preamp * (charge * p)) @ noise.preamp.T
            - charge * fano * np.outer(response, response)
        )
        residual = events.waveforms[i].astype(np.float64) - mean
        factor = linalg.cho_factor(cov, lower=True)
        chi2.append(float(residual @ linalg.cho_solve(factor, residual)) / cfg.n_samples)
        pit.append(
            walk.walk_pit(
                pulse_cdf(walk.edges, gamma, shape, cfg),
                charge,
                gamma,
                float(truth["trigger_walk_ns"][i]),
                rng.random(),
            )
        )
    values = np.asarray(chi2)
    pits = np.asarray(pit)
    ks = float(stats.kstest(pits, "uniform").statistic)
    return ModelCheck(
        chi2_mean=float(values.mean()),
        chi2_sd=float(values.std()),
        chi2_expected_sd=math.sqrt(2.0 / cfg.n_samples),
        walk_pit_mean=float(pits.mean()),
        walk_pit_ks=ks,
        walk_ks_critical=1.36 / math.sqrt(len(pits)),
        n_events=len(values),
    )


# --------------------------------------------------------------------------- other methods


def rise_time_cut(events: TestEvents) -> tuple[NDArray[np.bool_], float]:
    """The package's rise-time cut, fitted on the study's training part, per test event.

    Returns:
        ``(correct per test event, threshold_ns)``; the accuracy equals
        :func:`hpsearch.baselines.score_rise_time_cut` (which is also called, as a check).
    """
    from hpsearch.baselines import rise_time_ns, score_rise_time_cut

    score = score_rise_time_cut(events.data)
    cfg = events.cfg
    rise = rise_time_ns(events.waveforms, cfg.sample_period_ns, cfg.pretrigger_samples)
    correct = score.cut.predict(rise) == events.labels
    if len(correct) == score.n_test and abs(float(correct.mean()) - score.accuracy) > 1e-12:
        sys.exit("the rise-time cut's per-event predictions disagree with score_rise_time_cut")
    return correct, score.cut.threshold_ns


@dataclass(frozen=True)
class Searched:
    """The best searched model: chosen by validation accuracy, scored on the test events.

    Attributes:
        accuracy: Its test accuracy.
        note: Where it comes from, for the table.
        flat_params: Its flat (dotted) parameters, when known: ``--network-model auto``
            retrains this configuration on many more events.
    """

    accuracy: float
    note: str
    flat_params: dict[str, Any] | None = None


def best_searched(path: Path) -> Searched:
    """The table's best row by final validation accuracy.

    The search chooses by validation accuracy; test accuracy never chooses, so it is read off
    the chosen row.
    """
    from hpsearch.curves import CurveTable

    table = CurveTable.read(path, source="--curves")
    val = table.metrics["val_accuracy"]
    test = table.metrics["test_accuracy"]
    final_val = np.array([val[r, table.reported(r) - 1] for r in range(table.rows)])
    final_test = np.array([test[r, table.reported(r) - 1] for r in range(table.rows)])
    usable = np.isfinite(final_val) & np.isfinite(final_test)
    if not usable.any():
        sys.exit(f"{path}: no row reports both val_accuracy and test_accuracy")
    row = int(np.flatnonzero(usable)[np.argmax(final_val[usable])])
    params = table.params[row]
    note = (
        f"best of {int(usable.sum())} recorded configurations by val_accuracy: "
        f"{params.get('model', '?')}, {table.epochs} epochs, val {final_val[row]:.4f}"
    )
    return Searched(float(final_test[row]), note, dict(params))


def best_in_storage(storage: str, study_name: str) -> Searched:
    """A search's best COMPLETE trial by val_accuracy (from its Optuna storage)."""
    import optuna

    study = optuna.load_study(study_name=study_name, storage=storage)
    best: tuple[float, float, optuna.trial.FrozenTrial] | None = None
    for trial in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)):
        val = trial.user_attrs.get("val_accuracy")
        test = trial.user_attrs.get("test_accuracy")
        if val is None or test is None:
            continue
        if best is None or float(val) > best[0]:
            best = (float(val), float(test), trial)
    if best is None:
        sys.exit(f"{storage} {study_name}: no COMPLETE trial reports val and test accuracy")
    note = f"{study_name} trial {best[2].number}, best by val_accuracy ({best[0]:.4f})"
    return Searched(best[1], note, dict(best[2].params))


def network_params(
    choice: str, study: Path, searched: Searched | None, overrides: Sequence[str] = ()
) -> tuple[dict[str, Any], str]:
    """The cross-check network's trial parameters, and its name.

    ``auto``: the best searched configuration (decoded by the study's own space), so the
    cross-check asks what the searched architecture reaches with 20x the data; without one,
    the seed's ResNet-10. Otherwise an entry of ``studies/xgamma_seed_models.yaml`` or a JSON
    object of trial parameters.
    """
    text = choice.strip()
    if text == "auto" and searched is not None and searched.flat_params:
        from hpsearch.spec import load_study

        space = load_study(study, list(overrides)).space
        return space.decode(searched.flat_params), "the best searched configuration"
    if text == "auto":
        text = "resnet10"
    if text.startswith("{"):
        params: dict[str, Any] = json.loads(text)
        return params, "network (--network-model JSON)"
    import yaml

    path = Path("studies/xgamma_seed_models.yaml")
    models = yaml.safe_load(path.read_text())
    if text not in models:
        sys.exit(f"--network-model {text!r} is not in {path} (has {sorted(models)})")
    return dict(models[text]), f"seed {text}"


@dataclass
class NetworkResult:
    """The network cross-check.

    Attributes:
        label: The model's name.
        accuracy: Its test accuracy (from the objective's last report).
        correct: Per test event, whether it was right (None when the saved model could not be
            reloaded for per-event predictions).
        n_train: Training events.
        seconds: Wall time of simulation and training.
        reports: Every epoch's report.
    """

    label: str
    accuracy: float
    correct: NDArray[np.bool_] | None
    n_train: int
    seconds: float
    reports: list[dict[str, Any]]


def network_crosscheck(
    events: TestEvents, args: argparse.Namespace, searched: Searched | None
) -> NetworkResult:
    """Train a network on many fresh events and score it on the study's test events.

    The training and validation events are simulated with the study's simulator settings
    and a seed derived from the study's ("xgamma_limit", "network"), so none is a test event.
    They are written to a temporary file that, with the study's own data file as a second
    shard, forms one data set whose test part is exactly the study's test events. The
    xgamma objective's ``train`` (its input scaling, model building and
    :func:`hpsearch.training.fit_and_report` loop) trains and scores the model.
    """
    import importlib.util

    from hpsearch.data import Layout, Split, inspect_dataset
    from hpsearch.objective import DataRef, TrialContext
    from hpsearch.seeding import derive_rng, derive_seed
    from hpsearch.simulate import simulate_to_file

    start = time.perf_counter()
    params, label = network_params(args.network_model, args.study, searched, args.overrides)
    n_train = round(args.network_factor * events.n_train)
    n_val = max(1000, len(events.labels))
    seed = derive_seed(events.study_seed, "xgamma_limit", "network")
    if seed == events.file_seed:
        sys.exit("the network's seed equals the data file's; choose another stream name")
    spec = importlib.util.spec_from_file_location("xgamma_objective", "objectives/xgamma.py")
    if spec is None or spec.loader is None:
        sys.exit("cannot import objectives/xgamma.py (run from the repository root)")
    objective = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(objective)

    with tempfile.TemporaryDirectory(prefix="xgamma_limit_") as tmp:
        fresh = Path(tmp) / "network_train.h5"
        simulate_to_file(fresh, n_train + n_val, seed, events.cfg, progress=False)
        layout = Layout("waveforms", "labels")
        info = inspect_dataset([fresh, events.data.info().path], layout, scan_finite=False)
        block = 32
        starts = np.arange(0, n_train, block)
        train_blocks = np.stack([starts, np.minimum(starts + block, n_train)], axis=1)
        train_blocks = train_blocks[derive_rng(seed, "split").permutation(len(train_blocks))]
        # The test part: exactly the events scored above (all the study's test events, or the
        # first --events of them), as contiguous runs of global indices in the second shard.
        index = events.indices + n_train + n_val
        breaks = np.flatnonzero(np.diff(index) != 1) + 1
        test_blocks = np.stack(
            [index[np.r_[0, breaks]], index[np.r_[breaks - 1, len(index) - 1]] + 1], axis=1
        )
        split = Split(
            train=train_blocks.astype(np.int64),
            val=np.array([[n_train, n_train + n_val]], dtype=np.int64),
            test=np.ascontiguousarray(test_blocks, dtype=np.int64),
        )
        data = DataRef(info, layout, split, serve="memory")
        reports: list[dict[str, Any]] = []

        def report(metrics: dict[str, Any]) -> None:
            reports.append(dict(metrics))
            print(
                f"  epoch {metrics.get('epoch')}: val_accuracy "
                f"{metrics.get('val_accuracy', float('nan')):.4f} "
                f"({metrics.get('train_seconds', 0.0):.0f} s training)",
                file=sys.stderr,
                flush=True,
            )

        saved = Path(tmp) / "model.keras"
        ctx = TrialContext(
            number=0,
            params=params,
            seed=derive_seed(events.study_seed, "xgamma_limit", "trial"),
            epochs=args.network_epochs,
            data=data,
            cpus=float(os.cpu_count() or 1),
            input_stats=objective.input_stats(data),
            report=report,
            save_model=saved,
        )
        objective.train(ctx)
        accuracy = float(reports[-1]["test_accuracy"])
        correct = _network_predictions(saved, ctx.input_stats, events)
    if correct is not None and abs(float(correct.mean()) - accuracy) > 2e-3:
        print(
            f"warning: reloaded model scores {correct.mean():.4f}, the report said {accuracy:.4f}",
            file=sys.stderr,
        )
    return NetworkResult(
        label=f"{label} on {n_train} fresh events ({args.network_epochs} epochs)",
        accuracy=accuracy,
        correct=correct,
        n_train=n_train,
        seconds=time.perf_counter() - start,
        reports=reports,
    )


def _network_predictions(
    saved: Path, input_stats: Mapping[str, Any], events: TestEvents
) -> NDArray[np.bool_] | None:
    """Per-event correctness of the saved model, with the objective's input scaling."""
    try:
        import keras

        model = keras.saving.load_model(saved, compile=False)
    except Exception as exc:  # a custom layer that does not reload: per-event view only
        print(f"warning: cannot reload the network ({exc}); no paired comparison", file=sys.stderr)
        return None
    pretrigger = int(input_stats["pretrigger_samples"])
    scale = float(input_stats["amplitude_scale"])
    x = events.waveforms.astype(np.float64)
    x = (x - x[:, :pretrigger].mean(axis=1, keepdims=True)) / scale
    probs = model.predict(x.astype(np.float32)[..., None], verbose=0, batch_size=512)
    correct: NDArray[np.bool_] = np.argmax(probs, axis=1) == events.labels
    return correct


# --------------------------------------------------------------------------- statistics


def binomial_interval(correct: int, total: int) -> tuple[float, float]:
    """Clopper-Pearson 95% interval of an accuracy measured on ``total`` events."""
    low = stats.beta.ppf(0.025, correct, total - correct + 1) if correct > 0 else 0.0
    high = stats.beta.ppf(0.975, correct + 1, total - correct) if correct < total else 1.0
    return float(low), float(high)


def paired_difference(a: NDArray[np.bool_], b: NDArray[np.bool_]) -> tuple[float, float, float]:
    """Accuracy of ``a`` minus that of ``b`` on the same events, with a 95% normal interval.

    Paired: only events where the two disagree carry information, so the interval is far
    narrower than two separate binomial intervals would suggest.
    """
    diff = a.astype(float) - b.astype(float)
    mean = float(diff.mean())
    half = 1.96 * float(diff.std(ddof=1)) / math.sqrt(len(diff))
    return mean, mean - half, mean + half


@dataclass
class BayesFigures:
    """The Bayes classifier's figures on the test events for one integration setting."""

    settings: Settings
    evidence: Evidence
    posterior: FloatArray
    correct: NDArray[np.bool_]

    @property
    def accuracy(self) -> float:
        """Test accuracy of the likelihood-ratio decision."""
        return float(self.correct.mean())

    @property
    def expected(self) -> tuple[float, float]:
        """Mean max posterior, and the half-width of its 95% interval (events' spread)."""
        confidence = np.maximum(self.posterior, 1.0 - self.posterior)
        half = 1.96 * float(confidence.std(ddof=1)) / math.sqrt(len(confidence))
        return float(confidence.mean()), half


def bayes_figures(
    labels: NDArray[np.int64],
    cfg: XGammaConfig,
    projected: FloatArray,
    noise: NoiseModel,
    settings: Settings,
) -> BayesFigures:
    """Evidence, posterior and decisions for one integration setting."""
    evidence = log_evidence(projected, noise, cfg, settings)
    odds = evidence.log_odds(cfg.gamma_fraction)
    posterior = special.expit(odds)
    correct = (odds > 0).astype(np.int64) == labels
    return BayesFigures(settings, evidence, posterior, correct)


@dataclass
class FreshSample:
    """The likelihood-ratio classifier on fresh events of the same simulator (another seed).

    Why: the Bayes-optimal accuracy is a property of the event distribution; 1200 test events
    pin it to about +-1.6 points, ten times as many to +-0.5. Also a finer calibration check.

    Attributes:
        seed: The simulator seed (derived from the study's, stream "xgamma_limit", "fresh").
        figures: The Bayes classifier's figures on these events.
        pileup: Which events carry pile-up.
    """

    seed: int
    figures: BayesFigures
    pileup: NDArray[np.bool_]


def fresh_sample(
    events: TestEvents, noise: NoiseModel, settings: Settings, n_events: int
) -> FreshSample:
    """Simulate ``n_events`` fresh events and score the Bayes classifier on them."""
    from hpsearch.seeding import derive_seed

    seed = derive_seed(events.study_seed, "xgamma_limit", "fresh")
    waveforms, labels, truth = simulate_events(n_events, seed, events.cfg)
    projected = noise.project(waveforms)
    figures = bayes_figures(labels.astype(np.int64), events.cfg, projected, noise, settings)
    return FreshSample(seed=seed, figures=figures, pileup=truth["pileup"] == 1)


# --------------------------------------------------------------------------- report


def fmt_interval(low: float, high: float) -> str:
    """``[low, high]`` with four decimals."""
    return f"[{low:.4f}, {high:.4f}]"


@dataclass
class Results:
    """Everything the report shows (see :func:`main` for where each part comes from)."""

    study: str
    events: TestEvents
    base: BayesFigures
    doubled: BayesFigures | None
    check: ModelCheck
    cut_correct: NDArray[np.bool_]
    cut_threshold: float
    fresh: FreshSample | None
    network: NetworkResult | None
    searched: Searched | None
    searched_label: str


def _calibration(lines: list[str], figures: BayesFigures, mask: NDArray[np.bool_]) -> None:
    """Accuracy against mean max posterior in bins of max posterior (equal if calibrated)."""
    confidence = np.maximum(figures.posterior, 1 - figures.posterior)
    edges = (0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.999, 1.0)
    lines.append("| max posterior | events | accuracy | mean max posterior |")
    lines.append("|---|---|---|---|")
    for low, high in itertools.pairwise(edges):
        inside = mask & (confidence >= low) & ((confidence < high) | (high == 1.0))
        if inside.any():
            lines.append(
                f"| {low:g}-{high:g} | {int(inside.sum())} | "
                f"{figures.correct[inside].mean():.4f} | {confidence[inside].mean():.4f} |"
            )


def build_report(res: Results, started: float) -> str:
    """The Markdown report: the table, then how each figure was made and checked."""
    events = res.events
    n = len(events.labels)
    final = res.doubled or res.base
    limit, limit_half = final.expected
    lines: list[str] = [
        f"# Bayes-optimal accuracy of xgamma: {res.study}",
        "",
        f"Test events: the study's {n} (its split of {events.data.info().path.name}, simulator "
        f"seed {events.file_seed}; re-simulated bit-identical: "
        f"{'yes' if events.reproduced else 'NO'}); {int(events.truth['pileup'].sum())} carry "
        "pile-up. 'fraction of limit' divides by the mean max posterior on the same events.",
        "",
        "| method | events | accuracy | 95% interval | bound or estimate | fraction of limit |",
        "|---|---|---|---|---|---|",
    ]

    def row(name: str, where: str, acc: float, k: int, total: int, ref: float, kind: str) -> None:
        interval = fmt_interval(*binomial_interval(k, total))
        lines.append(f"| {name} | {where} | {acc:.4f} | {interval} | {kind} | {acc / ref:.3f} |")

    test = f"test ({n})"
    lines.append(
        f"| Bayes limit: mean max posterior | {test} | {limit:.4f} | "
        f"{fmt_interval(limit - limit_half, limit + limit_half)} | estimate of the Bayes-optimal "
        "accuracy (slightly high: pile-up is not modelled) | 1.000 |"
    )
    row(
        "Bayes classifier: likelihood-ratio decision",
        test,
        final.accuracy,
        int(final.correct.sum()),
        n,
        limit,
        "lower bound (achievable classifier; up to MC noise)",
    )
    if res.network is not None:
        net = res.network
        row(
            f"network cross-check: {net.label}",
            test,
            net.accuracy,
            round(net.accuracy * n),
            n,
            limit,
            "lower bound (achievable)",
        )
    if res.searched is not None:
        acc, note = res.searched.accuracy, res.searched.note
        row(
            f"{res.searched_label} ({note})",
            test,
            acc,
            round(acc * n),
            n,
            limit,
            "lower bound (achievable)",
        )
    row(
        f"rise-time cut ({res.cut_threshold:.0f} ns, fitted on the study's training part)",
        test,
        float(res.cut_correct.mean()),
        int(res.cut_correct.sum()),
        n,
        limit,
        "lower bound (achievable)",
    )
    if res.fresh is not None:
        fresh = res.fresh.figures
        m = len(fresh.correct)
        where = f"fresh ({m})"
        f_limit, f_half = fresh.expected
        lines.append(
            f"| Bayes limit: mean max posterior | {where} | {f_limit:.4f} | "
            f"{fmt_interval(f_limit - f_half, f_limit + f_half)} | estimate (same population, "
            "slightly high: pile-up) | 1.000 |"
        )
        row(
            "Bayes classifier: likelihood-ratio decision",
            where,
            fresh.accuracy,
            int(fresh.correct.sum()),
            m,
            f_limit,
            "lower bound (same population)",
        )
    lines += [
        "",
        "Intervals: Clopper-Pearson over events for accuracies; mean +- 1.96 standard errors "
        "over events for the mean max posterior. Rows on the same events are paired, so their "
        "differences are known better than the separate intervals suggest:",
        "",
    ]
    comparisons: list[tuple[str, NDArray[np.bool_]]] = [("rise-time cut", res.cut_correct)]
    if res.network is not None and res.network.correct is not None:
        comparisons.insert(0, ("network cross-check", res.network.correct))
    for name, other in comparisons:
        d, lo, hi = paired_difference(final.correct, other)
        lines.append(
            f"- likelihood ratio minus {name}: {d:+.4f} [{lo:+.4f}, {hi:+.4f}] "
            f"({int(np.sum(final.correct != other))} events where they disagree)"
        )

    lines += ["", "## Monte Carlo and grid stability (test events)", ""]
    lines.append(
        "| integration | latent points X-ray / gamma | accuracy | mean max posterior | s |"
    )
    lines.append("|---|---|---|---|---|")
    for figures in (res.base, res.doubled):
        if figures is None:
            continue
        mean, half = figures.expected
        ev = figures.evidence
        lines.append(
            f"| {figures.settings.describe()} | {ev.templates['xray']} / {ev.templates['gamma']} "
            f"| {figures.accuracy:.4f} | {mean:.4f} +- {half:.4f} | {ev.seconds:.0f} |"
        )
    if res.doubled is not None:
        flips = int(np.sum((res.base.posterior > 0.5) != (res.doubled.posterior > 0.5)))
        shift = np.abs(res.base.evidence.log_odds(0.5) - res.doubled.evidence.log_odds(0.5))
        lines += [
            "",
            f"Doubling every sample count (fresh Sobol scrambling) changes {flips} of {n} "
            f"decisions; the log-likelihood ratio moves by {np.median(shift):.4f} nats (median), "
            f"{np.quantile(shift, 0.99):.3f} (99th percentile), {shift.max():.3f} (max). The "
            "test-event figures above use the doubled setting"
            + (", the fresh events the first." if res.fresh is not None else "."),
        ]
    lines += [
        "",
        "Neglected second-order term of the electron-count covariance: at most "
        f"{final.evidence.second_order:.4f} nats.",
        "",
        "## Checks of the likelihood model",
        "",
    ]
    pile = events.truth["pileup"] == 1
    for name, mask in (("without pile-up", ~pile), ("with pile-up", pile)):
        if not mask.any():
            continue
        conf = np.maximum(final.posterior[mask], 1 - final.posterior[mask])
        text = (
            f"- Test events {name} ({int(mask.sum())}): likelihood ratio "
            f"{final.correct[mask].mean():.4f}, mean max posterior {conf.mean():.4f}"
        )
        if res.network is not None and res.network.correct is not None:
            text += f", network {res.network.correct[mask].mean():.4f}"
        lines.append(text + f", rise-time cut {res.cut_correct[mask].mean():.4f}")
    if res.fresh is not None:
        fresh = res.fresh.figures
        for name, mask in (
            ("without pile-up", ~res.fresh.pileup),
            ("with pile-up", res.fresh.pileup),
        ):
            conf = np.maximum(fresh.posterior[mask], 1 - fresh.posterior[mask])
            lines.append(
                f"- Fresh events {name} ({int(mask.sum())}): likelihood ratio "
                f"{fresh.correct[mask].mean():.4f}, mean max posterior {conf.mean():.4f}"
            )
    check = res.check
    lines += [
        f"- Each test event without pile-up ({check.n_events}) against the model at its true "
        f"latents: chi-square per sample {check.chi2_mean:.4f} (exact model: 1), spread "
        f"{check.chi2_sd:.4f} (exact: {check.chi2_expected_sd:.4f}).",
        f"- Trigger-walk model against the true walks: randomised PIT mean "
        f"{check.walk_pit_mean:.3f} (exact: 0.5), KS distance from uniform {check.walk_pit_ks:.3f} "
        f"(5% critical value {check.walk_ks_critical:.3f}).",
        "",
    ]
    if res.fresh is not None:
        lines.append(
            f"Calibration on the {int((~res.fresh.pileup).sum())} fresh events without pile-up "
            "(accuracy equals mean max posterior in every bin if the posterior is right):"
        )
        lines.append("")
        _calibration(lines, res.fresh.figures, ~res.fresh.pileup)
    else:
        lines.append("Calibration on the test events without pile-up:")
        lines.append("")
        _calibration(lines, final, ~pile)
    if res.network is not None:
        net = res.network
        lines += [
            "",
            f"Network: {net.n_train} training events ({net.n_train / events.n_train:.3g}x the "
            f"study's {events.n_train}), {net.seconds:.0f} s with simulation; validation "
            "accuracy by epoch: "
            + ", ".join(f"{r.get('val_accuracy', float('nan')):.4f}" for r in net.reports),
        ]
    lines += ["", f"Total wall time {time.perf_counter() - started:.0f} s."]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- main


def main(argv: Sequence[str] | None = None) -> int:
    """Run the estimate and print (and optionally write) the report."""
    args = parse_args(argv)
    started = time.perf_counter()
    events = study_test_events(args.study, args.overrides)
    if args.events:
        keep = slice(0, args.events)
        events.waveforms = events.waveforms[keep]
        events.labels = events.labels[keep]
        events.truth = {k: v[keep] for k, v in events.truth.items()}
        events.indices = events.indices[keep]
    say(
        f"{len(events.labels)} test events of {args.study} (reproduced by re-simulation: "
        f"{events.reproduced})"
    )
    noise = NoiseModel.from_config(events.cfg)
    projected = noise.project(events.waveforms)
    settings = Settings(
        shape_samples=args.shape_samples,
        drift_samples=args.drift_samples,
        charge_samples=args.charge_samples,
        t0_step_xray=args.t0_step_xray,
        t0_step_gamma=args.t0_step_gamma,
        qmc_seed=args.qmc_seed,
    )
    base = bayes_figures(events.labels, events.cfg, projected, noise, settings)
    say(
        f"likelihood: accuracy {base.accuracy:.4f}, mean max posterior {base.expected[0]:.4f} "
        f"({base.evidence.seconds:.0f} s)"
    )
    doubled = None
    if not args.no_doubling:
        doubled = bayes_figures(events.labels, events.cfg, projected, noise, settings.doubled())
        say(
            f"doubled: accuracy {doubled.accuracy:.4f}, mean max posterior "
            f"{doubled.expected[0]:.4f} ({doubled.evidence.seconds:.0f} s)"
        )
    check = model_check(events, noise)
    say(f"model check: chi2/n {check.chi2_mean:.4f}, walk PIT KS {check.walk_pit_ks:.3f}")
    fresh = None
    if args.fresh_events > 0:
        fresh = fresh_sample(events, noise, settings, args.fresh_events)
        say(
            f"fresh events: accuracy {fresh.figures.accuracy:.4f}, mean max posterior "
            f"{fresh.figures.expected[0]:.4f} ({fresh.figures.evidence.seconds:.0f} s)"
        )
    cut_correct, threshold = rise_time_cut(events)
    searched: Searched | None = None
    if args.curves is not None:
        searched = best_searched(args.curves)
    elif args.storage is not None and args.study_name is not None:
        searched = best_in_storage(args.storage, args.study_name)
    elif args.searched_accuracy is not None:
        searched = Searched(args.searched_accuracy, "given with --searched-accuracy")
    network = network_crosscheck(events, args, searched) if args.network else None
    results = Results(
        study=" ".join([str(args.study), *(f"--set {item}" for item in args.overrides)]),
        events=events,
        base=base,
        doubled=doubled,
        check=check,
        cut_correct=cut_correct,
        cut_threshold=threshold,
        fresh=fresh,
        network=network,
        searched=searched,
        searched_label=args.searched_label,
    )
    report = build_report(results, started)
    print(report)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(report)
    return 0


def say(text: str) -> None:
    """Progress to stderr, so that stdout is the report alone."""
    print(text, file=sys.stderr, flush=True)


if __name__ == "__main__":
    sys.exit(main())
