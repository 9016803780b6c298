from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hpsearch.errors import InputError
from hpsearch.simulate import ta_sd
from hpsearch.simulate.ta_sd import (
    GENERATOR_VERSION,
    TRUTH_FIELDS,
    TaSdConfig,
    simulate_events,
    simulate_to_file,
)
from hpsearch.simulate.ta_sd_fit import (
    FIT_FIELDS,
    SPEED_OF_LIGHT_M_PER_NS,
    TARGET_NAMES,
    angular_resolution_deg,
    energy_from_s800,
    energy_resolution,
    fit_scores,
    ldf,
    s800_from_energy,
    space_angle_deg,
)

Events = dict[str, np.ndarray]

# A small grid and the shortest trace keep the file tests fast; physics runs on the defaults.
SMALL = TaSdConfig(grid_size=4, apply_cuts=False)
# No fluctuation, no noise, and none of the early/late asymmetry the fit does not model: the
# fit's own model, so it must find the truth.
EXACT = TaSdConfig(noiseless=True, ldf_asymmetry=0.0, delay_asymmetry=0.0, apply_cuts=False)


@pytest.fixture(scope="module")
def events() -> Events:
    """Normal events, no cuts: what the physics and the fit are judged on."""
    return simulate_events(1024, 7, TaSdConfig(apply_cuts=False))


@pytest.fixture(scope="module")
def exact() -> Events:
    return simulate_events(512, 3, EXACT)


def group(ev: Events, prefix: str) -> Events:
    return {k[len(prefix) + 1 :]: v for k, v in ev.items() if k.startswith(prefix + "/")}


def read_file(path: Path) -> Events:
    out: Events = {}
    with h5py.File(path, "r") as h5:
        h5.visititems(
            lambda name, obj: (
                out.__setitem__(name, obj[...]) if isinstance(obj, h5py.Dataset) else None
            )
        )
    return out


def assert_events_equal(a: Events, b: Events) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


# ----------------------------------------------------------------------------- shapes, API


def test_shapes_and_dtypes(events: Events) -> None:
    n, grid, bins = 1024, 6, 128
    assert events["x"].shape == (n, grid, grid, bins, 2)
    assert events["x"].dtype == np.float32
    for name in ("signal", "time", "x_m", "y_m"):
        assert events[f"counters/{name}"].shape == (n, grid, grid)
        assert events[f"counters/{name}"].dtype == np.float32
    for name in ("hit", "saturated"):
        assert events[f"counters/{name}"].dtype == np.int8
    truth, fit = group(events, "truth"), group(events, "fit")
    assert set(truth) == set(TRUTH_FIELDS)
    assert set(fit) == {*FIT_FIELDS, "passed_cuts"}
    for name, dtype in TRUTH_FIELDS.items():
        assert truth[name].shape == (n,) and truth[name].dtype == dtype, name
    for name in ("truth", "fit_error"):
        assert events[f"targets/{name}"].shape == (n, len(TARGET_NAMES))
        assert events[f"targets/{name}"].dtype == np.float32
    assert all(np.isfinite(v).all() for v in events.values())
    assert TARGET_NAMES == ("u_x", "u_y", "log10_energy_ev", "x_core_km", "y_core_km")


def test_targets_are_truth_and_truth_minus_fit(events: Events) -> None:
    truth, fit = group(events, "truth"), group(events, "fit")
    expected = np.column_stack(
        [
            truth["u_x"],
            truth["u_y"],
            truth["log10_energy_ev"],
            truth["x_core_m"] / 1000,
            truth["y_core_m"] / 1000,
        ]
    )
    np.testing.assert_allclose(events["targets/truth"], expected, atol=1e-5)
    fitted = np.column_stack(
        [
            fit["u_x"],
            fit["u_y"],
            fit["log10_energy_ev"],
            fit["x_core_m"] / 1000,
            fit["y_core_m"] / 1000,
        ]
    )
    np.testing.assert_allclose(events["targets/fit_error"], expected - fitted, atol=1e-4)


