"""The Telescope Array SD standard reconstruction: a joint LDF + timing chi^2 fit, and its metrics.

Why here: the ``ta_sd`` seed task regresses the *errors* of this fit (truth minus fit), and a
network is judged against it, so the toy data need a real fit, run event by event with the same
formulas as the TA analysis. :mod:`hpsearch.simulate.ta_sd` calls :func:`fit_events` inside each
chunk of events (so in the worker processes), and the task's objective and baseline use the
metric helpers at the end of this module.

Formulas (science.md section 2; seed 002, the TA lecture; Ivanov et al., Mach. Learn.: Sci.
Technol. 2 (2021) 015006, arXiv:2005.07117; Abu-Zayyad et al., NIM A 689 (2012) 87 for the
detector), with distances in m, times in ns, signals in VEM per m^2 of counter:

* LDF: ``f(r) = (r/Rm)^-1.2 (1 + r/Rm)^-(eta - 1.2) (1 + r^2/R1^2)^-0.6``, ``Rm = 90 m``,
  ``R1 = 1000 m``, ``eta = 3.97 - 1.79 (sec(theta) - 1)``; ``S(r) = S800 f(r) / f(800 m)``,
  ``r`` the distance from the shower axis in the shower plane.
* Timing: ``t = t0 + t_plane + a tau_a (1 + r/RL)^1.5 LDF(r)^-0.5`` with ``RL = 30 m`` and
  ``LDF(r) = f(r)/f(800 m)``; ``t_plane = -(d . u) / c`` for a counter at ``d`` from the core
  and ``u`` the unit vector towards the arrival direction. ``a`` is TA's curvature parameter
  (about 3.4 for vertical showers, :func:`curvature_a`), dimensionless here: with
  ``LDF`` normalised at 800 m, reading ``a`` in ns would put the front some 10 us behind the
  plane at 2 km, several times the curvature TA measures (Mayta Palacios et al., PoS
  ICRC2019 347), so the unit ``tau_a`` (:data:`CURVATURE_UNIT_NS`, *estimate*) carries the
  scale: the front's leading edge then lies ~20 ns behind the plane at 800 m and ~0.6 us at
  2 km (vertical), like a front of ~12 km radius there.
* Signal variance: ``sigma_S^2 = 2 S / A + (0.15 S)^2`` with ``A = 3 m^2`` (science.md); its
  Poisson part enters the fit as a Poisson deviance (:func:`signal_residual`).
* Timing variance: ``sigma_t^2 = (30 ns)^2 + thickness^2`` (science.md), thickness ``kappa
  (1 + r/RL)^1.5 rho^-0.3`` with ``rho`` the counter's measured density (VEM/m^2). TA writes
  ``kappa = 0.377 a sqrt(S800)`` ns; our toy's leading edge (the first particle of a disk of
  Linsley's thickness, plus a front roughness; see :mod:`~hpsearch.simulate.ta_sd`) keeps
  TA's shape (its residual width falls like ``rho^-0.3`` to ``rho^-0.4``) but has a constant
  ``kappa = 1.2 ns`` (:data:`THICKNESS_NS`, *estimate*, calibrated on the toy's residuals).
* Energy: ``E = 3.37e17 eV (S800 / 1.22 / att(theta))^1.12``, ``att(theta) = exp(-1.326e-7
  (theta_deg^4 - 28.65^4))`` (science.md; an analytic stand-in for TA's Monte Carlo energy
  table). At 10 EeV and 25 deg it gives S800 ~ 26 VEM/m^2.

The fit (:func:`fit_events`), as TA's, in stages: a start (signal-weighted centroid of the hit
counters for the core, a plane fit of their times for the direction), an LDF fit of core and
S800 with the plane's direction, a timing fit of direction, ``t0`` and ``a`` with that core,
and a joint LDF + timing fit of all seven parameters ``x_core, y_core, theta, phi, S800, t0,
a``. LDF terms use the hit, unsaturated counters and the counters without a hit next to them
(censored at the trigger level: they bound the footprint); timing terms use the hit counters.
Each stage is a Levenberg-Marquardt fit written in numpy and run on a whole batch of events at
once (the Jacobian by forward differences), which is what makes 10^4 events take seconds, not
hours.
The direction is fitted as the ground-frame direction cosines ``(u_x, u_y)``, which stay
regular at the zenith where ``phi`` does not.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "CURVATURE_UNIT_NS",
    "FIT_FIELDS",
    "SPEED_OF_LIGHT_M_PER_NS",
    "TARGET_NAMES",
    "THICKNESS_NS",
    "angular_resolution_deg",
    "attenuation",
    "curvature_a",
    "direction_cosines",
    "energy_from_s800",
    "energy_resolution",
    "fit_events",
    "fit_scores",
    "front_delay_ns",
    "ldf",
    "ldf_shape",
    "s800_from_energy",
    "shower_plane_distance",
    "signal_residual",
    "signal_sigma",
    "space_angle_deg",
    "timing_sigma_ns",
]

Array = NDArray[np.float64]

SPEED_OF_LIGHT_M_PER_NS = 0.299792458
"""Speed of light in m/ns: the shower front moves at c."""

LDF_RM_M = 90.0
"""LDF Moliere-like scale Rm, m (science.md; seed 002)."""
LDF_R1_M = 1000.0
"""LDF outer scale R1, m (science.md; seed 002)."""
LDF_REF_M = 800.0
"""Reference distance of S800, m (TA)."""
TIMING_RL_M = 30.0
"""Linsley's scale RL of the front delay and thickness, m (science.md; Linsley, J. Phys. G 12
(1986) 51)."""
CURVATURE_UNIT_NS = 0.04
"""Unit tau_a of the curvature parameter ``a`` in the delay term, ns (*estimate*, module
docstring)."""
COUNTER_AREA_M2 = 3.0
"""Area of one TA counter (each of its two layers), m^2 (Abu-Zayyad et al. 2012)."""
SIGNAL_POISSON_FACTOR = 2.0
"""The 2 in sigma_S^2 = 2 S / A + (0.15 S)^2 (science.md)."""
SIGNAL_RELATIVE_SIGMA = 0.15
"""The 0.15 in the same formula (science.md)."""
TIME_RESOLUTION_NS = 30.0
"""Constant term of the timing error, ns (science.md)."""
THICKNESS_NS = 1.2
"""``kappa`` of the fit's thickness term ``kappa (1 + r/RL)^1.5 rho^-0.3``, ns (*estimate*,
calibrated on the toy's timing residuals)."""
ENERGY_NORM_EV = 3.37e17
ENERGY_S800_NORM = 1.22
ENERGY_EXPONENT = 1.12
ATTENUATION_COEF = 1.326e-7
ATTENUATION_REF_DEG = 28.65

