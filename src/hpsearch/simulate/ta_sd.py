"""Toy Telescope Array surface-detector events, with TA's standard reconstruction (task ``ta_sd``).

Why a simulator: the seed study (seed 002; Ivanov et al., Mach. Learn.: Sci. Technol. 2 (2021)
015006, arXiv:2005.07117) trains a network on the raw signals of the TA surface detector (SD) to
predict the errors of the standard reconstruction, with CORSIKA + GEANT4 Monte Carlo that is not
public. This module writes events of the same shape, ``(N, N, T, 2)`` per event, made by a
parametric toy that follows TA's own reconstruction formulas (science.md section 2), and runs a
real standard reconstruction (:mod:`hpsearch.simulate.ta_sd_fit`) on every event, so that the
file holds the truth, the fit and the fit's error: the seed's regression target.

Detector (Abu-Zayyad et al., NIM A 689 (2012) 87): 507 counters on a square grid of 1.2 km;
each counter has two 3 m^2 layers of 1.2 cm plastic scintillator (upper, lower), read by FADCs
in 128 bins of 20 ns. Our array is an unbounded square lattice (no border), of which the event
uses a patch of ``grid_size + 4`` counters a side around the core.

Shower model, per event (constants: :class:`TaSdConfig` and :mod:`~hpsearch.simulate.ta_sd_fit`;
*estimate* marks our own numbers):

* Energy log-uniform in ``[10^18.5, 10^20] eV`` (an E^-1 spectrum, as the seed's Monte Carlo);
  isotropic arrival (pdf ~ sin(theta) cos(theta)) up to ``zenith_max_deg``; azimuth uniform;
  core uniform in the central cell of the lattice; primary H, He, N or Fe with equal
  probability (the seed's Monte Carlo: 1:1:1:1).
* Density: ``S(r) = S800 f(r) / f(800 m)`` with TA's LDF, ``r`` the distance from the axis in
  the shower plane. ``S800`` comes from the energy formula inverted (science.md), times
  ``1 + s800_per_ln_a ln A`` (*estimate*: heavier showers, a few percent more signal at
  800 m) and a shower-to-shower factor of relative spread ``s800_fluctuation`` (*estimate*).
* Particles: a counter's expected signal ``S A`` is scaled by a Gamma factor of relative spread
  0.15 (the ``(0.15 S)^2`` term of TA's variance model) and split into a Poisson number of
  particles. A particle is a muon with probability ``R / (1 + R)``, ``R(r) = muon_ratio_800m
  A^0.1 (r / 800 m)^muon_ratio_slope`` (Heitler-Matthews: muon number ~ A^(1 - beta), beta ~
  0.9, Matthews, Astropart. Phys. 22 (2005) 387; the 800 m ratio and slope *estimate*, muons
  dominating far from the core). Its energy deposit in each layer is ``m p g_layer``: ``p`` a
  Gamma(``deposit_shape``) factor common to both layers (track length, particle energy), ``g``
  a Gamma(``layer_shape``) Landau-like factor per layer, ``m = 1`` VEM for muons and ``(1,
  em_lower_ratio)`` for EM particles (the upper layer and the steel between the layers absorb
  soft electrons, *estimate*); the shapes are chosen so that Poisson counts of such particles
  give TA's ``2 S / A`` variance term (*estimate*). The two layers thus see slightly different
  muon content, and heavy primaries (more muons) a higher lower/upper ratio.
* Times: the front's leading edge lies ``t_plane + a tau_a (1 + r/RL)^1.5 LDF(r)^-0.5`` after
  the core (TA's timing formula; ``a`` is TA's ``a(theta)`` times ``1 + curvature_per_ln_a
  (ln A - 2)`` and ``1 + curvature_spread N(0, 1)``, *estimate*s: heavy showers develop
  higher and have flatter fronts). Particles follow it by a Gamma(2) delay of standard
  deviation ``thickness_ns (1 + r/RL)^1.5`` (Linsley's disk thickness, 1.6 ns at the axis:
  Linsley, J. Phys. G 12 (1986) 51), half that for muons (*estimate*: muons lead the disk),
  and each counter's whole front is offset by ``front_roughness`` times that thickness
  (*estimate*: the sub-shower structure a smooth front lacks; calibrated so that the fit's
  angular resolution is TA's ~1.5-2 deg, since first-particle statistics alone give ~0.8 deg
  at the highest energies). Above ``max_particles`` particles a counter simulates that many
  macro-particles that share its count (the signal's spread then changes by well under the
  15% term; such counters saturate anyway).
* Model mismatch the fit ignores, as real showers: densities are lower and fronts later and
  thicker on the late side of inclined showers (``ldf_asymmetry``, ``delay_asymmetry``,
  *estimate*s), and the curvature depends on the primary. This is what a network can learn
  from the waveforms to beat the fit.
* Readout: each particle is a 1-3 bin pulse (exponential, ``pulse_decay_ns``, *estimate*) in
  each layer. A counter records if both layers see ``hit_threshold_vem`` (TA's level-0
  trigger, ~0.3 VEM). Its 128 (``n_bins``) bins start ``pretrigger_bins`` before its trigger
  bin, on a 20 ns clock of random phase; its time is its first particle's plus a Gaussian
  ``time_jitter_ns`` (GPS + FADC, *estimate*). Pedestal noise ``pedestal_noise_vem`` per bin
  and layer (*estimate*), and the FADC saturates at ``saturation_vem_per_bin`` per bin and
  layer (*estimate*: a counter saturates near ~200 VEM/m^2). A counter's signal is the mean of
  its two layers' integrals, in VEM, including what arrives after the stored bins (TA records
  further windows for long signals).

Then the standard reconstruction (:func:`~hpsearch.simulate.ta_sd_fit.fit_events`) fits every
event on the whole patch, and the stored ``N x N`` grid is centred on the counter nearest the
*fitted* core (as the seed centres its network input on the standard reconstruction; for even
``N`` the fitted core lies in the central cell). With ``apply_cuts`` only events passing TA-like
quality cuts (fit converged, at least ``min_counters`` hit counters, chi^2/ndf at most
``max_chi2_ndf``) are kept, as in the seed's Monte Carlo (its "standard reconstruction cuts").
``noiseless=True`` turns every fluctuation and noise off (expected signals, leading-edge times,
no pedestal, no jitter, no roughness, no shower-to-shower spread); with the two asymmetries also
off the events follow the fit's own model, and the fit finds the truth (to < 0.2 m, 0.002 deg
and 0.05% in S800).

Measured with the defaults (10^4 events, seed 2024, cuts on; ``fit_scores``): the fit's 68%
space angle is 2.0 / 1.8 / 1.6 deg in log10(E/eV) 18.5-19 / 19-19.5 / 19.5-20 (TA's SD: ~1.5-2
deg), its ``dE/E`` spread 21% / 17% / 14% with a +6-9% mean (TA calibrates its energy scale on
Monte Carlo; here the offset stays in the fit error, to be learnt), its 68% core error 75-95 m;
the fit converges on all of them and ~99% of candidate events pass the cuts. Simulation and fit
take ~1.2 ms of CPU per event, the fit ~0.8 ms of it.

Determinism: events come in blocks of ``_BLOCK_EVENTS`` (256), block ``b`` drawing from
``derive_rng(seed, "ta_sd", b)`` (with cuts, a block draws candidates until it has 256 that
pass), so the same ``(n_events, seed, config)`` gives bit-identical arrays however the work is
chunked and whichever process does it, and a shorter run is a prefix of a longer one.

HDF5 layout written by :func:`simulate_to_file` (``n`` events, ``N = grid_size``, ``T =
n_bins``; all per-event datasets have ``n`` rows):

* ``/x``: float32 ``(n, N, N, T, 2)``, VEM per bin, ``x[e, i, j, :, k]`` the layer ``k``
  (0 upper, 1 lower) trace of the counter at ``(counters/x_m[e, i, j], counters/y_m[e, i, j])``;
  zeros for counters without a hit. Chunked 16 events a chunk.
* ``/counters/signal`` float32 ``(n, N, N)``: counter signal, VEM (mean of the two layers);
  ``/counters/time`` float32 ``(n, N, N)``: arrival time, ns, from the earliest hit counter of
  the grid (0 without a hit); ``/counters/hit``, ``/counters/saturated`` int8 ``(n, N, N)``;
  ``/counters/x_m``, ``/counters/y_m`` float32 ``(n, N, N)``: positions from the grid centre,
  m (east, north).
* ``/truth/<name>`` (:data:`TRUTH_FIELDS`) and ``/fit/<name>``
  (:data:`~hpsearch.simulate.ta_sd_fit.FIT_FIELDS` plus ``passed_cuts``), ``(n,)`` each; cores
  in m from the grid centre.
* ``/targets/truth`` and ``/targets/fit_error`` (= truth - fit) float32 ``(n, 5)``, columns
  :data:`~hpsearch.simulate.ta_sd_fit.TARGET_NAMES` (``u_x, u_y, log10_energy_ev, x_core_km,
  y_core_km``), each with a ``target_names`` attribute (JSON list).
* root attributes: ``task="ta_sd"``, ``generator``, ``generator_version``, ``seed``,
  ``n_events``, ``config`` (JSON of :class:`TaSdConfig`), ``units="VEM"``, ``bin_ns``,
  ``spacing_m``, ``counter_area_m2``, ``pretrigger_bins``, ``layer_names``, ``primaries``,
  ``target_names`` (of ``/targets/truth``), ``fit`` (the reconstruction's module).
"""

