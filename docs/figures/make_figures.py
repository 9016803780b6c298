"""Make the README's sanity-check figures of the seed-task simulators (seeded, ~10 s).

Run from the repository root: ``.venv/bin/python docs/figures/make_figures.py``. Writes

* ``docs/figures/ta_sd_event.png``: one Telescope Array SD event (log10 E ~ 19.3, moderate
  zenith): the counter grid with the true and fitted cores, and the lateral distribution
  around the fitted core with the fitted LDF;
* ``docs/figures/gce_maps.png``: two Galactic-Center maps of the same background model, one
  with a smooth excess (f_src ~ 0) and one with a point-source excess (f_src ~ 0.8), and the
  same maps minus their expected background.

Plotly writes the PNGs through kaleido, which needs a Chrome; the system's chromium is used
when ``BROWSER_PATH`` is not set.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from hpsearch.simulate import gce, ta_sd, ta_sd_fit

OUT_DIR = Path(__file__).resolve().parent
TA_SEED = 2024
GCE_SEED = 11
GCE_MAPS = 200
GCE_MODEL = "snr_z10_ts150"


def _browser() -> None:
    """Point kaleido at the system chromium when no browser is configured."""
    if "BROWSER_PATH" not in os.environ:
        for name in ("chromium", "chromium-browser", "google-chrome"):
            path = shutil.which(name)
            if path:
                os.environ["BROWSER_PATH"] = path
                return


# ---------------------------------------------------------------------------------- ta_sd


def _pick_ta_event(d: dict[str, np.ndarray]) -> int:
    """A typical event: passes cuts, log10 E closest to 19.3 with zenith 25-40 deg."""
    ok = (
        (d["fit/passed_cuts"] == 1)
        & (d["truth/theta_deg"] > 25.0)
        & (d["truth/theta_deg"] < 40.0)
        & (d["truth/n_counters_grid"] >= 6)
    )
    score = np.where(ok, np.abs(d["truth/log10_energy_ev"] - 19.3), np.inf)
    return int(np.argmin(score))


def ta_sd_figure(path: Path) -> None:
    """Counter grid with cores (left) and the lateral distribution with the fitted LDF (right)."""
    cfg = ta_sd.TaSdConfig()
    d = ta_sd.simulate_events(256, TA_SEED, cfg)
    e = _pick_ta_event(d)
    x = d["counters/x_m"][e].ravel().astype(float)
    y = d["counters/y_m"][e].ravel().astype(float)
    signal = d["counters/signal"][e].ravel().astype(float)
    hit = d["counters/hit"][e].ravel().astype(bool)
    saturated = d["counters/saturated"][e].ravel().astype(bool)
    true_core = (float(d["truth/x_core_m"][e]), float(d["truth/y_core_m"][e]))
    fit_core = (float(d["fit/x_core_m"][e]), float(d["fit/y_core_m"][e]))
    theta_fit = float(d["fit/theta_deg"][e])
    phi_fit = float(d["fit/phi_deg"][e])
    s800 = float(d["fit/s800"][e])
    log10_e_true = float(d["truth/log10_energy_ev"][e])
    log10_e_fit = float(d["fit/log10_energy_ev"][e])
    core_error = math.hypot(true_core[0] - fit_core[0], true_core[1] - fit_core[1])

    fig = make_subplots(
        rows=1,
        cols=2,
        column_widths=[0.45, 0.55],
        horizontal_spacing=0.16,
        subplot_titles=(
            "Counter signals (6x6 grid, 1.2 km spacing)",
            "Lateral distribution around the fitted core",
        ),
    )

    # Left: the grid.
    log_s = np.log10(np.maximum(signal, 1e-3))
    km = 1e-3
    fig.add_trace(
        go.Scatter(
            x=x[~hit] * km,
            y=y[~hit] * km,
            mode="markers",
            marker={"symbol": "circle-open", "size": 7, "color": "grey"},
            name="no hit",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=x[hit] * km,
            y=y[hit] * km,
            mode="markers",
            marker={
                "size": 8 + 12 * np.clip(log_s[hit] + 0.5, 0.0, None),
                "color": log_s[hit],
                "colorscale": "Viridis",
                "cmin": -0.5,
                "cmax": float(max(log_s[hit].max(), 1.0)),
                "line": {"width": 1, "color": "black"},
                "colorbar": {
                    "title": {"text": "log10 S [VEM]"},
                    "x": 0.38,
                    "len": 0.9,
                    "thickness": 12,
                },
            },
            text=[f"{s:.1f} VEM" for s in signal[hit]],
            name="hit counter",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[true_core[0] * km],
            y=[true_core[1] * km],
            mode="markers",
            marker={"symbol": "star", "size": 16, "color": "red", "line": {"width": 1}},
            name="true core",
        ),
        row=1,
        col=1,
    )
    fig.add_trace(
        go.Scatter(
            x=[fit_core[0] * km],
            y=[fit_core[1] * km],
            mode="markers",
            marker={"symbol": "x-thin", "size": 16, "line": {"width": 3, "color": "magenta"}},
            name=f"fitted core ({core_error:.0f} m off)",
        ),
        row=1,
        col=1,
    )
    # Arrival azimuth (phi: where the shower comes from, from east towards north).
    arrow = 1.5 * math.sin(math.radians(theta_fit)) / math.sin(math.radians(45.0))
    fig.add_trace(
        go.Scatter(
            x=[fit_core[0] * km, fit_core[0] * km + arrow * math.cos(math.radians(phi_fit))],
            y=[fit_core[1] * km, fit_core[1] * km + arrow * math.sin(math.radians(phi_fit))],
            mode="lines",
            line={"color": "magenta", "width": 2, "dash": "dot"},
            name="fitted arrival azimuth",
        ),
        row=1,
        col=1,
    )
    half = 0.5 * cfg.grid_size * cfg.spacing_m * km
    fig.update_xaxes(
        title_text="x east [km]", range=[-half, half], constrain="domain", row=1, col=1
    )
    fig.update_yaxes(title_text="y north [km]", range=[-half, half], scaleanchor="x", row=1, col=1)

    # Right: the lateral distribution in the shower plane of the fitted direction.
    ux, uy = (float(v) for v in ta_sd_fit.direction_cosines(theta_fit, phi_fit))
    r, _ = ta_sd_fit.shower_plane_distance(x - fit_core[0], y - fit_core[1], ux, uy)
    density = signal / cfg.counter_area_m2
    sigma = ta_sd_fit.signal_sigma(density, cfg.counter_area_m2)
    theta_rad = math.radians(theta_fit)
    r_curve = np.geomspace(200.0, 5000.0, 200)
    unsat = hit & ~saturated
    fig.add_trace(
        go.Scatter(
            x=r[unsat],
            y=density[unsat],
            mode="markers",
            marker={"size": 8, "color": "royalblue"},
            error_y={"type": "data", "array": sigma[unsat], "thickness": 1.2},
            name="hit counter (sigma^2 = 2S/A + (0.15 S)^2)",
        ),
        row=1,
        col=2,
    )
    if saturated.any():
        fig.add_trace(
            go.Scatter(
                x=r[saturated],
                y=density[saturated],
                mode="markers",
                marker={"size": 9, "symbol": "triangle-up", "color": "orange"},
                name="saturated (not in LDF fit)",
            ),
            row=1,
            col=2,
        )
    fig.add_trace(
        go.Scatter(
            x=r_curve,
            y=s800 * ta_sd_fit.ldf(r_curve, theta_rad),
            mode="lines",
            line={"color": "black"},
            name=f"fitted LDF, S800 = {s800:.1f} VEM/m²",
        ),
        row=1,
        col=2,
    )
    fig.add_trace(
        go.Scatter(
            x=[800.0],
            y=[s800],
            mode="markers",
            marker={"symbol": "diamond", "size": 11, "color": "black"},
            showlegend=False,
        ),
        row=1,
        col=2,
    )
    fig.update_xaxes(
        title_text="distance from shower axis r [m]",
        type="log",
        range=[math.log10(200.0), math.log10(5000.0)],
        row=1,
        col=2,
    )
    shown = density[hit]
    fig.update_yaxes(
        title_text="signal density [VEM/m²]",
        type="log",
        dtick=1,
        range=[
            math.floor(math.log10(max(shown.min(), 1e-2))) - 0.3,
            math.ceil(math.log10(max(shown.max(), s800))) + 0.2,
        ],
        row=1,
        col=2,
    )

    fig.update_layout(
        title={
            "text": (
                f"ta_sd event {e} (seed {TA_SEED}): log10(E/eV) true {log10_e_true:.2f}, "
                f"fit {log10_e_fit:.2f}; zenith true {float(d['truth/theta_deg'][e]):.1f}°, "
                f"fit {theta_fit:.1f}°; chi²/ndf {float(d['fit/chi2_ndf'][e]):.2f}"
            ),
            "x": 0.5,
            "font": {"size": 15},
        },
        legend={"x": 0.99, "y": 0.99, "xanchor": "right", "bgcolor": "rgba(255,255,255,0.8)"},
        template="simple_white",
        margin={"l": 60, "r": 20, "t": 80, "b": 60},
    )
    fig.write_image(path, width=1300, height=600, scale=1)


# ------------------------------------------------------------------------------------ gce


def _pick_gce_maps(d: dict[str, np.ndarray]) -> tuple[int, int]:
    """Within one background model: the map with the lowest f_src, and the one nearest 0.8."""
    same = d["background_model"] == GCE_MODEL.encode("ascii")
    y = d["y"]
    low = int(np.argmin(np.where(same, y, np.inf)))
    high = int(np.argmin(np.where(same, np.abs(y - 0.8), np.inf)))
    return low, high


def _smooth(image: np.ndarray, sigma_px: float) -> np.ndarray:
    """Gaussian smoothing (periodic, by FFT): enough for a residual map's display."""
    n0, n1 = image.shape
    f0 = np.fft.fftfreq(n0)[:, None]
    f1 = np.fft.rfftfreq(n1)[None, :]
    transfer = np.exp(-2.0 * math.pi**2 * sigma_px**2 * (f0**2 + f1**2))
    return np.fft.irfft2(np.fft.rfft2(image) * transfer, s=image.shape)