TARGET_NAMES: tuple[str, ...] = ("u_x", "u_y", "log10_energy_ev", "x_core_km", "y_core_km")
"""Regression targets, in column order (``/targets/*`` and their ``target_names``).

``u_x, u_y``: ground-frame direction cosines of the arrival direction (``sin(theta)
cos(phi)``, ``sin(theta) sin(phi)``), the unit vector towards the source projected on the
ground; with ``u_z = sqrt(1 - u_x^2 - u_y^2)`` they give the space angle, hence the angular
resolution, and unlike ``(theta, phi)`` they are smooth at the zenith and have no 360 deg
wrap. ``log10_energy_ev`` gives ``dE/E``. The core, in km from the grid centre, keeps all five
targets of order one.
"""

FIT_FIELDS: dict[str, type[np.generic]] = {
    "x_core_m": np.float32,
    "y_core_m": np.float32,
    "theta_deg": np.float32,
    "phi_deg": np.float32,
    "u_x": np.float32,
    "u_y": np.float32,
    "s800": np.float32,
    "log10_energy_ev": np.float32,
    "t0_ns": np.float32,
    "curvature_a": np.float32,
    "chi2": np.float32,
    "chi2_ldf": np.float32,
    "chi2_time": np.float32,
    "ndf": np.int16,
    "chi2_ndf": np.float32,
    "n_counters": np.int16,
    "converged": np.int8,
}
"""What :func:`fit_events` returns per event (core in the caller's ground frame, m; S800 in
VEM/m^2; ``n_counters`` the hit counters used)."""

_MAX_SIN_THETA = math.sin(math.radians(80.0))
_PARAMS = 7  # x_core, y_core, u_x, u_y, ln S800, t0, a
_STEPS = np.array([0.5, 0.5, 1e-5, 1e-5, 1e-5, 0.05, 1e-4])


# --------------------------------------------------------------------------- formulas


def ldf_shape(r_m: ArrayLike, theta_rad: ArrayLike) -> Array:
    """TA's LDF shape ``f(r)`` (unnormalised), at shower-plane distance ``r_m`` (m)."""
    r = np.maximum(np.asarray(r_m, dtype=np.float64), 1.0)
    theta = np.asarray(theta_rad, dtype=np.float64)
    eta = 3.97 - 1.79 * (1.0 / np.cos(theta) - 1.0)
    x = r / LDF_RM_M
    shape: Array = x**-1.2 * (1.0 + x) ** -(eta - 1.2) * (1.0 + (r / LDF_R1_M) ** 2) ** -0.6
    return shape


def ldf(r_m: ArrayLike, theta_rad: ArrayLike) -> Array:
    """LDF normalised at 800 m: ``S(r) / S800`` (dimensionless)."""
    return ldf_shape(r_m, theta_rad) / ldf_shape(LDF_REF_M, theta_rad)