from __future__ import annotations

import dataclasses
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
from hpsearch.simulate import ta_sd_fit as fitmod
from hpsearch.simulate._chunks import Column, check_run, write_simulation
from hpsearch.simulate.ta_sd_fit import (
    FIT_FIELDS,
    SPEED_OF_LIGHT_M_PER_NS,
    TARGET_NAMES,
    TIMING_RL_M,
    curvature_a,
    direction_cosines,
    fit_events,
    front_delay_ns,
    ldf,
    s800_from_energy,
    shower_plane_distance,
)

__all__ = [
    "GENERATOR_VERSION",
    "LAYER_NAMES",
    "PRIMARY_NAMES",
    "TARGET_NAMES",
    "TRUTH_FIELDS",
    "TaSdConfig",
    "simulate_events",
    "simulate_to_file",
]

GENERATOR_VERSION = "1.0.0"
"""Version of the generated data: bump whenever the output for a given seed and config changes."""

LAYER_NAMES: tuple[str, str] = ("upper", "lower")
"""Scintillator layers by index of the last axis of ``/x``."""

PRIMARY_NAMES: dict[int, str] = {1: "H", 4: "He", 14: "N", 56: "Fe"}
"""Names of the default primaries by mass number."""

TRUTH_FIELDS: dict[str, type[np.generic]] = {
    # Core in m from the grid centre (east, north), and in the ground frame of the lattice.
    "x_core_m": np.float32,
    "y_core_m": np.float32,
    # Arrival direction: zenith, azimuth (deg; phi from east towards north, the direction the
    # shower comes from) and the ground-frame direction cosines.
    "theta_deg": np.float32,
    "phi_deg": np.float32,
    "u_x": np.float32,
    "u_y": np.float32,
    "log10_energy_ev": np.float32,
    # The shower's S800 (VEM/m^2): the LDF's normalisation after composition and fluctuation.
    "s800": np.float32,
    # S800 the energy formula gives for this energy and zenith (what an ideal fit would see).
    "s800_nominal": np.float32,
    # Primary: index into the file's ``primaries`` attribute, and its mass number.
    "primary": np.int8,
    "mass_number": np.int16,
    # The shower's curvature parameter a (dimensionless, delay unit tau_a).
    "curvature_a": np.float32,
    # Fraction of particles that are muons at 800 m (this shower's composition).
    "muon_fraction_800m": np.float32,
    # Hit counters in the patch the fit saw, and in the stored grid.
    "n_counters": np.int16,
    "n_counters_grid": np.int16,
    # Saturated counters in the patch.
    "n_saturated": np.int16,
}
"""Latent per-event truth: name -> dtype of its ``(n,)`` array (also ``/truth/<name>``)."""