def test_zero_events_and_bad_run_arguments() -> None:
    empty = simulate_events(0, 1, SMALL)
    assert empty["x"].shape == (0, 4, 4, 128, 2)
    assert empty["targets/truth"].shape == (0, 5)
    for n_events, seed in [(-1, 0), (10, -3), (2.5, 0), (True, 0)]:
        with pytest.raises(InputError):
            simulate_events(n_events, seed)


def test_import_stays_light() -> None:
    code = (
        "import sys, hpsearch.simulate.ta_sd, hpsearch.simulate.ta_sd_fit; "
        "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras', 'ray', 'scipy') "
        "for m in sys.modules) else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------------------- determinism


def test_same_seed_same_events_and_prefix(events: Events) -> None:
    again = simulate_events(300, 7, TaSdConfig(apply_cuts=False))
    assert_events_equal(again, {k: v[:300] for k, v in events.items()})
    other = simulate_events(300, 8, TaSdConfig(apply_cuts=False))
    assert not np.array_equal(other["x"], again["x"])


def test_file_is_independent_of_chunking_and_workers(tmp_path: Path) -> None:
    n = 600  # three blocks, the last one partial
    cfg = TaSdConfig(grid_size=4)
    expected = simulate_events(n, 5, cfg)
    one = simulate_to_file(
        tmp_path / "a.h5", n, 5, cfg, progress=False, workers=1, chunk_events=100
    )
    two = simulate_to_file(
        tmp_path / "b.h5", n, 5, cfg, progress=False, workers=2, chunk_events=256
    )
    for path in (one, two):
        assert_events_equal({k: v for k, v in read_file(path).items()}, expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.h5", "b.h5"]


# ----------------------------------------------------------------------------- the file


def test_file_layout_and_attributes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = TaSdConfig(grid_size=4, n_bins=256, apply_cuts=False)
    path = simulate_to_file(tmp_path / "d" / "ta.h5", 40, 9, cfg, progress=True)
    assert "ta_sd" in capsys.readouterr().err
    with h5py.File(path, "r") as h5:
        assert h5["x"].shape == (40, 4, 4, 256, 2)
        assert h5["x"].chunks == (16, 4, 4, 256, 2)
        for name in ("truth", "fit_error"):
            assert json.loads(h5[f"targets/{name}"].attrs["target_names"]) == list(TARGET_NAMES)
        assert set(h5["counters"]) == {"signal", "time", "hit", "saturated", "x_m", "y_m"}
        np.testing.assert_allclose(h5["counters/x_m"][0, :, 0], [-1800, -600, 600, 1800])
        attrs = dict(h5.attrs)
    assert attrs["task"] == "ta_sd"
    assert attrs["generator"] == "hpsearch.simulate.ta_sd"
    assert attrs["generator_version"] == GENERATOR_VERSION
    assert attrs["seed"] == 9 and attrs["n_events"] == 40
    assert TaSdConfig.from_dict(json.loads(attrs["config"])) == cfg
    assert attrs["units"] == "VEM"
    assert attrs["bin_ns"] == 20.0 and attrs["spacing_m"] == 1200.0
    assert json.loads(attrs["target_names"]) == list(TARGET_NAMES)
    assert json.loads(attrs["layer_names"]) == ["upper", "lower"]
    assert json.loads(attrs["primaries"]) == ["H", "He", "N", "Fe"]


def test_file_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_events"):
        simulate_to_file(tmp_path / "a.h5", 0, 1, progress=False)
    with pytest.raises(InputError, match="chunk_events"):
        simulate_to_file(tmp_path / "a.h5", 10, 1, progress=False, chunk_events=0)
    with pytest.raises(InputError, match="workers"):
        simulate_to_file(tmp_path / "a.h5", 10, 1, progress=False, workers=0)
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- physics


def test_arrival_distribution_and_primaries(events: Events) -> None:
    truth = group(events, "truth")
    cos2 = np.cos(np.radians(truth["theta_deg"])) ** 2
    assert truth["theta_deg"].max() <= 45.0
    # pdf ~ sin cos: cos^2 uniform on [cos^2 45, 1] = [0.5, 1].
    assert abs(cos2.mean() - 0.75) < 0.02
    log_e = truth["log10_energy_ev"]
    assert log_e.min() >= 18.5 and log_e.max() <= 20.0
    assert abs(log_e.mean() - 19.25) < 0.05  # uniform in log E (an E^-1 spectrum)
    assert set(np.unique(truth["mass_number"])) == {1, 4, 14, 56}
    # The grid is centred on the fitted core: it lies in the central cell.
    fit = group(events, "fit")
    converged = fit["converged"] == 1
    assert np.abs(fit["x_core_m"][converged]).max() <= 600.0 + 1e-3
    assert np.abs(fit["y_core_m"][converged]).max() <= 600.0 + 1e-3


def _counter_distance(ev: Events) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Shower-plane distance of every grid counter from the true axis, and plane times."""
    truth = group(ev, "truth")
    dx = ev["counters/x_m"] - truth["x_core_m"][:, None, None]
    dy = ev["counters/y_m"] - truth["y_core_m"][:, None, None]
    ux, uy = truth["u_x"][:, None, None], truth["u_y"][:, None, None]
    along = dx * ux + dy * uy
    r = np.sqrt(np.maximum(dx**2 + dy**2 - along**2, 0.0))
    return r, along, ev["counters/hit"] == 1


def test_signal_falls_with_distance(events: Events) -> None:
    r, _, hit = _counter_distance(events)
    scaled = events["counters/signal"] / group(events, "truth")["s800"][:, None, None]
    edges = [0, 400, 800, 1200, 1600, 2000, 2600, 3400]
    means = [scaled[(r >= lo) & (r < hi)].mean() for lo, hi in itertools.pairwise(edges)]
    assert all(a > b for a, b in itertools.pairwise(means)), means
    # Near 800 m the counter signal is S800 x 3 m^2 (within the asymmetry and saturation).
    ring = hit & (r > 700) & (r < 900)
    assert 2.4 < np.median(scaled[ring] / ldf(r[ring], 0.0)) < 3.6


def test_signals_grow_with_energy(events: Events) -> None:
    log_e = group(events, "truth")["log10_energy_ev"]
    total = events["counters/signal"].sum(axis=(1, 2))
    low, high = log_e < 18.9, log_e > 19.6
    # S800 ~ E^(1/1.12): 0.7 dex in energy is ~4.2x in signal.
    assert np.median(total[high]) > 3.0 * np.median(total[low])
    assert np.median(events["counters/hit"][high].sum(axis=(1, 2))) > np.median(
        events["counters/hit"][low].sum(axis=(1, 2))
    )


def test_front_is_late_far_from_the_core(events: Events) -> None:
    r, along, hit = _counter_distance(events)
    # Time behind the shower plane: the counter time plus the plane's lead, up to a per-event
    # offset that the median of near-core counters removes.
    behind = events["counters/time"] + along / SPEED_OF_LIGHT_M_PER_NS
    near = hit & (r < 700)
    offset = np.array(
        [np.median(b[m]) if m.any() else np.nan for b, m in zip(behind, near, strict=True)]
    )
    delay = behind - offset[:, None, None]
    ok = np.isfinite(offset)[:, None, None] & hit
    medians = [
        np.median(delay[ok & (r >= lo) & (r < hi)])
        for lo, hi in [(0, 700), (1000, 1500), (2000, 3000)]
    ]
    assert medians[0] < medians[1] < medians[2], medians
    assert medians[2] - medians[0] > 300.0  # ns: curvature and thickness at 2-3 km


def test_traces_hold_the_counter_signal(events: Events) -> None:
    x = events["x"]
    hit = events["counters/hit"] == 1
    assert (x[~hit] == 0).all()  # no hit, no trace
    integral = x[hit].sum(axis=1).mean(axis=1)  # mean of the two layers, VEM
    signal = events["counters/signal"][hit]
    unsaturated = events["counters/saturated"][hit] == 0
    # The counter signal adds what arrives after the stored bins: never less than the trace.
    assert (signal[unsaturated] >= integral[unsaturated] - 0.05 * np.sqrt(128) - 1e-3).all()
    assert np.median(integral[unsaturated] / signal[unsaturated]) > 0.95
    # Heavy primaries carry more muons, which the lower layer sees as fully as the upper.
    truth = group(events, "truth")
    upper = x[..., 0].sum(axis=-1).sum(axis=(1, 2))
    lower = x[..., 1].sum(axis=-1).sum(axis=(1, 2))
    ratio = lower / np.maximum(upper, 1e-9)
    assert np.median(ratio[truth["mass_number"] == 56]) > np.median(
        ratio[truth["mass_number"] == 1]
    )


def test_noiseless_signals_are_expected_values(exact: Events) -> None:
    truth = group(exact, "truth")
    r, _, hit = _counter_distance(exact)
    theta = np.radians(truth["theta_deg"])[:, None, None]
    expected = truth["s800"][:, None, None] * ldf(r, theta) * 3.0
    ok = hit & (exact["counters/saturated"] == 0)
    np.testing.assert_allclose(exact["counters/signal"][ok], expected[ok], rtol=1e-4)


# ----------------------------------------------------------------------------- the fit


def test_fit_recovers_the_truth_on_noiseless_events(exact: Events) -> None:
    """On its own model, without noise, the fit must land on the truth.

    Measured: core <= 0.2 m, direction <= 0.002 deg, S800 <= 0.05%. The tolerances leave a
    margin for platform round-off while staying far below the noisy fit's errors (~80 m,
    ~1.8 deg, ~15%).
    """
    truth, fit = group(exact, "truth"), group(exact, "fit")
    assert fit["converged"].all()
    core = np.hypot(fit["x_core_m"] - truth["x_core_m"], fit["y_core_m"] - truth["y_core_m"])
    angle = space_angle_deg(np.c_[fit["u_x"], fit["u_y"]], np.c_[truth["u_x"], truth["u_y"]])
    assert core.max() < 5.0
    assert angle.max() < 0.05
    np.testing.assert_allclose(fit["s800"], truth["s800"], rtol=0.01)
    np.testing.assert_allclose(fit["curvature_a"], truth["curvature_a"], rtol=0.02)
    # The energy formula, applied to the true S800 (no composition or fluctuation factor in
    # EXACT but the ln A one), gives back the energy up to that factor.
    nominal = energy_from_s800(truth["s800_nominal"], truth["theta_deg"])
    np.testing.assert_allclose(np.log10(nominal), truth["log10_energy_ev"], atol=1e-5)
    assert np.median(fit["chi2_ndf"]) < 1e-3


def test_fit_converges_with_a_physical_resolution(events: Events) -> None:
    """The standard fit on normal events: TA's SD gets ~1.5-2 deg and ~15-20% in energy.

    Measured (seed 7, 1024 events, no cuts): converged 100%, 68% space angle 1.8 deg
    (1.9 / 1.8 / 1.6 deg in log E bins 18.5-19, 19-19.5, 19.5-20), dE/E ~17%, core ~80 m.
    """
    fit = group(events, "fit")
    converged = fit["converged"] == 1
    assert converged.mean() >= 0.95
    scores = fit_scores(
        {
            "truth": events["targets/truth"],
            "fit": events["targets/truth"] - events["targets/fit_error"],
            "converged": converged,
        },
        converged_only=True,
    )
    assert 1.0 < scores["angular_resolution_deg"] < 3.0, scores
    assert 0.08 < scores["energy_resolution"] < 0.30, scores
    assert abs(scores["energy_bias"]) < 0.1, scores
    assert 30.0 < scores["core_resolution_m"] < 200.0, scores
    assert 0.2 < np.median(fit["chi2_ndf"][converged]) < 2.0
    assert fit["passed_cuts"].mean() > 0.9


def test_cuts_keep_only_good_events() -> None:
    ev = simulate_events(256, 2, TaSdConfig(grid_size=4, min_counters=12))
    fit = group(ev, "fit")
    assert (fit["passed_cuts"] == 1).all() and (fit["converged"] == 1).all()
    assert (fit["n_counters"] >= 12).all() and (fit["chi2_ndf"] <= 4.0).all()


def test_metric_helpers() -> None:
    vertical = np.array([[0.0, 0.0]])
    tilted = np.array([[np.sin(np.radians(3.0)), 0.0]])
    np.testing.assert_allclose(space_angle_deg(tilted, vertical), [3.0], atol=1e-9)
    three_d = np.array([[0.0, 0.0, 2.0]])  # normalised
    np.testing.assert_allclose(space_angle_deg(three_d, tilted), [3.0], atol=1e-9)
    angles = np.radians(np.linspace(0.1, 10.0, 100))
    pred = np.column_stack([np.sin(angles), np.zeros(100)])
    assert (
        abs(
            angular_resolution_deg(pred, np.zeros((100, 2))) - np.quantile(np.degrees(angles), 0.68)
        )
        < 1e-9
    )
    assert energy_resolution(np.log10([1.1, 0.9]), [0.0, 0.0]) == pytest.approx(0.1)
    # The energy formula and its inverse; 10 EeV at 25 deg is S800 ~ 25 VEM/m^2 (science.md).
    assert 24.0 < float(s800_from_energy(1e19, 25.0)) < 27.0
    assert float(energy_from_s800(s800_from_energy(3e19, 40.0), 40.0)) == pytest.approx(3e19)
    with pytest.raises(ValueError):
        space_angle_deg(np.zeros((3, 4)), np.zeros((3, 4)))


def test_fit_scores_from_the_file(tmp_path: Path) -> None:
    path = simulate_to_file(tmp_path / "s.h5", 60, 4, SMALL, progress=False)
    data = read_file(path)
    arrays = {
        "truth": data["targets/truth"],
        "fit": data["targets/truth"] - data["targets/fit_error"],
        "converged": data["fit/converged"],
    }
    from_file = fit_scores(path, np.arange(30))
    assert from_file == pytest.approx(fit_scores(arrays, slice(0, 30)), rel=1e-5)  # float32
    assert from_file["n_events"] == 30


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"grid_size": 3}, "grid_size"),
        ({"grid_size": 9}, "grid_size"),
        ({"grid_size": 6.0}, "grid_size"),
        ({"n_bins": 100}, "n_bins"),
        ({"zenith_max_deg": 70.0}, "zenith_max_deg"),
        ({"log10_energy_min": 20.0, "log10_energy_max": 19.0}, "log10_energy_min"),
        ({"primaries": (0, 56)}, "primaries"),
        ({"primaries": ()}, "primaries"),
        ({"saturation_vem_per_bin": 0.0}, "saturation_vem_per_bin"),
        ({"pedestal_noise_vem": -0.1}, "pedestal_noise_vem"),
        ({"time_jitter_ns": float("nan")}, "time_jitter_ns"),
        ({"noiseless": 1}, "noiseless"),
        ({"spacing_m": "1200"}, "spacing_m"),
        ({"pretrigger_bins": 200}, "pretrigger_bins"),
    ],
)
def test_bad_config_raises_input_error_naming_the_key(changes: dict[str, Any], key: str) -> None:
    with pytest.raises(InputError) as info:
        TaSdConfig(**changes)
    assert info.value.source == "TaSdConfig"
    assert key in info.value.key
    assert info.value.fix


def test_config_round_trip_frozen_and_unknown_key() -> None:
    cfg = TaSdConfig(grid_size=8, n_bins=256, primaries=(1, 56), pedestal_noise_vem=0.05)
    assert TaSdConfig.from_dict(json.loads(cfg.to_json())) == cfg
    assert TaSdConfig.from_dict({"spacing_m": 1200, "grid_size": 5.0}).grid_size == 5
    with pytest.raises(InputError, match="grid"):
        TaSdConfig.from_dict({"grid": 6})
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.grid_size = 4  # type: ignore[misc]


def test_grid_sizes_and_patch() -> None:
    for grid in (4, 5, 8):
        cfg = TaSdConfig(grid_size=grid, apply_cuts=False)
        assert cfg.patch_size % 2 == 0 and cfg.patch_size >= grid + 4
        ev = ta_sd.simulate_events(8, 1, cfg)
        assert ev["x"].shape == (8, grid, grid, 128, 2)
        centre = (grid - 1) / 2 * 1200.0
        np.testing.assert_allclose(ev["counters/x_m"][0, [0, -1], 0], [-centre, centre])