def attenuation(theta_deg: ArrayLike) -> Array:
    """TA's attenuation ``att(theta)`` of S800 with zenith angle (1 at 28.65 deg)."""
    theta = np.asarray(theta_deg, dtype=np.float64)
    att: Array = np.exp(-ATTENUATION_COEF * (theta**4 - ATTENUATION_REF_DEG**4))
    return att


def energy_from_s800(s800: ArrayLike, theta_deg: ArrayLike) -> Array:
    """Energy in eV from S800 (VEM/m^2) and zenith (deg): the SD energy formula."""
    s = np.maximum(np.asarray(s800, dtype=np.float64), 1e-6)
    energy: Array = ENERGY_NORM_EV * (s / ENERGY_S800_NORM / attenuation(theta_deg)) ** (
        ENERGY_EXPONENT
    )
    return energy


def s800_from_energy(energy_ev: ArrayLike, theta_deg: ArrayLike) -> Array:
    """S800 in VEM/m^2 of a shower of ``energy_ev`` at ``theta_deg``: the formula inverted."""
    e = np.asarray(energy_ev, dtype=np.float64)
    s800: Array = (
        ENERGY_S800_NORM * attenuation(theta_deg) * (e / ENERGY_NORM_EV) ** (1.0 / ENERGY_EXPONENT)
    )
    return s800


def curvature_a(theta_deg: ArrayLike) -> Array:
    """TA's mean curvature parameter ``a(theta)`` (dimensionless; delay unit tau_a).

    3.3836 - 0.01848 theta below 25 deg, a cubic joining it to ``exp(2 - 0.03214 theta)``
    above 35 deg (TA SD analysis, as used by Ivanov et al. 2021; science.md quotes ~3.4 at
    vertical and ``exp(2 - 0.032 theta_deg)`` above 35 deg).
    """
    t = np.asarray(theta_deg, dtype=np.float64)
    low = 3.3836 - 0.01848 * t
    mid = 0.6511268210e-4 * (t - 0.2614963683) * (t * t - 134.7902422 * t + 4558.524091)
    high = np.exp(-0.03214 * t + 2.0)
    a: Array = np.where(t < 25.0, low, np.where(t < 35.0, mid, high))
    return a


def front_delay_ns(r_m: ArrayLike, theta_rad: ArrayLike, a: ArrayLike) -> Array:
    """Delay of the front's leading edge behind the shower plane, ns (Linsley form)."""
    r = np.maximum(np.asarray(r_m, dtype=np.float64), 1.0)
    delay: Array = (
        np.asarray(a, dtype=np.float64)
        * CURVATURE_UNIT_NS
        * (1.0 + r / TIMING_RL_M) ** 1.5
        * ldf(r, theta_rad) ** -0.5
    )
    return delay


def signal_sigma(s_vem_m2: ArrayLike, area_m2: float = COUNTER_AREA_M2) -> Array:
    """Standard deviation of a counter's signal density, VEM/m^2: TA's variance model."""
    s = np.maximum(np.asarray(s_vem_m2, dtype=np.float64), 0.0)
    sigma: Array = np.sqrt(
        SIGNAL_POISSON_FACTOR * s / area_m2 + (SIGNAL_RELATIVE_SIGMA * s) ** 2 + 1e-6
    )
    return sigma


def signal_residual(observed: ArrayLike, predicted: ArrayLike) -> Array:
    """Signed square root of a counter's chi^2 term under TA's signal-variance model.

    ``sigma_S^2 = 2 S / A + (0.15 S)^2``: its Poisson part (a Poisson count of effective
    particles of ``2 / A`` VEM/m^2) enters as a Poisson deviance, divided by ``1 + (0.15 S)^2 /
    (2 S / A)`` for the relative term. Near ``observed = predicted`` the square is
    ``(o - p)^2 / sigma_S(p)^2``, TA's chi^2 term; unlike that chi^2 with the predicted
    variance, which pulls S800 up by tens of percent when many counters see a few VEM, the
    deviance gives an unbiased scale, and it stays finite for counters with zero signal.

    Args:
        observed: Measured densities, VEM/m^2 (0 for counters without a hit).
        predicted: The LDF's densities, VEM/m^2.
    """
    per_particle = SIGNAL_POISSON_FACTOR / COUNTER_AREA_M2
    o = np.maximum(np.asarray(observed, dtype=np.float64), 0.0) / per_particle
    p = np.maximum(np.asarray(predicted, dtype=np.float64), 1e-9) / per_particle
    with np.errstate(divide="ignore", invalid="ignore"):
        log_term = np.where(o > 0, o * np.log(np.maximum(o, 1e-300) / p), 0.0)
    deviance = np.maximum(2.0 * (p - o + log_term), 0.0)
    inflate = 1.0 + SIGNAL_RELATIVE_SIGMA**2 * p  # (0.15 S)^2 / (2 S / A), p = S A / 2
    residual: Array = np.sign(o - p) * np.sqrt(deviance / inflate)
    return residual