_FIT_OUT: dict[str, type[np.generic]] = {**FIT_FIELDS, "passed_cuts": np.int8}

_BLOCK_EVENTS = 256
"""Events per internal RNG block. Fixed, so that output never depends on how work is chunked."""

_CONFIG_SOURCE = "TaSdConfig"
_X_CHUNK_ROWS = 16
_PATCH_MARGIN = 2  # counters added on each side of the grid for the fit's patch


@dataclass(frozen=True)
class TaSdConfig:
    """Every physics, readout and selection knob of the ta_sd simulator, with defaults.

    Literature values carry their source; *estimate* marks our own numbers. Distances in m,
    times in ns, signals in VEM (per m^2 where it says so), energies as log10(E/eV).

    Attributes:
        grid_size: Counters per side of the stored grid, N (seed: 4-8).
        n_bins: FADC bins per trace, T (TA: 128; seed: 128-256).
        bin_ns: FADC bin width, 20 ns (TA).
        spacing_m: Counter spacing, 1200 m (TA).
        counter_area_m2: Area of each layer of a counter, 3 m^2 (TA).
        zenith_max_deg: Largest zenith angle drawn (seed Monte Carlo: 45 deg; at most 60).
        log10_energy_min: Lowest log10(E/eV) drawn (seed: 18.5).
        log10_energy_max: Highest log10(E/eV) drawn.
        primaries: Mass numbers of the primaries, drawn with equal probability (seed Monte
            Carlo: H, He, N, Fe 1:1:1:1).
        s800_per_ln_a: Relative change of S800 per unit ln A at fixed energy (*estimate*).
        s800_fluctuation: Relative shower-to-shower spread of S800 at fixed energy and
            primary (*estimate*).
        muon_ratio_800m: Muons per EM particle at 800 m for a proton shower (*estimate*:
            0.33, a quarter of the particles).
        muon_ratio_slope: Power of ``r / 800 m`` in that ratio (*estimate*: muons have a
            flatter lateral distribution, ~40-50% of particles at 2 km).
        em_lower_ratio: Mean lower-layer deposit of an EM particle, VEM (upper: 1 VEM;
            *estimate*).
        deposit_shape: Gamma shape of a particle's deposit factor common to both layers
            (*estimate*, with ``layer_shape`` set to give TA's ``2 S / A`` variance).
        layer_shape: Gamma shape of the per-layer (Landau-like) deposit factor (*estimate*).
        signal_relative_sigma: Relative spread of the per-counter sampling factor, 0.15 (the
            ``(0.15 S)^2`` term of TA's variance model, science.md).
        curvature_spread: Relative shower-to-shower spread of the curvature ``a`` (*estimate*).
        curvature_per_ln_a: Relative change of ``a`` per unit ``ln A - 2`` (*estimate*:
            heavy primaries develop higher, so their fronts are flatter).
        ldf_asymmetry: Early/late density asymmetry the fit ignores: densities are scaled by
            ``1 - ldf_asymmetry xi``, ``xi = -(d . u) / |d|`` (up to ``sin(theta)`` on the
            late side, where the particles crossed more air; *estimate*).
        delay_asymmetry: The same for the front's delay and thickness, scaled by ``1 +
            delay_asymmetry xi`` (*estimate*: later, thicker fronts on the late side, as
            Auger's rise-time asymmetry).
        thickness_ns: Linsley's disk thickness at the axis, ns: the particles' time spread is
            ``thickness_ns (1 + r / 30 m)^1.5`` (Linsley 1986: 1.6 ns).
        muon_thickness_ratio: Muons' time spread relative to EM particles' (*estimate*).
        front_roughness: Per-counter Gaussian offset of the whole front, in units of the
            local thickness (sub-shower structure the smooth front lacks; *estimate*,
            calibrated so that the fit's angular resolution is TA's).
        pulse_decay_ns: Decay time of one particle's pulse (scintillator, fibres, shaping),
            which spreads it over 1-3 bins (*estimate*).
        hit_threshold_vem: Deposit both layers need for a counter to record, VEM (TA level-0
            trigger ~0.3 VEM, Abu-Zayyad et al. 2012).
        pretrigger_bins: Bins recorded before a counter's trigger bin (*estimate*).
        time_jitter_ns: RMS of a counter's time measurement (GPS + FADC; *estimate*).
        pedestal_noise_vem: RMS pedestal noise per bin and layer, VEM (*estimate*).
        saturation_vem_per_bin: Largest signal a bin of one layer records, VEM (*estimate*:
            a counter saturates near ~200 VEM/m^2).
        max_particles: Particles simulated per counter at most; above, macro-particles share
            the count (speed knob; changes the output).
        noiseless: Turn every fluctuation and noise off (tests of the fit).
        apply_cuts: Keep only events that pass the quality cuts below.
        min_counters: Cut: fewest hit counters (TA: 5).
        max_chi2_ndf: Cut: largest chi^2/ndf of the joint fit (TA: 4).
    """

    grid_size: int = 6
    n_bins: int = 128
    bin_ns: float = 20.0
    spacing_m: float = 1200.0
    counter_area_m2: float = 3.0
    zenith_max_deg: float = 45.0
    log10_energy_min: float = 18.5
    log10_energy_max: float = 20.0
    primaries: tuple[int, ...] = (1, 4, 14, 56)
    s800_per_ln_a: float = 0.015
    s800_fluctuation: float = 0.08
    muon_ratio_800m: float = 0.33
    muon_ratio_slope: float = 0.8
    em_lower_ratio: float = 0.85
    deposit_shape: float = 1.25
    layer_shape: float = 5.0
    signal_relative_sigma: float = 0.15
    curvature_spread: float = 0.1
    curvature_per_ln_a: float = -0.05
    ldf_asymmetry: float = 0.2
    delay_asymmetry: float = 0.5
    thickness_ns: float = 1.6
    muon_thickness_ratio: float = 0.5
    front_roughness: float = 0.35
    pulse_decay_ns: float = 15.0
    hit_threshold_vem: float = 0.3
    pretrigger_bins: int = 8
    time_jitter_ns: float = 20.0
    pedestal_noise_vem: float = 0.02
    saturation_vem_per_bin: float = 200.0
    max_particles: int = 400
    noiseless: bool = False
    apply_cuts: bool = True
    min_counters: int = 5
    max_chi2_ndf: float = 4.0

    def __post_init__(self) -> None:
        """Check every knob, raising :class:`~hpsearch.errors.InputError` naming it."""
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            kind = field.type if isinstance(field.type, str) else field.type.__name__
            if kind == "bool":
                if not isinstance(value, bool):
                    _bad(field.name, f"must be true or false, got {value!r}", "give a boolean")
            elif kind == "int":
                if isinstance(value, bool) or not isinstance(value, int | np.integer):
                    _bad(field.name, f"must be an integer, got {value!r}", "give an integer")
            elif kind == "float":
                if isinstance(value, bool) or not isinstance(value, int | float | np.floating):
                    _bad(field.name, f"must be a number, got {value!r}", "give a number")
                elif not math.isfinite(value):
                    _bad(field.name, f"must be finite, got {value!r}", "give a finite number")
        self._check_primaries()
        self._check_ranges()

    def _check_primaries(self) -> None:
        value = self.primaries
        if (
            not isinstance(value, tuple)
            or not value
            or not all(isinstance(a, int) and not isinstance(a, bool) for a in value)
            or not all(1 <= a <= 60 for a in value)
        ):
            _bad(
                "primaries",
                f"must be a non-empty list of mass numbers 1-60, got {value!r}",
                "use e.g. [1, 4, 14, 56] (H, He, N, Fe)",
            )

    def _check_ranges(self) -> None:
        ranges: dict[str, tuple[float, float, str]] = {
            "grid_size": (4, 8, "use 4-8 counters a side (the seed's N)"),
            "n_bins": (128, 256, "use 128-256 bins (the seed's T)"),
            "zenith_max_deg": (1.0, 60.0, "use at most 60 deg (TA's LDF holds to ~60)"),
            "log10_energy_min": (17.5, 21.0, "use 18.5-20 (TA's SD range)"),
            "log10_energy_max": (17.5, 21.0, "use 18.5-20 (TA's SD range)"),
            "s800_per_ln_a": (-0.2, 0.2, "use a few percent, e.g. 0.015"),
            "s800_fluctuation": (0.0, 0.5, "use ~0.08"),
            "muon_ratio_800m": (0.0, 10.0, "use ~0.33"),
            "muon_ratio_slope": (0.0, 3.0, "use ~0.8"),
            "em_lower_ratio": (0.0, 2.0, "use ~0.85"),
            "signal_relative_sigma": (0.0, 1.0, "use 0.15 (TA)"),
            "curvature_spread": (0.0, 0.5, "use ~0.1"),
            "curvature_per_ln_a": (-0.5, 0.5, "use ~-0.05"),
            "ldf_asymmetry": (0.0, 1.0, "use ~0.2"),
            "delay_asymmetry": (0.0, 1.0, "use ~0.5"),
            "muon_thickness_ratio": (0.0, 2.0, "use ~0.5"),
            "front_roughness": (0.0, 2.0, "use ~0.3"),
            "pretrigger_bins": (0, 64, "use a few bins, e.g. 8"),
            "min_counters": (3, 100, "use 5 (TA)"),
        }
        for name, (low, high, fix) in ranges.items():
            value = getattr(self, name)
            if not low <= value <= high:
                _bad(name, f"must lie in [{low}, {high}], got {value!r}", fix)
        positive = (
            "bin_ns",
            "spacing_m",
            "counter_area_m2",
            "deposit_shape",
            "layer_shape",
            "thickness_ns",
            "pulse_decay_ns",
            "saturation_vem_per_bin",
            "max_particles",
            "max_chi2_ndf",
        )
        for name in positive:
            if getattr(self, name) <= 0:
                _bad(name, f"must be > 0, got {getattr(self, name)!r}", "give a positive value")
        for name in ("hit_threshold_vem", "time_jitter_ns", "pedestal_noise_vem"):
            if getattr(self, name) < 0:
                _bad(name, f"must be >= 0, got {getattr(self, name)!r}", "give a value >= 0")
        if not self.log10_energy_min < self.log10_energy_max:
            _bad(
                "log10_energy_min, log10_energy_max",
                f"`log10_energy_min < log10_energy_max` must hold, got "
                f"({self.log10_energy_min!r}, {self.log10_energy_max!r})",
                "make the lower end smaller",
            )
        if self.pretrigger_bins >= self.n_bins:
            _bad("pretrigger_bins", "must be fewer than n_bins", "use a few bins, e.g. 8")

    @property
    def patch_size(self) -> int:
        """Counters per side of the patch the fit sees (even, centred on the core's cell)."""
        return 2 * ((self.grid_size + 1) // 2 + _PATCH_MARGIN)

    def to_dict(self) -> dict[str, Any]:
        """Return the knobs as a plain dict (what the file's ``config`` attribute holds)."""
        values = dataclasses.asdict(self)
        values["primaries"] = list(self.primaries)
        return values

    def to_json(self) -> str:
        """Return the knobs as a JSON string with sorted keys."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any], source: str = _CONFIG_SOURCE) -> TaSdConfig:
        """Build a config from a dict, e.g. a file's ``config`` attribute or a study section.

        Args:
            values: Knob names to values; missing knobs keep their defaults.
            source: Where the values came from, for error messages.

        Raises:
            InputError: On an unknown knob or a bad value.
        """
        known = {field.name: field for field in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise InputError(
                source,
                unknown[0],
                f"unknown ta_sd simulator setting(s) {unknown}",
                f"use one of {sorted(known)}",
            )
        converted = dict(values)
        for name, value in values.items():
            kind = known[name].type
            if kind == "int" and isinstance(value, float) and value.is_integer():
                converted[name] = int(value)
            elif kind == "float" and isinstance(value, int) and not isinstance(value, bool):
                converted[name] = float(value)
        if isinstance(converted.get("primaries"), list):
            converted["primaries"] = tuple(converted["primaries"])
        return cls(**converted)


def _bad(key: str, problem: str, fix: str) -> None:
    raise InputError(_CONFIG_SOURCE, key, problem, fix)


# --------------------------------------------------------------------------- showers


def _patch(cfg: TaSdConfig) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
    """Lattice indices of the patch's side, and its counters' ``(x, y)`` (flat, ``i * P + j``).

    The core is drawn in the cell between lattice indices 0 and 1, which the patch centres.
    """
    side = cfg.patch_size
    index = np.arange(side, dtype=np.int64) - (side // 2 - 1)
    ix, iy = np.meshgrid(index, index, indexing="ij")
    x = (ix.ravel() * cfg.spacing_m).astype(np.float64)
    y = (iy.ravel() * cfg.spacing_m).astype(np.float64)
    return index, x, y


def _gamma_factor(
    rng: np.random.Generator, relative_sigma: float, size: Any, on: bool
) -> NDArray[np.float64]:
    """Gamma-distributed factors of mean 1 and the given relative spread (1 when off or 0)."""
    if not on or relative_sigma <= 0:
        return np.ones(size)
    shape = 1.0 / relative_sigma**2
    factors: NDArray[np.float64] = rng.gamma(shape, 1.0 / shape, size)
    return factors


def _simulate_candidates(
    rng: np.random.Generator, cfg: TaSdConfig, n: int
) -> tuple[dict[str, NDArray[Any]], NDArray[np.bool_]]:
    """Simulate and fit ``n`` candidate events; returns their columns and the cut flags."""
    noisy = not cfg.noiseless
    side_index, px, py = _patch(cfg)
    m = px.shape[0]
    area = cfg.counter_area_m2

    # -- shower parameters
    log10_e = rng.uniform(cfg.log10_energy_min, cfg.log10_energy_max, n)
    cos2_max = math.cos(math.radians(cfg.zenith_max_deg)) ** 2
    theta = np.arccos(np.sqrt(rng.uniform(cos2_max, 1.0, n)))  # pdf ~ sin cos
    phi = rng.uniform(0.0, 2.0 * math.pi, n)
    core_x = rng.uniform(0.0, cfg.spacing_m, n)
    core_y = rng.uniform(0.0, cfg.spacing_m, n)
    primary = rng.integers(0, len(cfg.primaries), n)
    mass = np.asarray(cfg.primaries, dtype=np.float64)[primary]
    theta_deg = np.degrees(theta)
    s800_nominal = s800_from_energy(10.0**log10_e, theta_deg)
    s800 = (
        s800_nominal
        * (1.0 + cfg.s800_per_ln_a * np.log(mass))
        * _gamma_factor(rng, cfg.s800_fluctuation, n, noisy)
    )
    a_true = (
        curvature_a(theta_deg)
        * (1.0 + cfg.curvature_per_ln_a * (np.log(mass) - 2.0))
        * (1.0 + cfg.curvature_spread * rng.standard_normal(n) if noisy else 1.0)
    )
    clock_phase = rng.uniform(0.0, cfg.bin_ns, n) if noisy else np.zeros(n)
    ux, uy = direction_cosines(theta_deg, np.degrees(phi))

    # -- expected densities and particle content per counter, (n, m)
    dx = px[None, :] - core_x[:, None]
    dy = py[None, :] - core_y[:, None]
    r, along = shower_plane_distance(dx, dy, ux[:, None], uy[:, None])
    late = -along / np.maximum(np.hypot(dx, dy), 1.0)  # xi: > 0 on the late side
    rho = s800[:, None] * ldf(r, theta[:, None]) * np.maximum(1.0 - cfg.ldf_asymmetry * late, 0.0)
    stretch = 1.0 + cfg.delay_asymmetry * late
    muon_ratio = (
        cfg.muon_ratio_800m
        * mass[:, None] ** 0.1
        * (np.maximum(r, 1.0) / 800.0) ** cfg.muon_ratio_slope
    )
    f_mu = muon_ratio / (1.0 + muon_ratio)
    mean_lower = f_mu + (1.0 - f_mu) * cfg.em_lower_ratio  # mean lower deposit per particle
    mean_w = 0.5 * (1.0 + mean_lower)  # mean layer-averaged deposit per particle, VEM
    expected = rho * area * _gamma_factor(rng, cfg.signal_relative_sigma, (n, m), noisy)
    mu = expected / mean_w
    thickness = cfg.thickness_ns * (1.0 + r / TIMING_RL_M) ** 1.5 * stretch
    front = (
        -along / SPEED_OF_LIGHT_M_PER_NS
        + front_delay_ns(r, theta[:, None], a_true[:, None]) * stretch
    )
    if noisy and cfg.front_roughness > 0:
        front = front + cfg.front_roughness * thickness * rng.standard_normal((n, m))

    # -- particles (grouped by counter: flat index e * m + c)
    if noisy:
        counts = rng.poisson(np.minimum(mu, 1e12)).ravel()
        simulated = np.minimum(counts, cfg.max_particles)
        owner = np.repeat(np.arange(n * m), simulated)
        total = owner.shape[0]
        weight = (counts / np.maximum(simulated, 1))[owner]
        is_muon = rng.random(total) < f_mu.ravel()[owner]
        common = rng.gamma(cfg.deposit_shape, 1.0 / cfg.deposit_shape, total)
        layers = rng.gamma(cfg.layer_shape, 1.0 / cfg.layer_shape, (2, total))
        dep_upper = weight * common * layers[0]
        dep_lower = weight * common * layers[1] * np.where(is_muon, 1.0, cfg.em_lower_ratio)
        spread = thickness.ravel()[owner] * np.where(is_muon, cfg.muon_thickness_ratio, 1.0)
        arrival = front.ravel()[owner] + rng.gamma(2.0, spread / math.sqrt(2.0))
    else:
        simulated = (mu.ravel() > 0).astype(np.int64)
        owner = np.flatnonzero(simulated)
        dep_upper = mu.ravel()[owner]
        dep_lower = (mu * mean_lower).ravel()[owner]
        arrival = front.ravel()[owner]
    flat = n * m
    upper_total = np.bincount(owner, dep_upper, minlength=flat)
    lower_total = np.bincount(owner, dep_lower, minlength=flat)
    hit = (
        (simulated > 0)
        & (upper_total >= cfg.hit_threshold_vem)
        & (lower_total >= cfg.hit_threshold_vem)
    )
    first = np.full(flat, np.inf)
    starts = np.concatenate([[0], np.cumsum(simulated)[:-1]])
    has = simulated > 0
    if owner.size:
        first[has] = np.minimum.reduceat(arrival, starts[has])
    jitter = rng.normal(0.0, cfg.time_jitter_ns, flat) if noisy else np.zeros(flat)
    time_meas = np.where(hit, first + jitter, 0.0)

    # -- traces of the hit counters (compact index), VEM per bin
    hit_flat = np.flatnonzero(hit)
    k = hit_flat.shape[0]
    compact = np.full(flat, -1, dtype=np.int64)
    compact[hit_flat] = np.arange(k)
    event_of = hit_flat // m
    phase = clock_phase[event_of]
    start_bin = np.floor((time_meas[hit_flat] - phase) / cfg.bin_ns) - cfg.pretrigger_bins
    trace_start = phase + start_bin * cfg.bin_ns
    traces, overflow = _bin_pulses(
        compact[owner], arrival, dep_upper, dep_lower, trace_start, k, cfg
    )
    if noisy and cfg.pedestal_noise_vem > 0:
        traces += rng.normal(0.0, cfg.pedestal_noise_vem, traces.shape)
    saturated_hit = (traces > cfg.saturation_vem_per_bin).any(axis=(1, 2))
    traces = np.minimum(traces, cfg.saturation_vem_per_bin)
    layer_signal = traces.sum(axis=1) + overflow  # (k, 2), VEM
    counter_signal = np.zeros(flat)
    counter_signal[hit_flat] = layer_signal.mean(axis=1)
    saturated = np.zeros(flat, dtype=bool)
    saturated[hit_flat] = saturated_hit

    # -- the standard reconstruction on the whole patch
    signal_2d = counter_signal.reshape(n, m)
    hit_2d = hit.reshape(n, m)
    fit = fit_events(
        px,
        py,
        signal_2d / area,
        time_meas.reshape(n, m),
        hit_2d,
        saturated.reshape(n, m),
    )
    passed = (
        fit["converged"].astype(bool)
        & (fit["n_counters"] >= cfg.min_counters)
        & (fit["chi2_ndf"] <= cfg.max_chi2_ndf)
    )

    # -- the stored grid, centred on the counter nearest the fitted core
    grid = cfg.grid_size
    lowest, highest = int(side_index[0]), int(side_index[-1])
    lo_x = np.clip(
        np.round(fit["x_core_m"] / cfg.spacing_m - (grid - 1) / 2), lowest, highest - grid + 1
    )
    lo_y = np.clip(
        np.round(fit["y_core_m"] / cfg.spacing_m - (grid - 1) / 2), lowest, highest - grid + 1
    )
    lo_x, lo_y = lo_x.astype(np.int64), lo_y.astype(np.int64)
    centre_x = (lo_x + (grid - 1) / 2) * cfg.spacing_m
    centre_y = (lo_y + (grid - 1) / 2) * cfg.spacing_m
    offsets = np.arange(grid)
    side = cfg.patch_size
    gx = (lo_x - lowest)[:, None, None] + offsets[None, :, None]
    gy = (lo_y - lowest)[:, None, None] + offsets[None, None, :]
    cell = np.arange(n)[:, None, None] * m + gx * side + gy  # flat counter index (n, N, N)
    in_grid = compact[cell]
    x = np.zeros((n, grid, grid, cfg.n_bins, 2), dtype=np.float32)
    present = in_grid >= 0
    x[present] = traces[in_grid[present]]
    grid_hit = hit[cell]
    grid_time = np.where(grid_hit, time_meas[cell], np.inf)
    earliest = grid_time.min(axis=(1, 2))
    earliest = np.where(np.isfinite(earliest), earliest, 0.0)
    counter_time = np.where(grid_hit, time_meas[cell] - earliest[:, None, None], 0.0)

    columns: dict[str, NDArray[Any]] = {
        "x": x,
        "counters/signal": counter_signal[cell].astype(np.float32),
        "counters/time": counter_time.astype(np.float32),
        "counters/hit": grid_hit.astype(np.int8),
        "counters/saturated": saturated[cell].astype(np.int8),
        "counters/x_m": np.broadcast_to(
            ((offsets - (grid - 1) / 2) * cfg.spacing_m)[None, :, None], (n, grid, grid)
        ).astype(np.float32),
        "counters/y_m": np.broadcast_to(
            ((offsets - (grid - 1) / 2) * cfg.spacing_m)[None, None, :], (n, grid, grid)
        ).astype(np.float32),
    }
    truth: dict[str, NDArray[Any]] = {
        "x_core_m": core_x - centre_x,
        "y_core_m": core_y - centre_y,
        "theta_deg": theta_deg,
        "phi_deg": np.degrees(phi),
        "u_x": ux,
        "u_y": uy,
        "log10_energy_ev": log10_e,
        "s800": s800,
        "s800_nominal": s800_nominal,
        "primary": primary,
        "mass_number": mass,
        "curvature_a": a_true,
        "muon_fraction_800m": (
            cfg.muon_ratio_800m * mass**0.1 / (1.0 + cfg.muon_ratio_800m * mass**0.1)
        ),
        "n_counters": hit_2d.sum(axis=1),
        "n_counters_grid": grid_hit.sum(axis=(1, 2)),
        "n_saturated": saturated.reshape(n, m).sum(axis=1),
    }
    fitted = dict(fit)
    fitted["x_core_m"] = fit["x_core_m"] - centre_x
    fitted["y_core_m"] = fit["y_core_m"] - centre_y
    fitted["passed_cuts"] = passed
    for name, dtype in TRUTH_FIELDS.items():
        columns[f"truth/{name}"] = np.asarray(truth[name]).astype(dtype)
    for name, dtype in _FIT_OUT.items():
        columns[f"fit/{name}"] = np.asarray(fitted[name]).astype(dtype)
    truth_targets = _targets(truth)
    fit_targets = _targets(fitted)
    columns["targets/truth"] = truth_targets.astype(np.float32)
    columns["targets/fit_error"] = (truth_targets - fit_targets).astype(np.float32)
    return columns, passed


def _targets(values: Mapping[str, NDArray[Any]]) -> NDArray[np.float64]:
    """The :data:`TARGET_NAMES` columns from truth or fit values (cores to km)."""
    return np.column_stack(
        [
            np.asarray(values["u_x"], dtype=np.float64),
            np.asarray(values["u_y"], dtype=np.float64),
            np.asarray(values["log10_energy_ev"], dtype=np.float64),
            np.asarray(values["x_core_m"], dtype=np.float64) / 1000.0,
            np.asarray(values["y_core_m"], dtype=np.float64) / 1000.0,
        ]
    )


def _bin_pulses(
    compact_owner: NDArray[np.int64],
    arrival: NDArray[np.float64],
    dep_upper: NDArray[np.float64],
    dep_lower: NDArray[np.float64],
    trace_start: NDArray[np.float64],
    k: int,
    cfg: TaSdConfig,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Each particle of a hit counter as a 1-3 bin exponential pulse in both layers.

    Returns:
        ``(traces, overflow)``: ``(k, T, 2)`` VEM per bin, and ``(k, 2)`` the deposits that
        arrive after the last bin (counted in the counter's signal, not in its trace).
    """
    t_bins = cfg.n_bins
    keep = compact_owner >= 0
    owner = compact_owner[keep]
    position = (arrival[keep] - trace_start[owner]) / cfg.bin_ns
    position = np.maximum(position, 0.0)
    first_bin = np.floor(position)
    decay = cfg.bin_ns / cfg.pulse_decay_ns
    cumulative_1 = 1.0 - np.exp(-(first_bin + 1.0 - position) * decay)
    cumulative_2 = 1.0 - np.exp(-(first_bin + 2.0 - position) * decay)
    fractions = (cumulative_1, cumulative_2 - cumulative_1, 1.0 - cumulative_2)
    traces = np.zeros(k * t_bins * 2)
    overflow = np.zeros(k * 2)
    base = first_bin.astype(np.int64)
    for layer, deposit in enumerate((dep_upper[keep], dep_lower[keep])):
        for shift, fraction in enumerate(fractions):
            b = base + shift
            amount = deposit * fraction
            inside = b < t_bins
            traces += np.bincount(
                (owner[inside] * t_bins + b[inside]) * 2 + layer,
                amount[inside],
                minlength=k * t_bins * 2,
            )
            overflow += np.bincount(owner[~inside] * 2 + layer, amount[~inside], minlength=k * 2)
    return traces.reshape(k, t_bins, 2), overflow.reshape(k, 2)


def _simulate_block(rng: np.random.Generator, cfg: TaSdConfig) -> dict[str, NDArray[Any]]:
    """One full block of ``_BLOCK_EVENTS`` events from ``rng`` (drawing more if cuts apply)."""
    if not cfg.apply_cuts:
        columns, _ = _simulate_candidates(rng, cfg, _BLOCK_EVENTS)
        return columns
    parts: list[dict[str, NDArray[Any]]] = []
    have = 0
    for _ in range(100):
        need = _BLOCK_EVENTS - have
        # ~97% pass with the defaults: a few spare candidates, and a short top-up if needed.
        columns, passed = _simulate_candidates(rng, cfg, need + need // 32 + 4)
        chosen = np.flatnonzero(passed)[:need]
        parts.append({name: values[chosen] for name, values in columns.items()})
        have += chosen.shape[0]
        if have == _BLOCK_EVENTS:
            return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}
    raise RuntimeError(
        "ta_sd: fewer than 1% of simulated events pass the quality cuts; loosen min_counters "
        "or max_chi2_ndf, or raise the energy range"
    )


# --------------------------------------------------------------------------- public API


class _BlockSource:
    """Serves event ranges from the fixed RNG blocks, keeping the last block for reuse.

    Also the ``simulate_range`` of :func:`~hpsearch.simulate._chunks.write_simulation`: a
    picklable instance (its cache is empty when handed to a worker).
    """

    def __init__(self, seed: int, cfg: TaSdConfig) -> None:
        self.seed = seed
        self.cfg = cfg
        self._cached: tuple[int, dict[str, NDArray[Any]]] | None = None

    def _block(self, index: int) -> dict[str, NDArray[Any]]:
        if self._cached is None or self._cached[0] != index:
            rng = derive_rng(self.seed, "ta_sd", index)
            self._cached = (index, _simulate_block(rng, self.cfg))
        return self._cached[1]

    def events(self, start: int, stop: int) -> dict[str, NDArray[Any]]:
        """Events ``start`` (inclusive) to ``stop`` (exclusive) of the seed's event stream."""
        parts: list[dict[str, NDArray[Any]]] = []
        position = start
        while position < stop:
            index = position // _BLOCK_EVENTS
            lo = position - index * _BLOCK_EVENTS
            hi = min(stop - index * _BLOCK_EVENTS, _BLOCK_EVENTS)
            block = self._block(index)
            parts.append({name: values[lo:hi] for name, values in block.items()})
            position = index * _BLOCK_EVENTS + hi
        if not parts:
            return {
                column.name: np.zeros((0, *column.shape), dtype=column.dtype)
                for column in _columns(self.cfg)
            }
        return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}

    def __call__(self, start: int, stop: int) -> dict[str, NDArray[Any]]:
        """Events ``start`` to ``stop`` as one array per file column (a writer task)."""
        return self.events(start, stop)


