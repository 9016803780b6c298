from __future__ import annotations

import dataclasses
import itertools
import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from hpsearch.errors import InputError
from hpsearch.simulate import gce
from hpsearch.simulate.gce import (
    BACKGROUND_MODELS,
    GENERATOR_VERSION,
    PARAM_FIELDS,
    SEED_TEST_MODELS,
    SEED_TRAIN_MODELS,
    GceConfig,
    expected_smooth_maps,
    pixel_mask,
    simulate_events,
    simulate_to_file,
)
from hpsearch.simulate.gce_baseline import FEATURE_NAMES, CountStatisticBaseline, score

Events = dict[str, np.ndarray]

SMALL = GceConfig(n_pixels=32)
"""32x32 maps of the default 40 deg ROI (1.25 deg pixels): fast, same physics."""

# One fixed smooth model: every map has the same expected counts, so they can be averaged.
FIXED = dict(
    n_pixels=32,
    gamma_min=1.2,
    gamma_max=1.2,
    psf_sigma_deg_min=0.4,
    psf_sigma_deg_max=0.4,
    excess_counts_min=50_000.0,
    excess_counts_max=50_000.0,
    background_jitter=0.0,
    f_src_min=0.0,
    f_src_max=0.0,
)


@pytest.fixture(scope="module")
def events() -> Events:
    return simulate_events(300, 7, SMALL)


def angle_from_center(cfg: GceConfig) -> tuple[np.ndarray, np.ndarray]:
    """Per-pixel angle from the GC and |b|, in degrees (row 0 = highest b)."""
    n = cfg.n_pixels
    centres = (n / 2 - (np.arange(n) + 0.5)) * cfg.pixel_deg
    lat, lon = np.meshgrid(np.radians(centres), np.radians(centres), indexing="ij")
    psi = np.degrees(np.arccos(np.cos(lat) * np.cos(lon)))
    return psi, np.degrees(np.abs(lat))


def assert_events_equal(a: Events, b: Events) -> None:
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def read(path: Path) -> Events:
    with h5py.File(path, "r") as h5:
        out = {name: h5[name][...] for name in ("x", "y", "background_model")}
        out.update({f"params/{name}": h5["params"][name][...] for name in h5["params"]})
    return out


# ------------------------------------------------------------------------ shapes, determinism


def test_shapes_dtypes_and_labels(events: Events) -> None:
    n = 300
    assert events["x"].shape == (n, 32, 32, 1)
    assert events["x"].dtype == np.float32
    assert events["y"].shape == (n,)
    assert events["y"].dtype == np.float32
    assert events["background_model"].dtype == np.dtype("S16")
    names = {name.decode() for name in events["background_model"]}
    assert names == set(BACKGROUND_MODELS)  # 300 draws from 5 models: all occur
    assert set(events) == {"x", "y", "background_model"} | {f"params/{p}" for p in PARAM_FIELDS}
    for name, dtype in PARAM_FIELDS.items():
        assert events[f"params/{name}"].dtype == dtype, name
        assert events[f"params/{name}"].shape == (n,), name
    x = events["x"]
    assert np.all(x >= 0) and np.all(x == np.round(x))  # photon counts
    total = (
        events["params/excess_counts"]
        + events["params/ps_counts"]
        + events["params/background_counts"]
    )
    np.testing.assert_array_equal(x.sum(axis=(1, 2, 3)), total)


def test_same_seed_same_maps_and_prefix() -> None:
    a = simulate_events(12, 3, SMALL)
    assert_events_equal(a, simulate_events(12, 3, SMALL))
    prefix = simulate_events(5, 3, SMALL)
    assert_events_equal(prefix, {name: value[:5] for name, value in a.items()})
    other = simulate_events(12, 4, SMALL)
    assert not np.array_equal(a["x"], other["x"])


def test_file_equals_memory_whatever_the_chunking(tmp_path: Path) -> None:
    expected = simulate_events(70, 5, SMALL)
    for chunk_events in (7, 64, 4096):
        path = simulate_to_file(
            tmp_path / f"c{chunk_events}.h5",
            70,
            5,
            SMALL,
            progress=False,
            chunk_events=chunk_events,
            workers=1,
        )
        assert_events_equal(read(path), expected)