def timing_sigma_ns(r_m: ArrayLike, rho_vem_m2: ArrayLike) -> Array:
    """Timing error of a counter, ns: ``sqrt(30^2 + (kappa (1 + r/RL)^1.5 rho^-0.3)^2)``.

    ``rho`` (VEM/m^2) is the counter's *measured* density, floored at 0.1: with the LDF's
    density instead, the timing chi^2 would fall as S800 falls and pull the energy down.
    """
    r = np.maximum(np.asarray(r_m, dtype=np.float64), 1.0)
    rho = np.maximum(np.asarray(rho_vem_m2, dtype=np.float64), 0.1)
    thickness = THICKNESS_NS * (1.0 + r / TIMING_RL_M) ** 1.5 * rho**-0.3
    sigma: Array = np.sqrt(TIME_RESOLUTION_NS**2 + thickness**2)
    return sigma


def direction_cosines(theta_deg: ArrayLike, phi_deg: ArrayLike) -> tuple[Array, Array]:
    """Ground-frame direction cosines ``(u_x, u_y)`` of the arrival direction."""
    theta = np.radians(np.asarray(theta_deg, dtype=np.float64))
    phi = np.radians(np.asarray(phi_deg, dtype=np.float64))
    return np.sin(theta) * np.cos(phi), np.sin(theta) * np.sin(phi)


def _angles(ux: Array, uy: Array) -> tuple[Array, Array]:
    """``(theta_deg, phi_deg)`` from direction cosines; phi in [0, 360)."""
    s = np.minimum(np.hypot(ux, uy), 1.0)
    theta = np.degrees(np.arcsin(s))
    phi = np.degrees(np.arctan2(uy, ux)) % 360.0
    return theta, phi


def shower_plane_distance(dx: Array, dy: Array, ux: Array, uy: Array) -> tuple[Array, Array]:
    """``(r, d.u)``: distance from the axis in the shower plane, and the projection on it.

    ``(dx, dy)`` is a counter's ground position relative to the core (m); ``(ux, uy)`` the
    direction cosines (``u_z`` follows). Counters sit on flat ground (z = 0).
    """
    along = dx * ux + dy * uy
    r2 = np.maximum(dx * dx + dy * dy - along * along, 0.0)
    return np.sqrt(r2), along


# --------------------------------------------------------------------------- the fit


class _Problem:
    """One batch of events' counter data, and the fit's residuals for a set of parameters."""

    def __init__(
        self,
        x_m: Array,
        y_m: Array,
        signal: Array,
        time_ns: Array,
        ldf_mask: NDArray[np.bool_],
        time_mask: NDArray[np.bool_],
        censored: NDArray[np.bool_],
    ) -> None:
        self.censored = censored
        self.x = x_m
        self.y = y_m
        self.signal = signal
        self.time = time_ns
        self.ldf_mask = ldf_mask
        self.time_mask = time_mask

    def residuals(self, q: Array, sel: NDArray[np.intp], use_ldf: bool, use_time: bool) -> Array:
        """Normalised residuals ``(len(sel), 2 M)``: LDF terms, then timing terms (0 if unused)."""
        x = self.x[sel]
        y = self.y[sel]
        ux, uy = q[:, 2:3], q[:, 3:4]
        s = np.hypot(ux, uy)
        scale = np.where(s > _MAX_SIN_THETA, _MAX_SIN_THETA / np.maximum(s, 1e-12), 1.0)
        ux, uy = ux * scale, uy * scale
        theta = np.arcsin(np.minimum(s * scale, 1.0))
        r, along = shower_plane_distance(x - q[:, 0:1], y - q[:, 1:2], ux, uy)
        shape = ldf(r, theta)
        s800 = np.exp(np.clip(q[:, 4:5], -20.0, 20.0))
        predicted = s800 * shape
        m = x.shape[1]
        out = np.zeros((sel.shape[0], 2 * m))
        if use_ldf:
            observed = self.signal[sel]
            ldf_res = signal_residual(observed, predicted)
            # A counter without a hit only says its density was below the trigger level.
            below = self.censored[sel] & (predicted <= observed)
            out[:, :m] = np.where(self.ldf_mask[sel] & ~below, ldf_res, 0.0)
        if use_time:
            delay = (
                q[:, 6:7]
                * CURVATURE_UNIT_NS
                * (1.0 + np.maximum(r, 1.0) / TIMING_RL_M) ** 1.5
                * shape**-0.5
            )
            t_model = q[:, 5:6] - along / SPEED_OF_LIGHT_M_PER_NS + delay
            time_res = (self.time[sel] - t_model) / timing_sigma_ns(r, self.signal[sel])
            out[:, m:] = np.where(self.time_mask[sel], time_res, 0.0)
        return out


