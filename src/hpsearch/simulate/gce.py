"""Photon-count maps of the Galactic-Center gamma-ray excess (seed task ``gce``).

Why a simulator: the seed study (Caron, Gomez-Vargas, Hendriks, Ruiz de Austri, JCAP 05 (2018)
058, arXiv:1708.06706) trained CNNs on Fermi-LAT maps made with the Fermi tools and GALPROP
background models that are not shipped with it. This module writes maps of the same kind (one
energy band, 1-6 GeV, 120x120 pixels around the Galactic Center), with the same five simulation
parameters (the point-source fraction ``f_src``, the source-count slope ``alpha``, the gNFW slope
``gamma``, the background model, the source positions) and the same built-in domain-shift test
(five labelled background models: train on some, test on the others). The target is the
realised fraction of the excess photons that come from point sources (PS). Pure numpy.

**Geometry** (*estimate*: a flat projection, after smsharma/fermi-gce-flows). A square
region of interest (ROI) of ``roi_deg`` (default 40 deg, i.e. |l|, |b| <= 20 deg as in the seed)
centred on the Galactic Center, cut into ``n_pixels`` x ``n_pixels`` pixels of
``pixel_deg = roi_deg / n_pixels`` (default 1/3 deg) on a plate-carree grid in Galactic
longitude ``l`` and latitude ``b``. Row 0 is the highest latitude, column 0 the highest
longitude (sky-map convention: ``l`` grows to the left). A pixel's solid angle is
``pixel_rad**2 * cos(b)`` sr; the exposure is taken as uniform over the ROI (*estimate*: the
LAT's exposure varies by ~10-20% over it). The angle from the Galactic Center of a direction
is exact, ``cos(psi) = cos(b) cos(l)``; PSF displacements are applied in the flat ``(l, b)``
plane (good to ``1 - cos(20 deg)`` = 6% in longitude at the ROI's edge). Everything is computed
on a grid padded by ``margin`` pixels (``ceil(4 * psf_sigma_deg_max / pixel_deg) + 1``), so
that emission just outside the ROI is smeared into it by the PSF.

**Excess, smooth part.** Generalised NFW density (Navarro, Frenk & White, ApJ 462 (1996) 563,
with a free inner slope):

    rho(r) = (r / r_s)**-gamma * (1 + r / r_s)**(gamma - 3)

with ``r_s = 20 kpc`` (the usual Milky-Way value in GCE fits, e.g. Calore, Cholis & Weniger,
JCAP 03 (2015) 038) and the Sun at ``R_sun = 8.2 kpc`` (GRAVITY Collaboration, A&A 625 (2019)
L10: 8.18 kpc). Dark-matter annihilation scales as rho squared, so the intensity is the line of
sight (LOS) integral

    J(psi) = integral_0^s_max rho(r(s))**2 ds,   r(s)**2 = R_sun**2 + s**2 - 2 R_sun s cos(psi)

(``s_max`` = 60 kpc, where ``rho**2 ~ r**-6`` is negligible). ``J`` is integrated numerically
once per process on a log grid of ``psi`` (substituting ``s = R_sun cos(psi) + b sinh(u)``, with
``b = R_sun sin(psi)`` the impact parameter, which resolves the ``r**-2 gamma`` cusp), and
averaged over each pixel with 4x4 sub-samples; for the pixels nearest the center, where
``J ~ psi**(1 - 2 gamma)`` diverges (integrably), with 40x40 and 80x80 sub-samples
Richardson-extrapolated (their error falls as ``k**-(3 - 2 gamma)``). Per map
``gamma ~ U(gamma_min, gamma_max)``, default [1.0, 1.3] (*estimate*: the seed fixed 1.1; fits
of the excess give ~1.1-1.3, Calore et al. 2015; Daylan et al., Phys. Dark Univ. 12 (2016) 1).
Templates are made on a grid of ``gamma`` nodes 0.025 apart and linearly interpolated between
neighbours.

**Excess, point sources.** The excess's expected photon count in the ROI,
``excess_expected ~ U(excess_counts_min, excess_counts_max) * excess_scale(model)`` (default
60 000-80 000 photons: *estimate*, a GCE flux of ~4e-7 ph cm^-2 s^-1 in 1-6 GeV over the ROI
(E^2 dN/dE ~ 1e-6 GeV cm^-2 s^-1 sr^-1, Calore et al. 2015) times a LAT exposure of
~2e11 cm^2 s (~7 years), i.e. ~8e4; the seed fixed the excess by its fit to the data for each
background model, our +-14% spread stands for that fit's uncertainty), is split by a target PS
fraction ``f_target ~ U(f_src_min, f_src_max)``. A PS population with the expected PS counts
``f_target * excess_expected`` is built: fluxes ``S`` (in expected photons per source over the
exposure) follow a power law

    dN/dS = A S**alpha,   S_min <= S <= S_max,   alpha ~ U(alpha_min, alpha_max)

with ``S`` in [1, 300] photons (*estimate*: the upper end, ~1.5e-9 ph cm^-2 s^-1, is about the
3FGL detection threshold within a few degrees of the Galactic Center, so every source is
unresolved) and ``alpha`` in [-2.0, -1.2] (*estimate*: the PS flux is carried by the brightest,
near-threshold sources, or equally by every decade at -2, as in the source-count fits of the
excess, Lee et al., PRL 116 (2016) 051103; Bartels, Krishnamurthy & Weniger, PRL 116 (2016)
051102; the seed's slides quote their own ``alpha`` range as [-1.05, 1.05], in a
parametrisation we could not reproduce). Steeper slopes (``alpha_min`` down to -2.5) put the
PS flux in many one- or two-photon sources, whose maps are nearly Poisson: with [-2.5, -1.5]
and ``S`` up to 100, a small neural net on the histograms of each map's residual counts
reached an MAE of only ~0.16, against 0.25 for predicting the mean (measured on 8192 maps),
too close to blind to rank models. The number of sources is Poisson with mean
``f_target * excess_expected / <S>`` (over the padded grid); their positions are drawn from
the (un-smeared) gNFW^2 template, uniform within a pixel; each source emits Poisson(``S``)
photons, each displaced by a 2-D Gaussian PSF of width ``psf_sigma_deg`` (default
0.4 deg, *estimate*: the photon-weighted 68% containment radius of P8R3 SOURCE events over
1-6 GeV is ~0.55 deg, and a 2-D Gaussian's 68% radius is 1.51 sigma; the real PSF has longer
tails). The stored target is the **realised** fraction over the visible (unmasked) ROI pixels,

    f_src = ps_counts / (ps_counts + excess_counts)

(0 when both are 0), not ``f_target``: bright, few sources make it scatter around the target.

**Diffuse background.** Five labelled models, one per map drawn uniformly from
``background_models``. They mirror the seed's five GALPROP models (its backup slide "BG models
used": CR source distribution SNR or Lorimer, CR halo height 4 or 10 kpc, HI spin temperature
150 K or 1e5 K; the seed trained on three and tested on two), each a sum of four templates
normalised to fractions of the total background count (all shapes and fractions *estimates*):

* pi0 + bremsstrahlung, ``n_CR(R, z) * (n_HI + n_H2)`` along the LOS. CR source density
  ``f(R) = (R / R_sun)**a exp(-b (R - R_sun) / R_sun)``: SNR (Case & Bhattacharya, ApJ 504
  (1998) 761: a = 2.0, b = 3.53) or pulsars (Lorimer et al., MNRAS 372 (2006) 777: a = 1.9,
  b = 5.0); diffusion is mimicked by evaluating it at ``sqrt(R**2 + (0.3 z_h)**2)`` and by a
  vertical profile ``max(0, 1 - |z| / z_h)`` (the free-escape solution for a thin source disk).
  HI: 0.5 cm^-3 with a Gaussian scale height of 0.1 kpc (Dickey & Lockman, ARA&A 28 (1990) 215),
  depleted to 30% at R = 0 inside 3 kpc; an optically thick HI correction (spin temperature
  150 K instead of 1e5 K: more HI where the 21-cm line is brightest, the inner-disk plane)
  multiplies it by ``1 + 2 exp(-R**2 / (2 (4 kpc)**2)) exp(-z**2 / (2 (0.1 kpc)**2))``. H2:
  molecular ring ``2 exp(-(R - 4.5)**2 / (2 * 1.5**2))`` cm^-3 (scale height 0.05 kpc) and a
  central molecular zone ``30 exp(-R**2 / (2 * 0.2**2))`` cm^-3 (scale height 0.03 kpc), both
  counted twice (two nuclei per molecule); after Ferriere, RMP 73 (2001) 1031, simplified.
* inverse Compton, ``n_e(R, z) * u(R, z)``: electrons ``f(sqrt(R**2 + (0.15 z_h)**2)) *
  exp(-|z| / (0.25 z_h))`` (they lose energy before filling the halo), radiation field ``u =
  exp(-R / 4 kpc) exp(-|z| / 2 kpc) + 0.1`` (starlight and dust, plus the CMB). A 10 kpc halo
  makes IC several times broader in latitude than a 4 kpc one.
* isotropic: uniform intensity (extragalactic background and misclassified cosmic rays).
* Fermi bubbles: uniform intensity inside two ellipses centred at ``b = +-25 deg`` with
  half-axes 17 deg (in ``l``) and 25 deg (in ``b``), soft-edged over ~1 deg (after Su,
  Slatyer & Finkbeiner, ApJ 724 (2010) 1044).

The LOS integrals run to 20 kpc in 0.05 kpc steps (midpoint rule), sampled three times per
pixel in latitude (the gas disk is thinner than a pixel), over one quadrant of the sky (every
emissivity depends on ``R`` and ``|z|`` only) mirrored to the others, once per process and
model (~0.3 s at 120x120 pixels). Fractions and excess scales per model are in
:data:`BACKGROUND_MODELS`. The fractions (gas 0.49-0.67, IC 0.20-0.36 and larger for the 10 kpc
halo, isotropic 0.05-0.10, bubbles 0.04-0.07) are *estimates* picked inside those plausible
ranges so that the five models' normalised expected maps differ pairwise by 10-31% in L1
distance (a clear domain shift; fits of different GALPROP models to the same data do give
different component shares). A model's ``excess_scale`` is the seed table's
fitted annihilation cross-section for that model divided by 40e-27 cm^3 s^-1 (every model was
fitted to the same data, so a model that explains less leaves a brighter excess). The total
expected background in the ROI is ``background_counts`` (default 1e6: *estimate*, the order of
the 1-6 GeV photons of ~7 years of the LAT within |l|, |b| < 20 deg; the excess is then 6-8%
of the ROI's photons, 14-20% within 5 deg of the center and 21-31% within 2 deg, depending on
the model) times a per-map normalisation
``U(1 - background_jitter, 1 + background_jitter)`` (default +-10%, *estimate*: the spread of
fitted normalisations).

**Noise and mask.** Excess (smooth), background and PS photons are each Poisson (the PS photons
per source), so their sum is Poisson in the total expected counts; the smooth components are
convolved with the same Gaussian PSF as the sources (in Fourier space on the padded grid).
With ``mask_latitude_deg > 0`` the pixel rows whose centre has ``|b| < mask_latitude_deg`` are
zero and count towards no component (the usual analyses mask |b| < 2 deg).

Difficulty (generator 1.0.0, defaults): the realised ``f_src`` is spread evenly over [0, 1]
(std 0.29). The count-statistic baseline (:mod:`hpsearch.simulate.gce_baseline`), fitted on
8192 maps of the seed's three training models, scores MAE 0.106 on 2504 held-out maps of those
models and 0.109 on 1592 maps of the two unseen ones, against 0.25 for predicting the training
mean; its error is largest for the steepest slopes. A network has to beat ~0.10 to be worth
its cost; the seed's CNN reached "up to 10%" on its own simulation.

Speed (numpy only, 2-core machine shared with other jobs): one process makes ~280 maps/s at
120x120 pixels (~460/s at 64x64, ~70/s at 240x240) after ~2-4 s of templates;
``simulate_to_file`` with two workers wrote 8192 maps of 120x120 (472 MB) in 23 s.

Determinism: map ``i`` draws every number from its own stream ``derive_rng(seed, "gce", i)``,
so the same ``(n_events, seed, config)`` gives bit-identical maps whatever the chunking or the
number of worker processes, and a shorter run is a prefix of a longer one.

HDF5 layout written by :func:`simulate_to_file`:

* ``/x``: float32 ``(N, n_pixels, n_pixels, 1)`` photon counts, chunked by 32 maps (optional
  gzip, ``compression="gzip"``).
* ``/y``: float32 ``(N,)``, the realised ``f_src``.
* ``/background_model``: ``S16`` ``(N,)``, the background model's name (for group splits).
* ``/params/<name>``: one ``(N,)`` dataset per :data:`PARAM_FIELDS` entry.
* root attributes: ``task="gce"``, ``generator="hpsearch.simulate.gce"``,
  ``generator_version``, ``seed``, ``n_events``, ``config`` (JSON of :class:`GceConfig`),
  ``background_models`` (JSON list of the models drawn from), ``background_model_definitions``
  (JSON), ``pixel_deg``, ``roi_deg``, ``energy_band_gev`` (JSON ``[1, 6]``), ``units``,
  ``target_names`` (JSON ``["f_src"]``), ``mask_latitude_deg``, ``masked_rows`` (JSON list
  of the all-zero rows) and ``projection`` (the axes' orientation, in words).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from hpsearch.errors import InputError
from hpsearch.seeding import derive_rng
from hpsearch.simulate._chunks import Column, check_run, write_simulation

__all__ = [
    "BACKGROUND_MODELS",
    "ENERGY_BAND_GEV",
    "GENERATOR_VERSION",
    "PARAM_FIELDS",
    "SEED_TEST_MODELS",
    "SEED_TRAIN_MODELS",
    "BackgroundModel",
    "GceConfig",
    "expected_smooth_maps",
    "pixel_mask",
    "simulate_events",
    "simulate_to_file",
]

GENERATOR_VERSION = "1.0.0"
"""Version of the generated data: bump whenever the output for a given seed and config changes."""

ENERGY_BAND_GEV = (1.0, 6.0)
"""The single energy band of the maps, as in the seed (informational: no spectrum is modelled)."""

_SOURCE = "gce"
_CONFIG_SOURCE = "GceConfig"
_BLOCK_EVENTS = 64
"""Maps per worker task unit. Every map has its own RNG stream, so this is a granularity only."""
_X_CHUNK_ROWS = 32
_NAME_DTYPE = "S16"
_GAMMA_STEP = 0.025
_S_MAX_KPC = 60.0
_MAX_SOURCES = 5_000_000


@dataclass(frozen=True)
class BackgroundModel:
    """One diffuse-background model: its physical choices and its template mix.

    Attributes:
        name: Label stored per map in ``/background_model`` (at most 16 ASCII characters).
        cr_source: Cosmic-ray source distribution, ``"snr"`` (Case & Bhattacharya 1998) or
            ``"lorimer"`` (pulsars, Lorimer et al. 2006).
        halo_height_kpc: Half-height of the CR diffusion halo in kpc (4 or 10 in the seed).
        spin_temperature_k: HI spin temperature in K used to turn 21-cm brightness into HI
            column (150 K: optically thick correction; 1e5 K: optically thin).
        gas_fraction: Share of the background counts in pi0 + bremsstrahlung (*estimate*).
        ic_fraction: Share in inverse Compton (*estimate*; larger for the larger halo).
        isotropic_fraction: Share in the isotropic component (*estimate*).
        bubbles_fraction: Share in the Fermi-bubbles template (*estimate*).
        excess_scale: Multiplier of the excess counts for this model: the seed table's fitted
            ``<sigma v>`` in 1e-27 cm^3 s^-1 divided by 40.
    """

    name: str
    cr_source: str
    halo_height_kpc: float
    spin_temperature_k: float
    gas_fraction: float
    ic_fraction: float
    isotropic_fraction: float
    bubbles_fraction: float
    excess_scale: float


BACKGROUND_MODELS: dict[str, BackgroundModel] = {
    model.name: model
    for model in (
        # Seed "Training A": SNR, z = 10 kpc, T_S = 150 K, <sigma v> = 45.59e-27.
        BackgroundModel("snr_z10_ts150", "snr", 10.0, 150.0, 0.49, 0.36, 0.09, 0.06, 45.59 / 40),
        # Seed "Training B": Lorimer, z = 10 kpc, T_S = 1e5 K, <sigma v> = 33.61e-27.
        BackgroundModel("lor_z10_ts1e5", "lorimer", 10.0, 1e5, 0.52, 0.31, 0.10, 0.07, 33.61 / 40),
        # Seed "Training C": Lorimer, z = 4 kpc, T_S = 150 K, <sigma v> = 39.32e-27.
        BackgroundModel("lor_z4_ts150", "lorimer", 4.0, 150.0, 0.66, 0.20, 0.07, 0.07, 39.32 / 40),
        # Seed "Testing A": Lorimer, z = 10 kpc, T_S = 150 K, <sigma v> = 39.63e-27.
        BackgroundModel(
            "lor_z10_ts150", "lorimer", 10.0, 150.0, 0.60, 0.28, 0.05, 0.07, 39.63 / 40
        ),
        # Seed "Testing B": SNR, z = 4 kpc, T_S = 1e5 K, <sigma v> = 42.67e-27.
        BackgroundModel("snr_z4_ts1e5", "snr", 4.0, 1e5, 0.67, 0.23, 0.06, 0.04, 42.67 / 40),
    )
}
"""The built-in background models by name; the first three were the seed's training models."""