def _columns(cfg: TaSdConfig) -> list[Column]:
    """The file's per-event datasets, in creation order (layout: module docstring)."""
    grid = (cfg.grid_size, cfg.grid_size)
    names = json.dumps(list(TARGET_NAMES))
    k = len(TARGET_NAMES)
    return [
        Column("x", (*grid, cfg.n_bins, 2), np.float32, chunk_rows=_X_CHUNK_ROWS),
        Column("counters/signal", grid, np.float32),
        Column("counters/time", grid, np.float32),
        Column("counters/hit", grid, np.int8),
        Column("counters/saturated", grid, np.int8),
        Column("counters/x_m", grid, np.float32),
        Column("counters/y_m", grid, np.float32),
        *(Column(f"truth/{name}", (), dtype) for name, dtype in TRUTH_FIELDS.items()),
        *(Column(f"fit/{name}", (), dtype) for name, dtype in _FIT_OUT.items()),
        Column("targets/truth", (k,), np.float32, attrs={"target_names": names}),
        Column("targets/fit_error", (k,), np.float32, attrs={"target_names": names}),
    ]


def _check_run(n_events: int, seed: int, minimum: int) -> None:
    check_run(n_events, seed, minimum, "ta_sd")


def simulate_events(
    n_events: int, seed: int, config: TaSdConfig | None = None
) -> dict[str, NDArray[Any]]:
    """Simulate and reconstruct ``n_events`` events in memory.

    Args:
        n_events: Number of events (>= 0).
        seed: Master seed (>= 0); block ``b`` draws from ``derive_rng(seed, "ta_sd", b)``.
        config: Physics, readout and selection knobs; ``None`` means the defaults.

    Returns:
        One array per file dataset, keyed by its path (``"x"``, ``"counters/signal"``,
        ``"truth/theta_deg"``, ``"fit/chi2_ndf"``, ``"targets/fit_error"``, ...; module
        docstring), ``n_events`` rows each.

    Raises:
        InputError: On a negative ``n_events`` or a bad seed.
    """
    _check_run(n_events, seed, 0)
    cfg = TaSdConfig() if config is None else config
    return _BlockSource(int(seed), cfg).events(0, int(n_events))