def _levenberg_marquardt(
    residuals: Callable[[Array, NDArray[np.intp]], Array],
    q0: Array,
    free: Sequence[int],
    max_iter: int = 60,
    ftol: float = 1e-7,
) -> tuple[Array, Array, NDArray[np.bool_]]:
    """Minimise the sum of squared residuals of every event at once.

    Each event has its own damping; an event stops when a step lowers its cost by less than
    ``ftol`` relative (converged), or after ``max_iter`` iterations (not converged). Frozen
    parameters keep their start values.

    Returns:
        ``(q, cost, converged)``: parameters ``(B, 7)``, sum of squares ``(B,)``, flags.
    """
    q = q0.copy()
    n = q.shape[0]
    free_idx = np.asarray(free, dtype=np.intp)
    all_events = np.arange(n, dtype=np.intp)
    res = residuals(q, all_events)
    cost = np.sum(res * res, axis=1)
    lam = np.full(n, 1e-2)
    active = np.isfinite(cost)
    converged = np.zeros(n, dtype=bool)
    for _ in range(max_iter):
        sel = np.flatnonzero(active)
        if sel.size == 0:
            break
        qs = q[sel]
        r0 = res[sel]
        jac = np.empty((sel.size, r0.shape[1], free_idx.size))
        for k, p in enumerate(free_idx):
            step = _STEPS[p] * (np.maximum(1.0, np.abs(qs[:, p])) if p == 6 else 1.0)
            shifted = qs.copy()
            shifted[:, p] += step
            jac[:, :, k] = (residuals(shifted, sel) - r0) / (
                step if np.ndim(step) == 0 else step[:, None]
            )
        jtj = np.einsum("bmi,bmj->bij", jac, jac)
        grad = np.einsum("bmi,bm->bi", jac, r0)
        diag = np.maximum(np.diagonal(jtj, axis1=1, axis2=2), 1e-9)
        system = jtj + (lam[sel, None] * diag)[:, :, None] * np.eye(free_idx.size)
        try:
            delta = -np.linalg.solve(system, grad[:, :, None])[:, :, 0]
        except np.linalg.LinAlgError:
            delta = -np.stack(
                [np.linalg.lstsq(a, g, rcond=None)[0] for a, g in zip(system, grad, strict=True)]
            )
        trial = qs.copy()
        trial[:, free_idx] += delta
        trial_res = residuals(trial, sel)
        trial_cost = np.sum(trial_res * trial_res, axis=1)
        better = np.isfinite(trial_cost) & (trial_cost <= cost[sel])
        gain = cost[sel] - trial_cost
        good = sel[better]
        q[good] = trial[better]
        res[good] = trial_res[better]
        tiny = 1e-12 * r0.shape[1]  # at the exact minimum (noiseless data)
        done = better & ((gain <= ftol * cost[sel]) | (trial_cost <= tiny))
        cost[good] = trial_cost[better]
        lam[good] = np.maximum(lam[good] / 3.0, 1e-9)
        lam[sel[~better]] *= 5.0
        # A step that cannot lower the cost even at heavy damping: at a minimum.
        stuck = ~better & ((lam[sel] > 1e9) | (cost[sel] <= tiny))
        finished = sel[done | stuck]
        converged[finished] = True
        active[finished] = False
    return q, cost, converged


def _neighbour_zeros(
    x_m: Array, y_m: Array, hit: NDArray[np.bool_], radius_m: float
) -> NDArray[np.bool_]:
    """Counters without a hit within ``radius_m`` of a hit counter (zero-signal LDF terms)."""
    dist2 = (x_m[:, :, None] - x_m[:, None, :]) ** 2 + (y_m[:, :, None] - y_m[:, None, :]) ** 2
    near = dist2 <= radius_m * radius_m
    next_to_hit = np.einsum("bij,bj->bi", near.astype(np.float64), hit.astype(np.float64)) > 0
    zeros: NDArray[np.bool_] = next_to_hit & ~hit
    return zeros