SEED_TRAIN_MODELS = ("snr_z10_ts150", "lor_z10_ts1e5", "lor_z4_ts150")
"""The seed's three training background models (the other two were its test models)."""

SEED_TEST_MODELS = ("lor_z10_ts150", "snr_z4_ts1e5")
"""The seed's two held-out test background models."""

_CR_SOURCES = {"snr": (2.0, 3.53), "lorimer": (1.9, 5.0)}
"""``(a, b)`` of ``f(R) = (R / R_sun)**a exp(-b (R - R_sun) / R_sun)`` per CR distribution."""

PARAM_FIELDS: dict[str, type[np.generic]] = {
    # gNFW inner slope of this map's excess.
    "gamma": np.float32,
    # Source-count slope: dN/dS ~ S**alpha.
    "alpha": np.float32,
    # Gaussian PSF width (sigma) in degrees.
    "psf_deg": np.float32,
    # Target PS fraction the population was built for (the label is the realised one, /y).
    "f_src_target": np.float32,
    # Expected excess photons (smooth + PS) in the ROI before masking.
    "excess_expected": np.float32,
    # This map's multiplier of the model's background counts.
    "background_scale": np.float32,
    # Number of point sources on the padded grid (some lie just outside the ROI).
    "n_sources": np.int32,
    # Realised photons of each component in the visible (unmasked) ROI pixels.
    "excess_counts": np.int32,
    "ps_counts": np.int32,
    "background_counts": np.int32,
}
"""Per-map parameters: name -> dtype of its ``(N,)`` array (also ``/params/<name>``)."""