def test_parallel_file_equals_memory(tmp_path: Path) -> None:
    expected = simulate_events(130, 9, SMALL)
    path = simulate_to_file(
        tmp_path / "p.h5", 130, 9, SMALL, progress=False, chunk_events=64, workers=2
    )
    assert_events_equal(read(path), expected)


def test_file_attributes_and_layout(tmp_path: Path) -> None:
    cfg = dataclasses.replace(SMALL, mask_latitude_deg=2.0)
    path = simulate_to_file(tmp_path / "a.h5", 40, 2, cfg, progress=False, compression="gzip")
    with h5py.File(path, "r") as h5:
        attrs = dict(h5.attrs)
        assert h5["x"].chunks == (32, 32, 32, 1)
        assert h5["x"].compression == "gzip"
        assert set(h5["params"]) == set(PARAM_FIELDS)
    assert attrs["task"] == "gce"
    assert attrs["generator"] == "hpsearch.simulate.gce"
    assert attrs["generator_version"] == GENERATOR_VERSION
    assert attrs["seed"] == 2
    assert attrs["n_events"] == 40
    assert GceConfig.from_dict(json.loads(attrs["config"])) == cfg
    assert json.loads(attrs["background_models"]) == list(BACKGROUND_MODELS)
    assert set(json.loads(attrs["background_model_definitions"])) == set(BACKGROUND_MODELS)
    assert attrs["pixel_deg"] == pytest.approx(40 / 32)
    assert json.loads(attrs["target_names"]) == ["f_src"]
    assert json.loads(attrs["energy_band_gev"]) == [1.0, 6.0]
    assert "photon counts" in attrs["units"]
    rows = json.loads(attrs["masked_rows"])
    assert rows == np.flatnonzero(pixel_mask(cfg)[:, 0]).tolist()
    assert rows == [14, 15, 16, 17]  # b = +-0.625 and +-1.875 deg; +-3.125 deg is kept
    assert not list(tmp_path.glob("*.part"))


def test_masked_rows_are_empty_and_count_for_nothing() -> None:
    cfg = dataclasses.replace(SMALL, mask_latitude_deg=2.0)
    maps = simulate_events(20, 1, cfg)
    mask = pixel_mask(cfg)
    _, abs_b = angle_from_center(cfg)
    np.testing.assert_array_equal(mask, abs_b < 2.0)
    assert np.all(maps["x"][:, mask, 0] == 0)
    assert np.all(maps["x"][:, ~mask, 0].sum(axis=1) > 0)
    total = sum(maps[f"params/{name}"] for name in ("excess_counts", "ps_counts"))
    total = total + maps["params/background_counts"]
    np.testing.assert_array_equal(maps["x"].sum(axis=(1, 2, 3)), total)


# ------------------------------------------------------------------------------------ physics


def test_target_is_realised_fraction_and_spans_0_1(events: Events) -> None:
    y = events["y"]
    ps = events["params/ps_counts"].astype(float)
    smooth = events["params/excess_counts"].astype(float)
    np.testing.assert_allclose(y, ps / (ps + smooth), rtol=1e-6)
    assert y.min() >= 0 and y.max() <= 1
    assert y.min() < 0.05 and y.max() > 0.95
    assert y.std() > 0.2
    # The realised fraction follows the target the population was built for.
    assert np.corrcoef(y, events["params/f_src_target"])[0, 1] > 0.9
    # Maps without point-source photons have f_src = 0, and only they do.
    np.testing.assert_array_equal(y == 0, events["params/ps_counts"] == 0)
    alpha = events["params/alpha"]
    assert alpha.min() >= SMALL.alpha_min and alpha.max() <= SMALL.alpha_max
    gamma = events["params/gamma"]
    assert gamma.min() >= SMALL.gamma_min and gamma.max() <= SMALL.gamma_max