def fit_events(
    x_m: ArrayLike,
    y_m: ArrayLike,
    signal_vem_m2: ArrayLike,
    time_ns: ArrayLike,
    hit: ArrayLike,
    saturated: ArrayLike | None = None,
    *,
    zero_signal_radius_m: float | None = None,
    threshold_vem_m2: float = 0.1,
) -> dict[str, NDArray[Any]]:
    """Fit every event's LDF and timing: TA's standard reconstruction, on a batch of events.

    Args:
        x_m: Counter ground positions, east, m: ``(M,)`` shared by all events or ``(B, M)``.
        y_m: Same, north.
        signal_vem_m2: ``(B, M)`` counter signals, VEM per m^2 of counter (0 without a hit).
        time_ns: ``(B, M)`` counter arrival times (leading edge), ns, any common origin.
        hit: ``(B, M)`` whether the counter recorded a signal.
        saturated: ``(B, M)`` saturated counters (kept for timing, left out of the LDF, as TA
            does); ``None`` for none.
        zero_signal_radius_m: Counters without a hit this close to a hit counter enter the LDF
            as censored terms; ``None`` means 1.5 times the closest counter separation.
        threshold_vem_m2: Density below which a counter records nothing (TA: ~0.3 VEM over
            3 m^2). A counter without a hit costs nothing where the LDF predicts less, and
            the deviance from this level where it predicts more.

    Returns:
        One ``(B,)`` array per :data:`FIT_FIELDS` entry: the core in the frame of ``x_m, y_m``,
        ``theta_deg``, ``phi_deg`` (in [0, 360), east = 0, north = 90, the direction the
        shower comes from), the direction cosines, ``s800`` (VEM/m^2), the energy from the
        energy formula, ``t0_ns`` (the core's time in the frame of ``time_ns``),
        ``curvature_a``, the joint fit's ``chi2`` (and its LDF and timing parts), ``ndf``,
        ``chi2_ndf`` and ``converged`` (the joint fit ended on its tolerance with finite
        values, ``ndf >= 1``, its core within a spacing of the hit counters and its zenith
        below the 80 deg limit), and
        ``n_counters`` (hit counters). Events with fewer than 3 hit counters cannot be fitted
        and come back with their start values and ``converged = 0``.
    """
    signal = np.asarray(signal_vem_m2, dtype=np.float64)
    times = np.asarray(time_ns, dtype=np.float64)
    hits = np.asarray(hit, dtype=bool)
    n_events, m = signal.shape
    xs = np.broadcast_to(np.asarray(x_m, dtype=np.float64), (n_events, m))
    ys = np.broadcast_to(np.asarray(y_m, dtype=np.float64), (n_events, m))
    sat = np.zeros_like(hits) if saturated is None else np.asarray(saturated, dtype=bool) & hits
    if zero_signal_radius_m is None:
        d2 = (xs[0, :, None] - xs[0, None, :]) ** 2 + (ys[0, :, None] - ys[0, None, :]) ** 2
        d2[np.diag_indices(m)] = np.inf
        zero_signal_radius_m = 1.5 * float(np.sqrt(d2.min())) if m > 1 else 0.0
    zeros = _neighbour_zeros(xs, ys, hits, zero_signal_radius_m)
    ldf_mask = (hits & ~sat) | zeros
    start_signal = np.where(hits, signal, 0.0)
    signal = np.where(hits, signal, threshold_vem_m2)
    times = np.where(hits, times, 0.0)
    problem = _Problem(xs, ys, signal, times, ldf_mask, hits, zeros)
    n_hit = hits.sum(axis=1)
    fittable = n_hit >= 3

    q = _start(xs, ys, start_signal, times, hits)

    def ldf_only(qq: Array, sel: NDArray[np.intp]) -> Array:
        return problem.residuals(qq, sel, True, False)

    def time_only(qq: Array, sel: NDArray[np.intp]) -> Array:
        return problem.residuals(qq, sel, False, True)

    def joint(qq: Array, sel: NDArray[np.intp]) -> Array:
        return problem.residuals(qq, sel, True, True)

    q, _, _ = _levenberg_marquardt(ldf_only, q, free=(0, 1, 4))
    q, _, _ = _levenberg_marquardt(time_only, q, free=(2, 3, 5, 6))
    q, cost, ok_joint = _levenberg_marquardt(joint, q, free=range(_PARAMS), max_iter=100)
    final = joint(q, np.arange(n_events, dtype=np.intp))

    scale = np.minimum(1.0, _MAX_SIN_THETA / np.maximum(np.hypot(q[:, 2], q[:, 3]), 1e-12))
    ux, uy = q[:, 2] * scale, q[:, 3] * scale
    theta, phi = _angles(ux, uy)
    s800 = np.exp(np.clip(q[:, 4], -20.0, 20.0))
    n_terms = ldf_mask.sum(axis=1) + hits.sum(axis=1)
    ndf = n_terms - _PARAMS
    chi2_ndf = np.where(ndf > 0, cost / np.maximum(ndf, 1), np.nan)
    finite = np.isfinite(q).all(axis=1) & np.isfinite(cost)
    # A core outside the hit counters' box widened by a spacing, or a direction pinned at the
    # 80 deg limit, is a fit that ran away, whatever its tolerance said.
    hx = np.where(hits, xs, np.nan)
    hy = np.where(hits, ys, np.nan)
    with np.errstate(all="ignore"):
        margin = zero_signal_radius_m / 1.5 if zero_signal_radius_m > 0 else 1000.0
        inside = (
            (q[:, 0] >= np.nanmin(hx, axis=1) - margin)
            & (q[:, 0] <= np.nanmax(hx, axis=1) + margin)
            & (q[:, 1] >= np.nanmin(hy, axis=1) - margin)
            & (q[:, 1] <= np.nanmax(hy, axis=1) + margin)
        )
    pinned = np.hypot(q[:, 2], q[:, 3]) >= _MAX_SIN_THETA * (1.0 - 1e-9)
    converged = fittable & ok_joint & finite & (ndf >= 1) & inside & ~pinned
    energy = energy_from_s800(s800, theta)
    out: dict[str, NDArray[Any]] = {
        "x_core_m": q[:, 0],
        "y_core_m": q[:, 1],
        "theta_deg": theta,
        "phi_deg": phi,
        "u_x": ux,
        "u_y": uy,
        "s800": s800,
        "log10_energy_ev": np.log10(energy),
        "t0_ns": q[:, 5],
        "curvature_a": q[:, 6],
        "chi2": cost,
        "chi2_ldf": np.sum(final[:, :m] ** 2, axis=1),
        "chi2_time": np.sum(final[:, m:] ** 2, axis=1),
        "ndf": ndf,
        "chi2_ndf": chi2_ndf,
        "n_counters": n_hit,
        "converged": converged,
    }
    return {
        name: np.nan_to_num(np.asarray(out[name], dtype=np.float64), nan=-1.0).astype(dtype)
        for name, dtype in FIT_FIELDS.items()
    }