@dataclass(frozen=True)
class GceConfig:
    """Every knob of the gce simulator, with documented defaults (module docstring: formulas).

    Literature values carry their source; *estimate* marks our own numbers. Counts are expected
    photons over the whole exposure in the 1-6 GeV band, angles in degrees, lengths in kpc.

    Attributes:
        n_pixels: Map side in pixels, 16-512 (the seed: 120; 32-240 are sensible).
        roi_deg: Full side of the square ROI in degrees (default 40: |l|, |b| <= 20 deg).
        r_s_kpc: gNFW scale radius, 20 kpc (Calore et al. 2015).
        r_sun_kpc: Sun-Galactic Center distance, 8.2 kpc (GRAVITY 2019).
        gamma_min: Lowest gNFW inner slope drawn per map (*estimate*, seed ~1.1).
        gamma_max: Highest gNFW inner slope drawn per map (< 1.5 keeps J integrable).
        f_src_min: Lowest target PS fraction (uniform draw).
        f_src_max: Highest target PS fraction.
        alpha_min: Steepest source-count slope of ``dN/dS ~ S**alpha`` (*estimate*).
        alpha_max: Flattest source-count slope (*estimate*).
        source_flux_min: Faintest source, in expected photons (*estimate*).
        source_flux_max: Brightest source, in expected photons (*estimate*: about the 3FGL
            detection threshold within a few degrees of the Galactic Center).
        excess_counts_min: Lowest expected excess photons in the ROI before the model's
            ``excess_scale`` (*estimate*).
        excess_counts_max: Highest such count (*estimate*).
        background_counts: Expected background photons in the ROI (*estimate*); 0 gives maps
            of the excess alone.
        background_jitter: Half-width of the uniform per-map background normalisation around
            1 (*estimate*).
        psf_sigma_deg_min: Narrowest Gaussian PSF sigma drawn per map (*estimate*).
        psf_sigma_deg_max: Widest PSF sigma; equal to the minimum for a fixed PSF.
        mask_latitude_deg: Zero the pixel rows with ``|b| <`` this (0: no mask; analyses use 2).
        background_models: Names (from :data:`BACKGROUND_MODELS`) a map's model is drawn from,
            uniformly.
    """

    n_pixels: int = 120
    roi_deg: float = 40.0
    r_s_kpc: float = 20.0
    r_sun_kpc: float = 8.2
    gamma_min: float = 1.0
    gamma_max: float = 1.3
    f_src_min: float = 0.0
    f_src_max: float = 1.0
    alpha_min: float = -2.0
    alpha_max: float = -1.2
    source_flux_min: float = 1.0
    source_flux_max: float = 300.0
    excess_counts_min: float = 60_000.0
    excess_counts_max: float = 80_000.0
    background_counts: float = 1_000_000.0
    background_jitter: float = 0.1
    psf_sigma_deg_min: float = 0.4
    psf_sigma_deg_max: float = 0.4
    mask_latitude_deg: float = 0.0
    background_models: tuple[str, ...] = tuple(BACKGROUND_MODELS)

    def __post_init__(self) -> None:
        """Check every knob, raising :class:`~hpsearch.errors.InputError` with the fix."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name == "background_models":
                self._check_models(value)
            elif field.type in ("int", int):
                if isinstance(value, bool) or not isinstance(value, int | np.integer):
                    _bad(field.name, f"must be an integer, got {value!r}", "give an integer")
            elif isinstance(value, bool) or not isinstance(value, int | float | np.number):
                _bad(field.name, f"must be a number, got {value!r}", "give a number")
            elif not math.isfinite(value):
                _bad(field.name, f"must be finite, got {value!r}", "give a finite number")
        self._check_values()

    def _check_models(self, value: Any) -> None:
        if isinstance(value, str | bytes) or not isinstance(value, tuple | list) or not value:
            _bad(
                "background_models",
                f"must be a non-empty list of model names, got {value!r}",
                f"use some of {list(BACKGROUND_MODELS)}",
            )
        unknown = [name for name in value if name not in BACKGROUND_MODELS]
        if unknown:
            _bad(
                "background_models",
                f"unknown background model(s) {unknown}",
                f"use some of {list(BACKGROUND_MODELS)}",
            )
        if len(set(value)) != len(value):
            _bad("background_models", f"lists a model twice: {list(value)}", "list each once")
        if isinstance(value, list):
            object.__setattr__(self, "background_models", tuple(value))

    def _check_values(self) -> None:
        if not 16 <= self.n_pixels <= 512:
            _bad("n_pixels", f"must lie in [16, 512], got {self.n_pixels}", "use e.g. 120")
        if not 1.0 <= self.roi_deg <= 90.0:
            _bad("roi_deg", f"must lie in [1, 90] deg, got {self.roi_deg}", "use e.g. 40")
        for name in ("r_s_kpc", "r_sun_kpc", "source_flux_min"):
            if getattr(self, name) <= 0:
                _bad(name, f"must be > 0, got {getattr(self, name)!r}", "give a positive value")
        for name in ("excess_counts_min", "background_counts", "background_jitter"):
            if getattr(self, name) < 0:
                _bad(name, f"must be >= 0, got {getattr(self, name)!r}", "give a value >= 0")
        if self.background_jitter >= 1:
            _bad("background_jitter", f"must be < 1, got {self.background_jitter}", "use ~0.1")
        if not (self.gamma_min >= 0.0 and self.gamma_max < 1.5):
            _bad(
                "gamma_min, gamma_max",
                f"must lie in [0, 1.5), got ({self.gamma_min}, {self.gamma_max})",
                "use e.g. [1.0, 1.3] (gamma >= 1.5 makes the central J diverge)",
            )
        for name in ("f_src_min", "f_src_max"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                _bad(name, f"must lie in [0, 1], got {getattr(self, name)!r}", "give a fraction")
        if not 0.0 <= self.psf_sigma_deg_min <= 5.0 or self.psf_sigma_deg_max > 5.0:
            _bad(
                "psf_sigma_deg_min, psf_sigma_deg_max",
                f"must lie in [0, 5] deg, got ({self.psf_sigma_deg_min}, {self.psf_sigma_deg_max})",
                "use ~0.1-0.5 deg",
            )
        if not 0.0 <= self.mask_latitude_deg < self.roi_deg / 2:
            _bad(
                "mask_latitude_deg",
                f"must lie in [0, roi_deg / 2) = [0, {self.roi_deg / 2}), got "
                f"{self.mask_latitude_deg}",
                "use 0 (no mask) or 2",
            )
        pairs = (
            ("gamma_min", "gamma_max"),
            ("f_src_min", "f_src_max"),
            ("alpha_min", "alpha_max"),
            ("source_flux_min", "source_flux_max"),
            ("excess_counts_min", "excess_counts_max"),
            ("psf_sigma_deg_min", "psf_sigma_deg_max"),
        )
        for low, high in pairs:
            if not getattr(self, low) <= getattr(self, high):
                _bad(
                    f"{low}, {high}",
                    f"`{low} <= {high}` must hold, got "
                    f"({getattr(self, low)!r}, {getattr(self, high)!r})",
                    f"make {low} at most {high}",
                )
        worst = (
            self.excess_counts_max
            * 2.0
            / _mean_flux(self.alpha_min, self.source_flux_min, self.source_flux_max)
        )
        if worst > _MAX_SOURCES:
            _bad(
                "source_flux_min",
                f"up to ~{worst:.3g} sources per map (excess_counts_max / mean flux at "
                f"alpha_min), more than {_MAX_SOURCES}",
                "raise source_flux_min or alpha_min, or lower excess_counts_max",
            )

    @property
    def pixel_deg(self) -> float:
        """Pixel side in degrees, ``roi_deg / n_pixels``."""
        return self.roi_deg / self.n_pixels

    @property
    def margin(self) -> int:
        """Pixels of padding on each side: the PSF reach (4 sigma) plus one."""
        return math.ceil(4.0 * self.psf_sigma_deg_max / self.pixel_deg) + 1

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as a plain dict (what the file's ``config`` attribute holds)."""
        values = dataclasses.asdict(self)
        values["background_models"] = list(self.background_models)
        return values

    def to_json(self) -> str:
        """Return the knobs as a JSON string with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = _CONFIG_SOURCE) -> GceConfig:
        """Build a config from a dict, e.g. a file's ``config`` attribute or a study section.

        Args:
            values: Knob names to values; missing knobs keep their defaults.
            source: Where the values came from, for error messages.

        Raises:
            InputError: On an unknown knob or a bad value.
        """
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InputError(
                source,
                unknown[0],
                f"unknown gce simulator setting(s) {unknown}",
                f"use one of {sorted(known)}",
            )
        converted = dict(values)
        if isinstance(converted.get("n_pixels"), float) and converted["n_pixels"].is_integer():
            converted["n_pixels"] = int(converted["n_pixels"])
        if isinstance(converted.get("background_models"), list):
            converted["background_models"] = tuple(converted["background_models"])
        return cls(**converted)


def _bad(key: str, problem: str, fix: str) -> None:
    raise InputError(_CONFIG_SOURCE, key, problem, fix)


# ------------------------------------------------------------------------------ source counts


def _mean_flux(alpha: float, s_min: float, s_max: float) -> float:
    """Mean of ``S`` under ``dN/dS ~ S**alpha`` on ``[s_min, s_max]``, in photons."""
    if s_max <= s_min:
        return s_min

    def integral(power: float) -> float:
        """``integral_{s_min}^{s_max} S**power dS``, with the logarithmic case."""
        if abs(power + 1.0) < 1e-9:
            return math.log(s_max / s_min)
        return float((s_max ** (power + 1.0) - s_min ** (power + 1.0)) / (power + 1.0))

    return integral(alpha + 1.0) / integral(alpha)


def _draw_fluxes(
    rng: np.random.Generator, n: int, alpha: float, s_min: float, s_max: float
) -> NDArray[np.float64]:
    """``n`` fluxes from ``dN/dS ~ S**alpha`` on ``[s_min, s_max]`` by inverse transform."""
    u = rng.random(n)
    if s_max <= s_min:
        return np.full(n, s_min)
    if abs(alpha + 1.0) < 1e-9:
        return np.asarray(s_min * (s_max / s_min) ** u)
    power = alpha + 1.0
    lo, hi = s_min**power, s_max**power
    return np.asarray((lo + u * (hi - lo)) ** (1.0 / power))


# ------------------------------------------------------------------------------------ templates


@dataclass(frozen=True)
class _Grid:
    """The padded pixel grid: sizes and pixel-centre coordinates (deg)."""

    n: int
    margin: int
    pixel_deg: float

    @property
    def size(self) -> int:
        return self.n + 2 * self.margin

    def centres(self, oversample: int = 1) -> NDArray[np.float64]:
        """Sub-pixel centre coordinates along one axis, from the high end (row/column 0)."""
        k = oversample
        index = (np.arange(self.size * k) + 0.5) / k  # continuous pixel index of sub-centres
        return np.asarray((self.size / 2.0 - index) * self.pixel_deg)


def _gnfw_j(
    psi_rad: NDArray[np.float64], gamma: float, r_s: float, r_sun: float
) -> NDArray[np.float64]:
    """LOS integral of gNFW rho**2 (in rho_s**2 kpc) at angles ``psi_rad`` from the center."""
    impact = r_sun * np.sin(psi_rad)[:, None]
    along = r_sun * np.cos(psi_rad)[:, None]
    u_lo = np.arcsinh(-along / impact)
    u_hi = np.arcsinh((_S_MAX_KPC - along) / impact)
    steps = np.linspace(0.0, 1.0, 4001)[None, :]
    u = u_lo + (u_hi - u_lo) * steps
    t = impact * np.sinh(u)
    r = np.sqrt(impact**2 + t**2) / r_s
    rho = r ** (-gamma) * (1.0 + r) ** (gamma - 3.0)
    integrand = rho**2 * impact * np.cosh(u)
    du = (u_hi - u_lo)[:, 0] / (steps.shape[1] - 1)
    total = (integrand[:, 1:] + integrand[:, :-1]).sum(axis=1) * 0.5 * du
    return np.asarray(total)


def _excess_template(grid: _Grid, gamma: float, r_s: float, r_sun: float) -> NDArray[np.float64]:
    """gNFW^2 counts template on the padded grid (before PSF), summing to 1 over the ROI."""
    psi_max = math.radians(grid.size * grid.pixel_deg)
    psi_grid = np.geomspace(1e-7, psi_max, 600)
    log_j = np.log(_gnfw_j(psi_grid, gamma, r_s, r_sun))
    log_psi = np.log(psi_grid)

    def average(lat: NDArray[np.float64], lon: NDArray[np.float64], k: int) -> NDArray[np.float64]:
        """Mean of J * cos(b) over ``k x k`` sub-samples per pixel of the given sub-grid."""
        b, l_ = np.meshgrid(np.radians(lat), np.radians(lon), indexing="ij")
        psi = np.arccos(np.clip(np.cos(b) * np.cos(l_), -1.0, 1.0))
        psi = np.maximum(psi, 1e-7)
        values = np.exp(np.interp(np.log(psi), log_psi, log_j)) * np.cos(b)
        rows, cols = values.shape[0] // k, values.shape[1] // k
        return np.asarray(values.reshape(rows, k, cols, k).mean(axis=(1, 3)))

    coarse = 4  # even: no sub-sample lands on the center, where J diverges
    centres = grid.centres(coarse)
    template = average(centres, centres, coarse)
    # The 5x5 (odd size) or 6x6 (even size) pixels around the center hold the integrable
    # cusp J ~ psi**(1 - 2 gamma): the error of a k x k sub-sampled mean there falls only as
    # k**-(3 - 2 gamma), so take k = 40 and 80 and Richardson-extrapolate to k -> infinity.
    lo, hi = max((grid.size - 1) // 2 - 2, 0), min(grid.size // 2 + 3, grid.size)
    means = []
    for fine in (40, 80):
        sub = grid.centres(fine)[lo * fine : hi * fine]
        means.append(average(sub, sub, fine))
    ratio = 0.5 ** (3.0 - 2.0 * gamma)
    template[lo:hi, lo:hi] = means[1] + (means[1] - means[0]) * ratio / (1.0 - ratio)
    m = grid.margin
    return np.asarray(template / template[m : m + grid.n, m : m + grid.n].sum())


def _cr_profile(radius: NDArray[np.float64], cr_source: str, r_sun: float) -> NDArray[np.float64]:
    """CR source density ``(R / R_sun)**a exp(-b (R - R_sun) / R_sun)`` (relative units)."""
    a, b = _CR_SOURCES[cr_source]
    return np.asarray((radius / r_sun) ** a * np.exp(-b * (radius - r_sun) / r_sun))


def _gas_emissivity(
    radius: NDArray[np.float64], z: NDArray[np.float64], model: BackgroundModel, r_sun: float
) -> NDArray[np.float64]:
    """pi0 + bremsstrahlung emissivity ``n_CR * (n_HI + 2 n_H2)`` (relative units)."""
    z_h = model.halo_height_kpc
    n_cr = _cr_profile(np.sqrt(radius**2 + (0.3 * z_h) ** 2), model.cr_source, r_sun)
    n_cr = n_cr * np.clip(1.0 - np.abs(z) / z_h, 0.0, None)
    hole = np.where(radius < 3.0, 0.3 + 0.7 * radius / 3.0, 1.0)
    disk = np.exp(-(z**2) / (2 * 0.1**2))
    n_hi = 0.5 * hole * disk
    if model.spin_temperature_k < 1000.0:
        n_hi = n_hi * (1.0 + 2.0 * np.exp(-(radius**2) / (2 * 4.0**2)) * disk)
    ring = 2.0 * np.exp(-((radius - 4.5) ** 2) / (2 * 1.5**2)) * np.exp(-(z**2) / (2 * 0.05**2))
    cmz = 30.0 * np.exp(-(radius**2) / (2 * 0.2**2)) * np.exp(-(z**2) / (2 * 0.03**2))
    return np.asarray(n_cr * (n_hi + 2.0 * (ring + cmz)))


def _ic_emissivity(
    radius: NDArray[np.float64], z: NDArray[np.float64], model: BackgroundModel, r_sun: float
) -> NDArray[np.float64]:
    """Inverse-Compton emissivity ``n_e * u_ISRF`` (relative units)."""
    z_h = model.halo_height_kpc
    n_e = _cr_profile(np.sqrt(radius**2 + (0.15 * z_h) ** 2), model.cr_source, r_sun)
    n_e = n_e * np.exp(-np.abs(z) / (0.25 * z_h))
    field = np.exp(-radius / 4.0) * np.exp(-np.abs(z) / 2.0) + 0.1
    return np.asarray(n_e * field)


def _bubbles(grid: _Grid) -> NDArray[np.float64]:
    """Fermi-bubbles intensity: two soft-edged ellipses at ``b = +-25 deg`` (relative units)."""
    lat = grid.centres(1)[:, None]
    lon = grid.centres(1)[None, :]
    d = np.sqrt((lon / 17.0) ** 2 + ((np.abs(lat) - 25.0) / 25.0) ** 2)
    return np.asarray(1.0 / (1.0 + np.exp((d - 1.0) / 0.05)))


def _background_template(grid: _Grid, model: BackgroundModel, r_sun: float) -> NDArray[np.float64]:
    """The model's background counts template on the padded grid, summing to 1 over the ROI."""
    m, n = grid.margin, grid.n
    k = 3
    # Every emissivity depends on R and |z| only, so the sky is symmetric under l -> -l and
    # b -> -b (the grid is symmetric about the center): integrate one quadrant and mirror it.
    rows, cols = grid.size * k, grid.size
    half_rows, half_cols = (rows + 1) // 2, (cols + 1) // 2
    gas_quadrant = np.zeros((half_rows, half_cols))
    ic_quadrant = np.zeros_like(gas_quadrant)
    rows_per_pass = max(1, 2_000_000 // (half_cols * 400))
    for start in range(0, half_rows, rows_per_pass):
        stop = min(start + rows_per_pass, half_rows)
        radius, z, step = _los_points(grid, r_sun, k, start, stop, half_cols)
        gas_quadrant[start:stop] = _gas_emissivity(radius, z, model, r_sun).sum(axis=-1) * step
        ic_quadrant[start:stop] = _ic_emissivity(radius, z, model, r_sun).sum(axis=-1) * step
    mirror_rows = np.minimum(np.arange(rows), rows - 1 - np.arange(rows))
    mirror_cols = np.minimum(np.arange(cols), cols - 1 - np.arange(cols))
    gas = gas_quadrant[mirror_rows][:, mirror_cols]
    ic = ic_quadrant[mirror_rows][:, mirror_cols]
    cos_sub = np.cos(np.radians(grid.centres(k)))[:, None]

    def pixels(values: NDArray[np.float64]) -> NDArray[np.float64]:
        """Sub-rows weighted by cos(b) and averaged to pixels; then normalised over the ROI."""
        weighted = (values * cos_sub).reshape(grid.size, k, grid.size).mean(axis=1)
        return np.asarray(weighted / weighted[m : m + n, m : m + n].sum())

    cos_b = np.cos(np.radians(grid.centres(1)))[:, None] * np.ones((1, grid.size))
    iso = cos_b / cos_b[m : m + n, m : m + n].sum()
    bubbles = _bubbles(grid) * cos_b
    bubbles = bubbles / bubbles[m : m + n, m : m + n].sum()
    return np.asarray(
        model.gas_fraction * pixels(gas)
        + model.ic_fraction * pixels(ic)
        + model.isotropic_fraction * iso
        + model.bubbles_fraction * bubbles
    )


def _los_points(
    grid: _Grid, r_sun: float, oversample_b: int, start: int, stop: int, columns: int
) -> tuple[NDArray[np.float64], NDArray[np.float64], float]:
    """Galactocentric ``(R, z)`` in kpc along the LOS of latitude sub-rows ``start:stop``.

    Sub-rows are the padded grid's rows oversampled ``oversample_b`` times in latitude, done
    a few at a time to bound memory; only the first ``columns`` columns are computed. Returns
    ``R`` and ``z`` of shape ``(stop - start, columns, steps)`` and the step length in kpc
    (midpoint rule, 0.05 kpc steps to 20 kpc).
    """
    step = 0.05
    s = np.arange(step / 2, 20.0, step)
    lat = np.radians(grid.centres(oversample_b)[start:stop])[:, None, None]
    lon = np.radians(grid.centres(1)[:columns])[None, :, None]
    cos_b = np.cos(lat)
    x = r_sun - s * cos_b * np.cos(lon)
    y = s * cos_b * np.sin(lon)
    radius = np.sqrt(x**2 + y**2)
    z = np.broadcast_to(s * np.sin(lat), radius.shape)
    return radius, np.asarray(z), step


class _Sky:
    """Per-process templates of one config: gNFW^2 per gamma node, background per model.

    Templates are made lazily (a model or a gamma node no map asked for costs nothing) and kept
    for the life of the process, together with their 2-D FFTs (the PSF is applied in Fourier
    space) and, for the excess, the cumulative sums that source positions are drawn from.
    """

    def __init__(self, cfg: GceConfig) -> None:
        self.cfg = cfg
        self.grid = _Grid(cfg.n_pixels, cfg.margin, cfg.pixel_deg)
        size = self.grid.size
        self.freq_sq = np.fft.fftfreq(size)[:, None] ** 2 + np.fft.rfftfreq(size)[None, :] ** 2
        self._excess: dict[int, tuple[NDArray[np.complex128], NDArray[np.float64]]] = {}
        self._background: dict[str, NDArray[np.complex128]] = {}
        if cfg.gamma_max > cfg.gamma_min:
            count = math.ceil((cfg.gamma_max - cfg.gamma_min) / _GAMMA_STEP - 1e-9) + 1
            self.gamma_nodes = np.linspace(cfg.gamma_min, cfg.gamma_max, count)
        else:
            self.gamma_nodes = np.array([cfg.gamma_min])
        m, n = self.grid.margin, self.grid.n
        self.roi = (slice(m, m + n), slice(m, m + n))

    def _node(self, index: int) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
        if index not in self._excess:
            template = _excess_template(
                self.grid, float(self.gamma_nodes[index]), self.cfg.r_s_kpc, self.cfg.r_sun_kpc
            )
            self._excess[index] = (np.fft.rfft2(template), np.cumsum(template.ravel()))
        return self._excess[index]

    def excess(self, gamma: float) -> tuple[NDArray[np.complex128], NDArray[np.float64]]:
        """FFT and cumulative sum of the gNFW^2 template at ``gamma`` (ROI sum 1, no PSF)."""
        nodes = self.gamma_nodes
        if len(nodes) == 1:
            return self._node(0)
        index = int(np.clip(np.searchsorted(nodes, gamma) - 1, 0, len(nodes) - 2))
        weight = (gamma - nodes[index]) / (nodes[index + 1] - nodes[index])
        (f0, c0), (f1, c1) = self._node(index), self._node(index + 1)
        return (1 - weight) * f0 + weight * f1, (1 - weight) * c0 + weight * c1

    def background(self, name: str) -> NDArray[np.complex128]:
        """FFT of the model's background template (ROI sum 1, no PSF)."""
        if name not in self._background:
            template = _background_template(self.grid, BACKGROUND_MODELS[name], self.cfg.r_sun_kpc)
            self._background[name] = np.fft.rfft2(template)
        return self._background[name]

    def smear(self, spectrum: NDArray[np.complex128], psf_deg: float) -> NDArray[np.float64]:
        """Inverse FFT after a Gaussian PSF of ``psf_deg``, cropped to the ROI, clipped at 0."""
        sigma = psf_deg / self.grid.pixel_deg
        transfer = np.exp(-2.0 * math.pi**2 * sigma**2 * self.freq_sq)
        image = np.fft.irfft2(spectrum * transfer, s=(self.grid.size, self.grid.size))
        return np.asarray(np.clip(image[self.roi], 0.0, None))


@functools.lru_cache(maxsize=4)
def _sky(cfg: GceConfig) -> _Sky:
    """The process's templates for ``cfg`` (cached: templates cost ~1 s per model at 120 px)."""
    return _Sky(cfg)


def pixel_mask(config: GceConfig | None = None) -> NDArray[np.bool_]:
    """Boolean ``(n_pixels, n_pixels)`` map, True where a pixel is masked (``|b| < cut``).

    Args:
        config: The simulator config; ``None`` means the defaults.

    Returns:
        True on the pixel rows whose centre latitude is below ``mask_latitude_deg`` in
        magnitude (none when the cut is 0).
    """
    cfg = GceConfig() if config is None else config
    n = cfg.n_pixels
    lat = (n / 2.0 - (np.arange(n) + 0.5)) * cfg.pixel_deg
    rows = np.abs(lat) < cfg.mask_latitude_deg
    return np.repeat(rows[:, None], n, axis=1)


def expected_smooth_maps(
    config: GceConfig | None,
    background_model: str,
    gamma: float,
    psf_deg: float,
    excess_counts: float,
    background_counts: float,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Expected counts of the smooth excess and of the background, after the PSF, unmasked.

    What a map's Poisson draws are made from (a PS-free map is Poisson in their sum). Useful
    to check the simulator and for template fits.

    Args:
        config: The simulator config (geometry, ``r_s``, ``R_sun``); ``None``: the defaults.
        background_model: A name from :data:`BACKGROUND_MODELS`.
        gamma: gNFW inner slope (inside the config's range).
        psf_deg: Gaussian PSF sigma in degrees.
        excess_counts: Expected smooth excess photons in the ROI (before the PSF's leak).
        background_counts: Expected background photons in the ROI.

    Returns:
        ``(excess, background)``: float64 ``(n_pixels, n_pixels)`` expected counts per pixel.

    Raises:
        InputError: On an unknown model or a ``gamma`` outside the config's range.
    """
    cfg = GceConfig() if config is None else config
    if background_model not in BACKGROUND_MODELS:
        raise InputError(
            _SOURCE,
            "background_model",
            f"unknown model {background_model!r}",
            f"use one of {list(BACKGROUND_MODELS)}",
        )
    if not cfg.gamma_min <= gamma <= cfg.gamma_max:
        raise InputError(
            _SOURCE,
            "gamma",
            f"{gamma} is outside [{cfg.gamma_min}, {cfg.gamma_max}]",
            "pass a gamma inside the config's range",
        )
    sky = _sky(cfg)
    excess_fft, _ = sky.excess(gamma)
    return (
        excess_counts * sky.smear(excess_fft, psf_deg),
        background_counts * sky.smear(sky.background(background_model), psf_deg),
    )


# ------------------------------------------------------------------------------------ the maps


def _simulate_map(
    rng: np.random.Generator, sky: _Sky, cfg: GceConfig, visible: NDArray[np.bool_]
) -> tuple[NDArray[np.float32], str, dict[str, float]]:
    """One map: counts ``(n, n)``, its background model's name, and its parameters."""
    name = cfg.background_models[int(rng.integers(len(cfg.background_models)))]
    model = BACKGROUND_MODELS[name]
    gamma = float(rng.uniform(cfg.gamma_min, cfg.gamma_max))
    alpha = float(rng.uniform(cfg.alpha_min, cfg.alpha_max))
    psf = float(rng.uniform(cfg.psf_sigma_deg_min, cfg.psf_sigma_deg_max))
    f_target = float(rng.uniform(cfg.f_src_min, cfg.f_src_max))
    excess = float(rng.uniform(cfg.excess_counts_min, cfg.excess_counts_max)) * model.excess_scale
    scale = float(rng.uniform(1.0 - cfg.background_jitter, 1.0 + cfg.background_jitter))

    excess_fft, cumulative = sky.excess(gamma)
    # Smooth components: one inverse FFT for both (stacked), then independent Poisson draws.
    spectra = np.stack(
        [
            (1.0 - f_target) * excess * excess_fft,
            scale * cfg.background_counts * sky.background(name),
        ]
    )
    sigma = psf / sky.grid.pixel_deg
    transfer = np.exp(-2.0 * math.pi**2 * sigma**2 * sky.freq_sq)
    size = sky.grid.size
    means = np.fft.irfft2(spectra * transfer, s=(size, size))[(slice(None), *sky.roi)]
    means = np.clip(means, 0.0, None) * visible
    smooth_counts = rng.poisson(means[0])
    background_counts = rng.poisson(means[1])

    # Point sources over the padded grid, positions from the gNFW^2 template.
    mean_ps = f_target * excess * float(cumulative[-1])
    n_sources = (
        int(rng.poisson(mean_ps / _mean_flux(alpha, cfg.source_flux_min, cfg.source_flux_max)))
        if mean_ps > 0
        else 0
    )
    fluxes = _draw_fluxes(rng, n_sources, alpha, cfg.source_flux_min, cfg.source_flux_max)
    pixel = np.searchsorted(cumulative, rng.random(n_sources) * cumulative[-1], side="right")
    pixel = np.minimum(pixel, size * size - 1)
    row = pixel // size + rng.random(n_sources)
    col = pixel % size + rng.random(n_sources)
    photons = rng.poisson(fluxes)
    total = int(photons.sum())
    photon_row = np.repeat(row, photons) + sigma * rng.standard_normal(total)
    photon_col = np.repeat(col, photons) + sigma * rng.standard_normal(total)
    m, n = sky.grid.margin, sky.grid.n
    r = np.floor(photon_row).astype(np.int64) - m
    c = np.floor(photon_col).astype(np.int64) - m
    inside = (r >= 0) & (r < n) & (c >= 0) & (c < n)
    ps_map = np.bincount(r[inside] * n + c[inside], minlength=n * n).reshape(n, n) * visible

    ps_total = int(ps_map.sum())
    smooth_total = int(smooth_counts.sum())
    counts = (smooth_counts + background_counts + ps_map).astype(np.float32)
    params = {
        "gamma": gamma,
        "alpha": alpha,
        "psf_deg": psf,
        "f_src_target": f_target,
        "excess_expected": excess,
        "background_scale": scale,
        "n_sources": n_sources,
        "excess_counts": smooth_total,
        "ps_counts": ps_total,
        "background_counts": int(background_counts.sum()),
    }
    return counts, name, params


def _simulate_range(seed: int, cfg: GceConfig, start: int, stop: int) -> dict[str, np.ndarray]:
    """Maps ``start`` to ``stop`` as one array per file column (module level: picklable)."""
    sky = _sky(cfg)
    visible = ~pixel_mask(cfg)
    count = stop - start
    n = cfg.n_pixels
    x = np.empty((count, n, n, 1), dtype=np.float32)
    y = np.empty(count, dtype=np.float32)
    names = np.empty(count, dtype=_NAME_DTYPE)
    params = {name: np.empty(count, dtype=dtype) for name, dtype in PARAM_FIELDS.items()}
    for k, index in enumerate(range(start, stop)):
        counts, name, values = _simulate_map(derive_rng(seed, _SOURCE, index), sky, cfg, visible)
        x[k, :, :, 0] = counts
        names[k] = name.encode("ascii")
        for key, value in values.items():
            params[key][k] = value
        ps, smooth = int(values["ps_counts"]), int(values["excess_counts"])
        y[k] = ps / (ps + smooth) if ps + smooth > 0 else 0.0
    columns: dict[str, np.ndarray] = {"x": x, "y": y, "background_model": names}
    columns.update({f"params/{key}": value for key, value in params.items()})
    return columns


def simulate_events(
    n_events: int, seed: int, config: GceConfig | None = None
) -> dict[str, np.ndarray]:
    """Simulate ``n_events`` maps in memory.

    Args:
        n_events: Number of maps (>= 0).
        seed: Master seed (>= 0); map ``i`` draws from ``derive_rng(seed, "gce", i)``.
        config: Simulator knobs; ``None`` means the defaults.

    Returns:
        The file's datasets by name: ``"x"`` float32 ``(n, n_pixels, n_pixels, 1)`` counts,
        ``"y"`` float32 ``(n,)`` realised ``f_src``, ``"background_model"`` ``S16`` ``(n,)``,
        and ``"params/<name>"`` ``(n,)`` per :data:`PARAM_FIELDS` entry.

    Raises:
        InputError: On a negative ``n_events`` or a bad seed.
    """
    cfg = GceConfig() if config is None else config
    check_run(n_events, seed, 0, _SOURCE)
    return _simulate_range(int(seed), cfg, 0, int(n_events))


def _columns(cfg: GceConfig, compression: str | None) -> list[Column]:
    n = cfg.n_pixels
    columns = [
        Column("x", (n, n, 1), np.float32, chunk_rows=_X_CHUNK_ROWS, compression=compression),
        Column("y", (), np.float32),
        Column("background_model", (), np.dtype(_NAME_DTYPE)),
    ]
    columns.extend(Column(f"params/{name}", (), dtype) for name, dtype in PARAM_FIELDS.items())
    return columns


def _attrs(cfg: GceConfig, n_events: int, seed: int) -> dict[str, Any]:
    masked_rows = np.flatnonzero(pixel_mask(cfg)[:, 0]).tolist()
    return {
        "task": "gce",
        "generator": "hpsearch.simulate.gce",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_events": n_events,
        "config": cfg.to_json(),
        "background_models": json.dumps(list(cfg.background_models)),
        "background_model_definitions": json.dumps(
            {name: dataclasses.asdict(BACKGROUND_MODELS[name]) for name in cfg.background_models}
        ),
        "pixel_deg": cfg.pixel_deg,
        "roi_deg": cfg.roi_deg,
        "energy_band_gev": json.dumps(list(ENERGY_BAND_GEV)),
        "units": "photon counts per pixel, 1-6 GeV",
        "target_names": json.dumps(["f_src"]),
        "mask_latitude_deg": cfg.mask_latitude_deg,
        "masked_rows": json.dumps(masked_rows),
        "projection": "plate carree in (l, b), GC at the centre; row 0 = highest b, "
        "column 0 = highest l",
    }


def simulate_to_file(
    path: str | Path,
    n_events: int,
    seed: int,
    config: GceConfig | None = None,
    *,
    progress: bool = True,
    chunk_events: int = 512,
    workers: int | None = None,
    compression: str | None = None,
) -> Path:
    """Simulate ``n_events`` maps into an HDF5 file (layout: module docstring).

    Chunks of maps are simulated in parallel by ``workers`` spawned processes and written in
    order (:func:`hpsearch.simulate._chunks.write_simulation`: temporary file and rename, so a
    failed run leaves nothing under ``path``). The contents equal :func:`simulate_events` with
    the same arguments whatever ``chunk_events`` and ``workers`` are, since every map has its
    own RNG stream. Each process builds its templates once (about a second per background
    model at 120x120 pixels).

    Args:
        path: Target file; parent directories are created. An existing file is replaced.
        n_events: Number of maps (>= 1).
        seed: Master seed (>= 0).
        config: Simulator knobs; ``None`` means the defaults.
        progress: Show a rich progress bar on stderr.
        chunk_events: Maps generated and written per step (memory knob only: 512 maps of
            120x120 float32 are 29 MB).
        workers: Processes; ``None`` means ``os.cpu_count()``, 1 simulates in this process.
        compression: h5py filter for ``/x``, e.g. ``"gzip"`` (counts compress ~3x, reading
            gets slower), ``None`` for none.

    Returns:
        The path of the written file.

    Raises:
        InputError: On bad arguments.
    """
    cfg = GceConfig() if config is None else config
    check_run(n_events, seed, 1, _SOURCE)
    if compression not in (None, "gzip", "lzf"):
        raise InputError(
            _SOURCE,
            "compression",
            f"must be None, 'gzip' or 'lzf', got {compression!r}",
            "use None or 'gzip'",
        )
    return write_simulation(
        path,
        int(n_events),
        columns=_columns(cfg, compression),
        attrs=_attrs(cfg, int(n_events), int(seed)),
        simulate_range=functools.partial(_simulate_range, int(seed), cfg),
        block_events=_BLOCK_EVENTS,
        chunk_events=chunk_events,
        workers=workers,
        progress=progress,
        label=Path(path).name,
        source=_SOURCE,
    )