def test_no_point_sources_gives_poisson_counts_of_the_smooth_model() -> None:
    model = "lor_z4_ts150"
    cfg = GceConfig(**FIXED, background_models=(model,))
    n_maps = 200
    maps = simulate_events(n_maps, 11, cfg)
    assert np.all(maps["params/ps_counts"] == 0)
    assert np.all(maps["params/n_sources"] == 0)
    assert np.all(maps["y"] == 0)
    excess = 50_000.0 * BACKGROUND_MODELS[model].excess_scale
    e, b = expected_smooth_maps(cfg, model, 1.2, 0.4, excess, cfg.background_counts)
    mu = e + b
    counts = maps["x"][..., 0].astype(np.float64)
    # Mean map: chi2 of the per-pixel means against mu, Poisson variance mu / n_maps.
    chi2 = (((counts.mean(axis=0) - mu) ** 2) / (mu / n_maps)).sum()
    n_pix = mu.size
    assert abs(chi2 - n_pix) < 5 * np.sqrt(2 * n_pix), chi2
    # Dispersion: variance across maps equals the mean (Poisson), pixel by pixel on average.
    dispersion = counts.var(axis=0, ddof=1) / mu
    assert dispersion.mean() == pytest.approx(1.0, abs=0.03)
    # The components' realised counts match their expectations.
    assert maps["params/excess_counts"].mean() == pytest.approx(e.sum(), rel=0.01)
    assert maps["params/background_counts"].mean() == pytest.approx(b.sum(), rel=0.001)


def test_point_sources_make_counts_over_dispersed() -> None:
    fixed = {**FIXED, "f_src_min": 1.0, "f_src_max": 1.0, "alpha_min": -1.5, "alpha_max": -1.5}
    cfg = GceConfig(**fixed, background_models=("lor_z4_ts150",))
    maps = simulate_events(100, 12, cfg)
    assert np.all(maps["y"] == 1.0)
    assert np.all(maps["params/excess_counts"] == 0)
    counts = maps["x"][..., 0].astype(np.float64)
    psi, _ = angle_from_center(cfg)
    inner = psi < 6
    dispersion = counts.var(axis=0, ddof=1)[inner] / counts.mean(axis=0)[inner]
    assert dispersion.mean() > 1.5


def test_excess_is_peaked_at_the_center_and_falls_with_angle() -> None:
    cfg = GceConfig(
        **{**FIXED, "gamma_min": 1.0, "gamma_max": 1.3, "background_counts": 0.0},
        background_models=("snr_z10_ts150",),
    )
    maps = simulate_events(40, 2, cfg)
    assert np.all(maps["params/background_counts"] == 0)
    mean = maps["x"][..., 0].mean(axis=0)
    psi, _ = angle_from_center(cfg)
    edges = [0, 2, 4, 7, 10, 15, 20, 30]
    profile = [mean[(psi >= lo) & (psi < hi)].mean() for lo, hi in itertools.pairwise(edges)]
    assert all(a > b for a, b in itertools.pairwise(profile)), profile
    assert profile[0] > 20 * profile[-1]
    assert mean.argmax() in np.flatnonzero(psi.ravel() < 1.0)
    # Symmetric under (l, b) -> (-l, -b) up to Poisson noise.
    flipped = mean[::-1, ::-1]
    z = (mean - flipped) / np.sqrt((mean + flipped) / len(maps["x"]) + 1e-12)
    assert np.abs(z).max() < 6
    assert z.std() == pytest.approx(1.0, abs=0.15)
    # A steeper inner slope puts more of the excess near the center.
    e_shallow, _ = expected_smooth_maps(cfg, "snr_z10_ts150", 1.0, 0.4, 1.0, 0.0)
    e_steep, _ = expected_smooth_maps(cfg, "snr_z10_ts150", 1.3, 0.4, 1.0, 0.0)
    assert e_steep[psi < 3].sum() > 1.2 * e_shallow[psi < 3].sum()