def _start(xs: Array, ys: Array, signal: Array, times: Array, hits: NDArray[np.bool_]) -> Array:
    """Start values: signal-weighted core, plane-fit direction, LDF-based S800, TA's ``a``."""
    n = signal.shape[0]
    w = np.where(hits, np.maximum(signal, 1e-3), 0.0)
    total = np.maximum(w.sum(axis=1), 1e-12)
    xc = (w * xs).sum(axis=1) / total
    yc = (w * ys).sum(axis=1) / total
    # Plane fit: t = t0 - (x ux + y uy) / c over the hit counters (positions from the core).
    hw = hits.astype(np.float64)
    dx = (xs - xc[:, None]) / SPEED_OF_LIGHT_M_PER_NS
    dy = (ys - yc[:, None]) / SPEED_OF_LIGHT_M_PER_NS
    design = np.stack([np.ones_like(dx), -dx, -dy], axis=2) * hw[:, :, None]
    normal = np.einsum("bmi,bmj->bij", design, design) + 1e-9 * np.eye(3)
    rhs = np.einsum("bmi,bm->bi", design, times * hw)
    solution = np.linalg.solve(normal, rhs[:, :, None])[:, :, 0]
    ux, uy = solution[:, 1], solution[:, 2]
    s = np.hypot(ux, uy)
    limit = math.sin(math.radians(60.0))
    shrink = np.where(s > limit, limit / np.maximum(s, 1e-12), 1.0)
    ux, uy = ux * shrink, uy * shrink
    theta = np.arcsin(np.minimum(np.hypot(ux, uy), 1.0))
    r, along = shower_plane_distance(xs - xc[:, None], ys - yc[:, None], ux[:, None], uy[:, None])
    ratio = np.where(hits & (signal > 0), signal / ldf(r, theta[:, None]), np.nan)
    with np.errstate(all="ignore"):
        s800 = np.nanmedian(np.where(np.isfinite(ratio), ratio, np.nan), axis=1)
    s800 = np.where(np.isfinite(s800) & (s800 > 0), s800, 10.0)
    a = curvature_a(np.degrees(theta))
    delay = front_delay_ns(r, theta[:, None], a[:, None])
    offsets = np.where(hits, times + along / SPEED_OF_LIGHT_M_PER_NS - delay, np.nan)
    with np.errstate(all="ignore"):
        t0 = np.nanmedian(offsets, axis=1)
    t0 = np.where(np.isfinite(t0), t0, 0.0)
    q = np.zeros((n, _PARAMS))
    q[:, 0], q[:, 1], q[:, 2], q[:, 3] = xc, yc, ux, uy
    q[:, 4], q[:, 5], q[:, 6] = np.log(s800), t0, a
    return q


# --------------------------------------------------------------------------- metrics