def simulate_to_file(
    path: str | Path,
    n_events: int,
    seed: int,
    config: TaSdConfig | None = None,
    *,
    progress: bool = True,
    chunk_events: int = 1024,
    workers: int | None = None,
) -> Path:
    """Simulate and reconstruct ``n_events`` events into an HDF5 file (layout: module docstring).

    Chunks are simulated (and fitted) in parallel by ``workers`` spawned processes and written
    in order, through :func:`~hpsearch.simulate._chunks.write_simulation`: tasks are whole
    blocks of 256 events, at most ``2 * workers`` in flight, a temporary file renamed at the
    end and removed on any error. The contents equal :func:`simulate_events` with the same
    arguments, whatever ``chunk_events`` and ``workers`` are. Spawned workers re-import the
    caller's script: call this under ``if __name__ == "__main__":`` or pass ``workers=1``.

    Args:
        path: Target file; parent directories are created. An existing file is replaced.
        n_events: Number of events (>= 1).
        seed: Master seed (>= 0).
        config: Physics, readout and selection knobs; ``None`` means the defaults.
        progress: Show a rich progress bar on stderr.
        chunk_events: Events generated and written per step (memory knob only; about 37 kB
            per event with the default grid).
        workers: Processes simulating chunks; ``None`` means ``os.cpu_count()``.

    Returns:
        The path of the written file.

    Raises:
        InputError: On bad arguments.
    """
    cfg = TaSdConfig() if config is None else config
    _check_run(n_events, seed, 1)
    target = Path(path)
    return write_simulation(
        target,
        int(n_events),
        columns=_columns(cfg),
        attrs=_header(int(n_events), int(seed), cfg),
        simulate_range=_BlockSource(int(seed), cfg),
        block_events=_BLOCK_EVENTS,
        chunk_events=chunk_events,
        workers=workers,
        progress=progress,
        label=target.name,
        source="ta_sd",
    )


def _header(n_events: int, seed: int, cfg: TaSdConfig) -> dict[str, Any]:
    return {
        "task": "ta_sd",
        "generator": "hpsearch.simulate.ta_sd",
        "generator_version": GENERATOR_VERSION,
        "seed": seed,
        "n_events": n_events,
        "config": cfg.to_json(),
        "units": "VEM",
        "bin_ns": cfg.bin_ns,
        "spacing_m": cfg.spacing_m,
        "counter_area_m2": cfg.counter_area_m2,
        "pretrigger_bins": cfg.pretrigger_bins,
        "layer_names": json.dumps(list(LAYER_NAMES)),
        "primaries": json.dumps([PRIMARY_NAMES.get(a, f"A={a}") for a in cfg.primaries]),
        "target_names": json.dumps(list(TARGET_NAMES)),
        "fit": fitmod.__name__,
    }