def test_background_models_have_distinct_shapes() -> None:
    cfg = GceConfig(
        **{**FIXED, "excess_counts_min": 0.0, "excess_counts_max": 0.0},
    )
    maps = simulate_events(150, 4, cfg)
    assert np.all(maps["params/excess_counts"] == 0)
    names = maps["background_model"]
    means = {}
    for name in BACKGROUND_MODELS:
        chosen = maps["x"][names == name.encode(), :, :, 0]
        assert len(chosen) >= 10, name
        means[name] = chosen.mean(axis=0) / chosen.mean(axis=0).sum()
    noise = []
    for name in BACKGROUND_MODELS:
        chosen = maps["x"][names == name.encode(), :, :, 0]
        half = len(chosen) // 2
        a, b = chosen[:half].mean(axis=0), chosen[half : 2 * half].mean(axis=0)
        noise.append(np.abs(a / a.sum() - b / b.sum()).sum())
    for i, a in enumerate(BACKGROUND_MODELS):
        for b in list(BACKGROUND_MODELS)[i + 1 :]:
            distance = np.abs(means[a] - means[b]).sum()
            assert distance > 0.03, (a, b, distance)
            assert distance > 5 * max(noise), (a, b, distance, max(noise))


def test_background_is_a_disk_brighter_than_high_latitudes() -> None:
    _, abs_b = angle_from_center(SMALL)
    for name in BACKGROUND_MODELS:
        _, b = expected_smooth_maps(SMALL, name, 1.1, 0.4, 0.0, 1e6)
        assert b.sum() == pytest.approx(1e6, rel=0.02)
        assert b[abs_b < 1].mean() > 5 * b[abs_b > 15].mean(), name
        # Larger halos make the inverse-Compton emission, and the map, broader in latitude.
    wide = expected_smooth_maps(SMALL, "lor_z10_ts150", 1.1, 0.4, 0.0, 1.0)[1]
    narrow = expected_smooth_maps(SMALL, "lor_z4_ts150", 1.1, 0.4, 0.0, 1.0)[1]
    assert wide[abs_b > 10].sum() > narrow[abs_b > 10].sum()


def test_power_law_fluxes() -> None:
    rng = np.random.default_rng(0)
    for alpha in (-2.5, -2.0, -1.5, -1.0):
        fluxes = gce._draw_fluxes(rng, 200_000, alpha, 1.0, 100.0)
        assert fluxes.min() >= 1.0 and fluxes.max() <= 100.0
        assert fluxes.mean() == pytest.approx(gce._mean_flux(alpha, 1.0, 100.0), rel=0.02)


def test_seed_train_and_test_models_partition_the_models() -> None:
    assert set(SEED_TRAIN_MODELS) | set(SEED_TEST_MODELS) == set(BACKGROUND_MODELS)
    assert not set(SEED_TRAIN_MODELS) & set(SEED_TEST_MODELS)
    for model in BACKGROUND_MODELS.values():
        assert len(model.name.encode("ascii")) <= 16
        total = (
            model.gas_fraction
            + model.ic_fraction
            + model.isotropic_fraction
            + model.bubbles_fraction
        )
        assert total == pytest.approx(1.0)


# ----------------------------------------------------------------------------------- baseline


def test_baseline_beats_the_training_mean_on_held_out_maps() -> None:
    cfg = GceConfig(n_pixels=64, background_models=SEED_TRAIN_MODELS)
    train = simulate_events(500, 21, cfg)
    test = simulate_events(200, 22, cfg)
    baseline = CountStatisticBaseline().fit(train["x"], train["y"])
    features = baseline.features(test["x"])
    assert features.shape == (200, len(FEATURE_NAMES))
    assert np.all(np.isfinite(features))
    predicted = baseline.predict(test["x"])
    assert predicted.min() >= 0 and predicted.max() <= 1
    ours = score(test["y"], predicted, test["background_model"])
    mean = score(test["y"], np.full(200, train["y"].mean()))
    assert ours["mae"] < 0.85 * mean["mae"], (ours, mean)
    assert set(ours["groups"]) == set(SEED_TRAIN_MODELS)