def _unit_vectors(u: ArrayLike) -> Array:
    """``(n, 3)`` unit vectors from ``(n, 2)`` direction cosines or ``(n, 3)`` vectors."""
    arr = np.asarray(u, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] not in (2, 3):
        raise ValueError(f"directions must be (n, 2) or (n, 3), got shape {arr.shape}")
    if arr.shape[1] == 2:
        # Clip predictions that leave the unit disk onto the horizon rather than failing.
        s = np.hypot(arr[:, 0], arr[:, 1])
        scale = np.where(s > 1.0, 1.0 / np.maximum(s, 1e-12), 1.0)
        xy = arr * scale[:, None]
        z = np.sqrt(np.maximum(1.0 - np.sum(xy * xy, axis=1), 0.0))
        arr = np.column_stack([xy, z])
    norm = np.linalg.norm(arr, axis=1, keepdims=True)
    unit: Array = arr / np.maximum(norm, 1e-12)
    return unit


def space_angle_deg(u_pred: ArrayLike, u_true: ArrayLike) -> Array:
    """Angle between predicted and true arrival directions, deg, per event.

    Args:
        u_pred: ``(n, 2)`` ground-frame direction cosines ``(u_x, u_y)`` (the targets' first
            two columns; ``u_z`` follows, upward) or ``(n, 3)`` vectors (normalised here).
        u_true: Same for the truth.
    """
    a = _unit_vectors(u_pred)
    b = _unit_vectors(u_true)
    cross = np.linalg.norm(np.cross(a, b), axis=1)
    dot = np.sum(a * b, axis=1)
    angle: Array = np.degrees(np.arctan2(cross, dot))  # accurate at small angles, unlike acos
    return angle


def angular_resolution_deg(u_pred: ArrayLike, u_true: ArrayLike, quantile: float = 0.68) -> float:
    """The angular resolution: the 68% quantile of the space angle, deg (TA's definition)."""
    return float(np.quantile(space_angle_deg(u_pred, u_true), quantile))


def energy_resolution(log10_e_pred: ArrayLike, log10_e_true: ArrayLike) -> float:
    """Energy resolution: the standard deviation of ``dE/E = E_pred / E_true - 1``."""
    diff = np.asarray(log10_e_pred, dtype=np.float64) - np.asarray(log10_e_true, dtype=np.float64)
    return float(np.std(10.0**diff - 1.0))


def fit_scores(
    source: str | Path | Mapping[str, Any],
    events: ArrayLike | slice | None = None,
    *,
    converged_only: bool = False,
) -> dict[str, float]:
    """The standard fit's resolution on the given events of a ``ta_sd`` file (or arrays).

    The number a network must beat: computed from ``/targets/truth`` and the fit's values in
    the same columns (``truth - fit_error``), with the helpers above.

    Args:
        source: A ``ta_sd`` HDF5 file, or a mapping with ``"truth"`` and ``"fit"`` arrays
            ``(n, 5)`` in :data:`TARGET_NAMES` order (optionally ``"converged"``).
        events: Indices, a boolean mask or a slice of the events to score (e.g. the test
            split); ``None`` for all.
        converged_only: Score only events whose fit converged.

    Returns:
        ``angular_resolution_deg`` (68% quantile), ``energy_resolution`` (std of dE/E),
        ``energy_bias`` (mean dE/E), ``core_resolution_m`` (68% quantile of the core
        distance), ``converged_fraction`` and ``n_events`` (scored).
    """
    if isinstance(source, Mapping):
        truth = np.asarray(source["truth"], dtype=np.float64)
        fit = np.asarray(source["fit"], dtype=np.float64)
        converged = np.asarray(source.get("converged", np.ones(len(truth))), dtype=bool)
    else:
        import h5py

        with h5py.File(source, "r") as h5:
            truth = h5["targets/truth"][...].astype(np.float64)
            fit = truth - h5["targets/fit_error"][...].astype(np.float64)
            names = json.loads(h5["targets/truth"].attrs["target_names"])
            converged = h5["fit/converged"][...].astype(bool)
        if tuple(names) != TARGET_NAMES:
            raise ValueError(f"unexpected target columns {names}, expected {TARGET_NAMES}")
    if events is not None:
        selector: Any = events if isinstance(events, slice) else np.asarray(events)
        truth, fit, converged = truth[selector], fit[selector], converged[selector]
    if converged_only:
        truth, fit = truth[converged], fit[converged]
    if truth.shape[0] == 0:
        raise ValueError("no events to score")
    de = 10.0 ** (fit[:, 2] - truth[:, 2]) - 1.0
    core = np.hypot(fit[:, 3] - truth[:, 3], fit[:, 4] - truth[:, 4]) * 1000.0
    return {
        "angular_resolution_deg": angular_resolution_deg(fit[:, :2], truth[:, :2]),
        "energy_resolution": float(np.std(de)),
        "energy_bias": float(np.mean(de)),
        "core_resolution_m": float(np.quantile(core, 0.68)),
        "converged_fraction": float(np.mean(converged)) if converged.size else float("nan"),
        "n_events": float(truth.shape[0]),
    }