def gce_figure(path: Path) -> None:
    """Counts maps (log colour) and counts minus the expected background, f_src ~ 0 and ~ 0.8."""
    cfg = gce.GceConfig()
    d = gce.simulate_events(GCE_MAPS, GCE_SEED, cfg)
    picks = _pick_gce_maps(d)
    n = cfg.n_pixels
    centres = (np.arange(n) + 0.5) * cfg.pixel_deg - 0.5 * cfg.roi_deg
    lon = -centres  # column 0: highest longitude
    lat = -centres  # row 0: highest latitude

    titles = []
    counts, residuals = [], []
    for i in picks:
        counts.append(d["x"][i, :, :, 0].astype(float))
        _, background = gce.expected_smooth_maps(
            cfg,
            GCE_MODEL,
            float(d["params/gamma"][i]),
            float(d["params/psf_deg"][i]),
            0.0,
            cfg.background_counts * float(d["params/background_scale"][i]),
        )
        residuals.append(_smooth(counts[-1] - background, 1.5))
        titles.append(f"f_src = {float(d['y'][i]):.2f}, bkg {GCE_MODEL} (map {i}): counts")
    for i in picks:
        titles.append(f"f_src = {float(d['y'][i]):.2f}: counts - expected bkg (smoothed 0.5°)")

    fig = make_subplots(
        rows=2, cols=2, subplot_titles=titles, horizontal_spacing=0.14, vertical_spacing=0.1
    )
    log_max = math.log10(max(c.max() for c in counts))
    log_min = math.log10(max(min(np.percentile(c, 1) for c in counts), 1.0))
    ticks = [v for v in (10, 20, 50, 100, 200, 500, 1000, 2000) if log_min <= math.log10(v)]
    res_max = 20.0  # the centre saturates; the scale shows the point sources' clumps
    for k, (c, res) in enumerate(zip(counts, residuals, strict=True)):
        fig.add_trace(
            go.Heatmap(
                z=np.log10(np.maximum(c, 1.0)),
                x=lon,
                y=lat,
                colorscale="Inferno",
                zmin=log_min,
                zmax=log_max,
                colorbar={
                    "title": {"text": "counts"},
                    "tickvals": [math.log10(v) for v in ticks],
                    "ticktext": [str(v) for v in ticks],
                    "x": 1.0,
                    "y": 0.78,
                    "len": 0.42,
                    "thickness": 12,
                },
                showscale=k == 1,
                hovertemplate="l=%{x:.1f} b=%{y:.1f}: 10^%{z:.2f}<extra></extra>",
            ),
            row=1,
            col=k + 1,
        )
        fig.add_trace(
            go.Heatmap(
                z=res,
                x=lon,
                y=lat,
                colorscale="RdBu_r",
                zmin=-res_max,
                zmax=res_max,
                colorbar={
                    "title": {"text": "excess<br>counts/px"},
                    "x": 1.0,
                    "y": 0.22,
                    "len": 0.42,
                    "thickness": 12,
                },
                showscale=k == 1,
            ),
            row=2,
            col=k + 1,
        )
    for row in (1, 2):
        for col in (1, 2):
            fig.update_xaxes(
                title_text="l [deg]", autorange="reversed", constrain="domain", row=row, col=col
            )
            fig.update_yaxes(
                title_text="b [deg]",
                scaleanchor=f"x{'' if (row, col) == (1, 1) else 2 * (row - 1) + col}",
                row=row,
                col=col,
            )
    fig.update_layout(
        title={
            "text": (
                f"gce maps (seed {GCE_SEED}, {n}x{n} px of {cfg.pixel_deg:.2f}°, 1-6 GeV): "
                "smooth vs point-source excess"
            ),
            "x": 0.5,
            "font": {"size": 15},
        },
        template="simple_white",
        margin={"l": 60, "r": 30, "t": 80, "b": 50},
    )
    fig.write_image(path, width=940, height=900, scale=1)


def main() -> None:
    """Write both PNGs next to this script."""
    _browser()
    ta_sd_figure(OUT_DIR / "ta_sd_event.png")
    gce_figure(OUT_DIR / "gce_maps.png")
    for name in ("ta_sd_event.png", "gce_maps.png"):
        print(f"wrote {OUT_DIR / name} ({(OUT_DIR / name).stat().st_size / 1e3:.0f} kB)")


if __name__ == "__main__":
    main()