def test_score_overall_and_per_group() -> None:
    result = score([0.0, 0.5, 1.0, 1.0], [0.1, 0.5, 0.8, 1.0], [b"a", b"a", b"b", b"b"])
    assert result["n"] == 4
    assert result["mae"] == pytest.approx(0.075)
    assert result["bias"] == pytest.approx(-0.025)
    assert result["rmse"] == pytest.approx(np.sqrt((0.01 + 0.04) / 4))
    assert result["groups"]["a"] == {
        "n": 2,
        "mae": 0.05,
        "rmse": pytest.approx(0.0707, abs=1e-4),
        "bias": pytest.approx(0.05),
    }
    assert result["groups"]["b"]["bias"] == pytest.approx(-0.1)
    with pytest.raises(InputError, match="y_pred"):
        score([0.0], [0.1, 0.2])


def test_baseline_refuses_bad_use() -> None:
    with pytest.raises(InputError, match="fit"):
        CountStatisticBaseline().predict(np.zeros((3, 32, 32, 1)))
    with pytest.raises(InputError, match="smooth_deg"):
        CountStatisticBaseline(smooth_deg=0.0)
    with pytest.raises(InputError, match="x"):
        CountStatisticBaseline().features(np.zeros((3, 32, 16)))


# ------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"n_pixels": 8}, "n_pixels"),
        ({"n_pixels": 32.5}, "n_pixels"),
        ({"roi_deg": 0.0}, "roi_deg"),
        ({"gamma_min": 1.3, "gamma_max": 1.1}, "gamma_min, gamma_max"),
        ({"gamma_max": 1.6}, "gamma_min, gamma_max"),
        ({"f_src_max": 1.5}, "f_src_max"),
        ({"alpha_min": -1.0, "alpha_max": -2.0}, "alpha_min, alpha_max"),
        ({"source_flux_min": 0.0}, "source_flux_min"),
        ({"source_flux_min": 1e-4}, "source_flux_min"),
        ({"background_counts": -1.0}, "background_counts"),
        ({"background_jitter": 1.0}, "background_jitter"),
        ({"psf_sigma_deg_min": -0.1}, "psf_sigma_deg_min, psf_sigma_deg_max"),
        ({"mask_latitude_deg": 25.0}, "mask_latitude_deg"),
        ({"background_models": ("nope",)}, "background_models"),
        ({"background_models": ()}, "background_models"),
        ({"background_models": "lor_z4_ts150"}, "background_models"),
        ({"r_sun_kpc": float("nan")}, "r_sun_kpc"),
    ],
)
def test_bad_config_is_refused_naming_the_key(changes: dict[str, object], key: str) -> None:
    with pytest.raises(InputError) as info:
        GceConfig(**changes)  # type: ignore[arg-type]
    assert info.value.key == key
    assert info.value.source == "GceConfig"
    assert info.value.fix


def test_config_from_dict() -> None:
    cfg = GceConfig.from_dict({"n_pixels": 64.0, "background_models": ["snr_z4_ts1e5"]})
    assert cfg.n_pixels == 64
    assert cfg.background_models == ("snr_z4_ts1e5",)
    assert GceConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(InputError) as info:
        GceConfig.from_dict({"pixels": 3}, source="study.yaml")
    assert info.value.key == "pixels"
    assert info.value.source == "study.yaml"


def test_bad_run_arguments_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="n_events"):
        simulate_events(-1, 0, SMALL)
    with pytest.raises(InputError, match="seed"):
        simulate_events(3, -2, SMALL)
    with pytest.raises(InputError, match="n_events"):
        simulate_to_file(tmp_path / "x.h5", 0, 0, SMALL, progress=False)
    with pytest.raises(InputError, match="compression"):
        simulate_to_file(tmp_path / "x.h5", 3, 0, SMALL, progress=False, compression="zip")
    with pytest.raises(InputError, match="background_model"):
        expected_smooth_maps(SMALL, "nope", 1.1, 0.4, 1.0, 1.0)
    with pytest.raises(InputError, match="gamma"):
        expected_smooth_maps(SMALL, "lor_z4_ts150", 2.0, 0.4, 1.0, 1.0)
    assert not (tmp_path / "x.h5").exists()


def test_importing_the_simulator_imports_no_tensorflow_or_ray() -> None:
    code = (
        "import sys, hpsearch.simulate.gce, hpsearch.simulate.gce_baseline; "
        "bad = [m for m in ('tensorflow', 'ray', 'h5py') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
