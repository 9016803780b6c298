from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest

from hpsearch.baselines import RiseTimeCut, rise_time_ns
from hpsearch.errors import InputError
from hpsearch.simulate import (
    CLASS_NAMES,
    GENERATOR_VERSION,
    XGammaConfig,
    _chunks,
    simulate_events,
    simulate_to_file,
    xgamma,
)
from hpsearch.simulate.xgamma import TRUTH_FIELDS

Events = tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]

NOISELESS = XGammaConfig(
    preamp_decay_ns=0.0,
    white_noise_e=0.0,
    random_walk_e=0.0,
    flicker_noise_e=0.0,
    baseline_offset_e=0.0,
    trigger_jitter_ns=0.0,
    pileup_probability=0.0,
)


@pytest.fixture(scope="module")
def events() -> Events:
    return simulate_events(3000, 7)


@pytest.fixture(scope="module")
def noiseless() -> Events:
    return simulate_events(2048, 11, NOISELESS)


def read_file(path: Path) -> Events:
    with h5py.File(path, "r") as h5:
        return (
            h5["waveforms"][...],
            h5["labels"][...],
            {name: h5["truth"][name][...] for name in h5["truth"]},
        )


def assert_events_equal(a: Events, b: Events) -> None:
    np.testing.assert_array_equal(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    assert a[2].keys() == b[2].keys()
    for name in a[2]:
        np.testing.assert_array_equal(a[2][name], b[2][name], err_msg=name)


# ----------------------------------------------------------------------------- shapes, API


def test_shapes_and_dtypes(events: Events) -> None:
    waveforms, labels, truth = events
    assert waveforms.shape == (3000, 256)
    assert waveforms.dtype == np.float32
    assert labels.shape == (3000,)
    assert labels.dtype == np.int8
    assert set(np.unique(labels)) == {0, 1}
    assert set(truth) == set(TRUTH_FIELDS)
    for name, dtype in TRUTH_FIELDS.items():
        assert truth[name].shape == (3000,), name
        assert truth[name].dtype == dtype, name
    assert np.isfinite(waveforms).all()
    assert CLASS_NAMES == ("xray", "gamma")
    assert isinstance(GENERATOR_VERSION, str) and GENERATOR_VERSION


def test_custom_trace_length() -> None:
    cfg = XGammaConfig(n_samples=512, sample_period_ns=10.0)
    waveforms, _, _ = simulate_events(10, 1, cfg)
    assert waveforms.shape == (10, 512)
    assert cfg.pretrigger_samples == 100


def test_zero_events_gives_empty_arrays() -> None:
    waveforms, labels, truth = simulate_events(0, 1)
    assert waveforms.shape == (0, 256)
    assert labels.shape == (0,)
    assert all(v.shape == (0,) for v in truth.values())


@pytest.mark.parametrize(("n_events", "seed"), [(-1, 0), (10, -3), (2.5, 0), (True, 0)])
def test_bad_run_arguments_raise_input_error(n_events: Any, seed: Any) -> None:
    with pytest.raises(InputError):
        simulate_events(n_events, seed)


# ----------------------------------------------------------------------------- determinism


def test_same_seed_is_bit_identical() -> None:
    assert_events_equal(simulate_events(1500, 3), simulate_events(1500, 3))


def test_different_seed_differs() -> None:
    a = simulate_events(1500, 3)
    b = simulate_events(1500, 4)
    assert not np.array_equal(a[0], b[0])
    assert not np.array_equal(a[1], b[1])
    assert not np.array_equal(a[2]["energy_kev"], b[2]["energy_kev"])


def test_shorter_run_is_prefix_of_longer(events: Events) -> None:
    waveforms, labels, truth = events
    prefix = (waveforms[:1100], labels[:1100], {k: v[:1100] for k, v in truth.items()})
    assert_events_equal(simulate_events(1100, 7), prefix)


def test_config_change_changes_output() -> None:
    a = simulate_events(200, 3)
    b = simulate_events(200, 3, XGammaConfig(white_noise_e=301.0))
    assert not np.array_equal(a[0], b[0])


@pytest.mark.parametrize("chunk_events", [1, 300, 1024, 5000])
def test_file_is_independent_of_chunking(tmp_path: Path, chunk_events: int) -> None:
    n = 1300 if chunk_events > 1 else 40
    expected = simulate_events(n, 5)
    path = simulate_to_file(
        tmp_path / f"c{chunk_events}.h5", n, 5, progress=False, chunk_events=chunk_events
    )
    assert_events_equal(read_file(path), expected)


# ----------------------------------------------------------------------------- physics


def test_class_balance_follows_gamma_fraction(events: Events) -> None:
    assert abs(events[1].mean() - 0.5) < 0.04
    _, labels, _ = simulate_events(3000, 7, XGammaConfig(gamma_fraction=0.2))
    assert abs(labels.mean() - 0.2) < 0.03


def test_truth_is_physically_sane(events: Events) -> None:
    _, labels, truth = events
    cfg = XGammaConfig()
    x = labels == 0
    g = labels == 1
    drift = truth["drift_time_ns"]
    assert drift[x].min() >= cfg.drift_min_ns
    assert drift[x].max() <= cfg.drift_tail_max_ns
    assert (drift[g] == 0).all()
    tail = np.mean(drift[x] > cfg.drift_max_ns)
    assert 0.05 < tail < 0.15  # drift_tail_fraction = 0.1
    energy = truth["energy_kev"]
    assert energy[x].min() >= cfg.xray_energy_min_kev
    assert energy[x].max() <= cfg.xray_energy_max_kev
    assert energy[g].min() >= cfg.gamma_energy_min_kev
    assert energy[g].max() <= cfg.gamma_energy_max_kev
    # X-ray charge is E / 3.6 eV up to Fano smearing (a few percent at most).
    ratio = truth["charge_e"][x] / (energy[x] * 1000.0 / cfg.pair_energy_ev)
    assert np.abs(ratio - 1.0).max() < 0.06
    # Gamma charge is Poisson(E * Y): within ~5 sigma of the mean.
    mean = energy[g] * truth["light_yield_e_per_kev"][g]
    assert (np.abs(truth["charge_e"][g] - mean) < 5.0 * np.sqrt(mean) + 1).all()
    tau_fast = truth["tau_fast_ns"][g]
    assert tau_fast.min() >= 0.8 * 700 - 1e-3 and tau_fast.max() <= 1.2 * 700 + 1e-3
    assert (truth["tau_slow_ns"][g] > tau_fast).all()
    assert (truth["tau_fast_ns"][x] == 0).all() and (truth["light_yield_e_per_kev"][x] == 0).all()
    fraction = truth["fast_fraction"][g]
    assert fraction.min() >= 0.55 - 1e-6 and fraction.max() <= 0.65 + 1e-6
    trace_ns = cfg.n_samples * cfg.sample_period_ns
    assert (truth["t0_ns"] >= 0).all() and (truth["t0_ns"] < trace_ns).all()
    # Time walk: small, slow gamma pulses cross the threshold later than X-rays do.
    assert np.median(truth["trigger_walk_ns"][g]) > np.median(truth["trigger_walk_ns"][x]) + 100


def test_pileup_truth_is_consistent(events: Events) -> None:
    truth = events[2]
    pileup = truth["pileup"].astype(bool)
    assert 0.03 < pileup.mean() < 0.07  # pileup_probability = 0.05
    assert (truth["pileup_class"][~pileup] == -1).all()
    assert set(np.unique(truth["pileup_class"][pileup])) <= {0, 1}
    assert (truth["pileup_t0_ns"][~pileup] == -1).all()
    assert (truth["pileup_t0_ns"][pileup] >= 0).all()
    assert (truth["pileup_charge_e"][~pileup] == 0).all()
    assert (truth["pileup_charge_e"][pileup] > 0).all()


def test_amplitude_alone_cannot_separate(events: Events) -> None:
    _, labels, truth = events
    charge = truth["charge_e"]
    # The best one-threshold cut on the true charge, in either direction.
    accuracy = RiseTimeCut.fit(charge, labels).accuracy(charge, labels)
    flipped = RiseTimeCut.fit(-charge, labels).accuracy(-charge, labels)
    assert max(accuracy, flipped) < 0.56


def test_noiseless_pulses_have_the_documented_shapes(noiseless: Events) -> None:
    waveforms, labels, truth = noiseless
    cfg = NOISELESS
    x = labels == 0
    g = labels == 1
    rise = rise_time_ns(waveforms, cfg.sample_period_ns, cfg.pretrigger_samples, smooth_ns=0.0)
    # An X-ray's 10%-90% rise is its drift time (the model's definition): unbiased, and
    # within a sample for most events.
    error = rise[x] - truth["drift_time_ns"][x]
    assert abs(np.median(error)) < 5.0
    assert np.percentile(np.abs(error), 90) < cfg.sample_period_ns
    # A gamma rises over microseconds: far slower than any X-ray.
    assert np.median(rise[g]) > 1500
    assert np.mean(rise[g] > rise[x].max()) > 0.97
    # Without noise the shape separates the classes almost perfectly.
    cut = RiseTimeCut.fit(rise, labels)
    assert cut.accuracy(rise, labels) > 0.98
    # No gamma charge arrives before t0 plus the shortest drift time.
    sample_end = (np.arange(cfg.n_samples) + 1) * cfg.sample_period_ns
    empty = sample_end[None, :] <= truth["t0_ns"][g, None] + cfg.drift_min_ns
    assert empty.sum() > 10_000
    assert (waveforms[g][empty] == 0).all()
    # Without preamp decay an X-ray trace ends at its full charge; a gamma still misses the
    # late slow-component light.
    end = waveforms[:, -1]
    np.testing.assert_allclose(end[x], truth["charge_e"][x], rtol=1e-6)
    assert np.all(end[g] / truth["charge_e"][g] < 0.95)


def test_preamp_decay_droops_the_plateau() -> None:
    cfg = dataclasses.replace(NOISELESS, preamp_decay_ns=50_000.0)
    waveforms, labels, truth = simulate_events(300, 11, cfg)
    x = labels == 0
    # From the charge's arrival (~t0) to the end of the trace an X-ray decays by
    # exp(-elapsed / tau) (to within the arrival spread of its cloud).
    elapsed = cfg.n_samples * cfg.sample_period_ns - truth["t0_ns"][x]
    expected = truth["charge_e"][x] * np.exp(-elapsed / cfg.preamp_decay_ns)
    np.testing.assert_allclose(waveforms[x, -1], expected, rtol=0.01)
    assert np.all(waveforms[x, -1] < 0.97 * truth["charge_e"][x])


def test_noise_levels_match_config(events: Events) -> None:
    waveforms = events[0].astype(np.float64)
    cfg = XGammaConfig()
    baseline = waveforms[:, : cfg.pretrigger_samples // 2]
    # First differences: white noise contributes 2 sigma_w^2, the random walk sigma_rw^2,
    # the 1/f noise (mostly low frequency) a little.
    diff_std = np.diff(baseline, axis=1).std()
    expected = np.sqrt(2 * cfg.white_noise_e**2 + cfg.random_walk_e**2)
    assert 0.95 * expected < diff_std < 1.15 * expected
    # The baseline offset dominates the spread of per-event baseline means.
    means = baseline.mean(axis=1)
    assert 0.8 * cfg.baseline_offset_e < means.std() < 2.0 * cfg.baseline_offset_e


def test_gamma_rises_slower_under_default_noise(events: Events) -> None:
    waveforms, labels, _ = events
    cfg = XGammaConfig()
    rise = rise_time_ns(waveforms, cfg.sample_period_ns, cfg.pretrigger_samples)
    assert np.nanmedian(rise[labels == 1]) > np.nanmedian(rise[labels == 0]) + 500


def test_simulator_does_not_import_tensorflow() -> None:
    code = (
        "import sys, hpsearch.simulate, hpsearch.baselines; "
        "from hpsearch.simulate import simulate_events; simulate_events(5, 0); "
        "sys.exit(1 if any(m.split('.')[0] in ('tensorflow', 'keras') for m in sys.modules) "
        "else 0)"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "changes",
    [
        {"white_noise_e": -1.0},
        {"n_samples": 8},
        {"n_samples": 256.0},
        {"gamma_fraction": 1.5},
        {"sample_period_ns": 0.0},
        {"pretrigger_ns": 6000.0},
        {"charge_min_e": 5000.0, "charge_max_e": 4000.0},
        {"charge_min_e": 10.0, "charge_max_e": 100.0},  # below the X-ray band
        {"charge_min_e": 100000.0, "charge_max_e": 200000.0},  # above the X-ray band
        {"tau_fast_ns": 4000.0},
        {"tau_jitter": 1.0},
        {"trigger_jitter_ns": float("nan")},
        {"pileup_probability": "0.1"},
    ],
)
def test_bad_config_raises_input_error(changes: dict[str, Any]) -> None:
    with pytest.raises(InputError) as info:
        XGammaConfig(**changes)
    assert info.value.source == "XGammaConfig"
    assert info.value.fix


def test_config_dict_round_trip_and_unknown_key() -> None:
    cfg = XGammaConfig(white_noise_e=123.0, n_samples=300)
    assert XGammaConfig.from_dict(json.loads(cfg.to_json())) == cfg
    with pytest.raises(InputError, match="white_noise"):
        XGammaConfig.from_dict({"white_noise": 1.0})


def test_default_charge_window_is_inside_both_bands() -> None:
    cfg = XGammaConfig()
    per_kev = 1000.0 / cfg.pair_energy_ev
    assert cfg.charge_min_e >= cfg.xray_energy_min_kev * per_kev
    assert cfg.charge_max_e <= cfg.xray_energy_max_kev * per_kev
    assert cfg.charge_min_e >= cfg.gamma_energy_min_kev * cfg.light_yield_max_e_per_kev
    assert cfg.charge_max_e <= cfg.gamma_energy_max_kev * cfg.light_yield_min_e_per_kev


# ----------------------------------------------------------------------------- the file


def test_file_layout_and_attributes(tmp_path: Path) -> None:
    cfg = XGammaConfig(pileup_probability=0.1)
    target = tmp_path / "deep" / "dir" / "xg.h5"
    path = simulate_to_file(target, 600, 9, cfg, progress=False, chunk_events=256)
    assert path == target and path.exists()
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert sorted(p.name for p in target.parent.iterdir()) == ["xg.h5"]
    with h5py.File(path, "r") as h5:
        assert h5["waveforms"].shape == (600, 256)
        assert h5["waveforms"].dtype == np.float32
        assert h5["waveforms"].chunks == (256, 256)
        assert h5["labels"].shape == (600,) and h5["labels"].dtype == np.int8
        assert set(h5["truth"]) == set(TRUTH_FIELDS)
        for name, dtype in TRUTH_FIELDS.items():
            assert h5["truth"][name].shape == (600,)
            assert h5["truth"][name].dtype == dtype
        attrs = dict(h5.attrs)
    assert attrs["task"] == "xgamma"
    assert attrs["generator"] == "hpsearch.simulate.xgamma"
    assert attrs["generator_version"] == GENERATOR_VERSION
    assert attrs["seed"] == 9
    assert attrs["n_events"] == 600
    assert json.loads(attrs["class_names"]) == ["xray", "gamma"]
    assert XGammaConfig.from_dict(json.loads(attrs["config"])) == cfg
    assert attrs["sample_period_ns"] == 20.0
    assert attrs["pretrigger_samples"] == 50
    assert attrs["units"] == "electrons"


def test_small_file_and_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = simulate_to_file(str(tmp_path / "tiny.h5"), 3, 1, progress=True)
    with h5py.File(path, "r") as h5:
        assert h5["waveforms"].shape == (3, 256)
        assert h5["waveforms"].chunks == (3, 256)
    assert "xgamma" in capsys.readouterr().err


def test_interrupted_write_leaves_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "out.h5"
    target.write_bytes(b"previous contents")
    calls = {"n": 0}
    original = xgamma._BlockSource.events

    def failing(self: Any, start: int, stop: int) -> Any:
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, start, stop)

    monkeypatch.setattr(xgamma._BlockSource, "events", failing)
    with pytest.raises(KeyboardInterrupt):
        simulate_to_file(target, 1000, 1, progress=False, chunk_events=400)
    assert calls["n"] == 2
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_file_rejects_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        simulate_to_file(tmp_path / "a.h5", 0, 1, progress=False)
    with pytest.raises(InputError):
        simulate_to_file(tmp_path / "a.h5", 10, 1, progress=False, chunk_events=0)
    assert list(tmp_path.iterdir()) == []


def test_config_is_frozen() -> None:
    cfg = XGammaConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.white_noise_e = 1.0  # type: ignore[misc]


# ----------------------------------------------------------------------------- parallel workers


@dataclasses.dataclass(frozen=True)
class FailsInWorker(XGammaConfig):
    """A valid config in the process that made it, which raises in any other (a worker)."""

    parent_pid: int = 0

    def _xray_charge_range(self) -> tuple[float, float]:
        if os.getpid() != self.parent_pid:
            raise RuntimeError("boom in a simulation worker")
        return super()._xray_charge_range()


class InlineExecutor:
    """Stands in for ProcessPoolExecutor: runs each task at once, in this process, and counts
    the futures submitted whose result nobody has taken yet (the chunks held in memory)."""

    instances: list[InlineExecutor] = []

    def __init__(self, max_workers: int, mp_context: Any) -> None:
        self.max_workers = max_workers
        self.start_method = mp_context.get_start_method()
        self.outstanding = 0
        self.most_outstanding = 0
        self.shutdown_called = False
        InlineExecutor.instances.append(self)

    def submit(self, fn: Any, *args: Any) -> Future[Any]:
        future: Future[Any] = Future()
        future.set_result(fn(*args))
        self.outstanding += 1
        self.most_outstanding = max(self.most_outstanding, self.outstanding)
        taken = future.result

        def result(timeout: float | None = None) -> Any:
            self.outstanding -= 1
            return taken(timeout)

        future.result = result  # type: ignore[method-assign]
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self.shutdown_called = True


def test_workers_1_and_2_give_identical_files(tmp_path: Path) -> None:
    n = 3100  # 4 blocks, the last one partial
    expected = simulate_events(n, 13)
    one = simulate_to_file(tmp_path / "w1.h5", n, 13, progress=False, workers=1, chunk_events=1024)
    two = simulate_to_file(tmp_path / "w2.h5", n, 13, progress=False, workers=2, chunk_events=1024)
    # Chunks smaller than a block: tasks are whole blocks, so none is simulated twice.
    small = simulate_to_file(tmp_path / "s.h5", n, 13, progress=False, workers=2, chunk_events=300)
    for path in (one, two, small):
        assert_events_equal(read_file(path), expected)
    assert one.read_bytes() == two.read_bytes()  # in-order writes: the same file, byte for byte
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.h5", "w1.h5", "w2.h5"]


def test_an_error_in_a_worker_surfaces_and_leaves_no_file(tmp_path: Path) -> None:
    target = tmp_path / "out.h5"
    target.write_bytes(b"previous contents")
    cfg = FailsInWorker(parent_pid=os.getpid())
    with pytest.raises(RuntimeError, match="boom in a simulation worker"):
        simulate_to_file(target, 4000, 1, cfg, progress=False, workers=2, chunk_events=1024)
    assert target.read_bytes() == b"previous contents"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.h5"]


def test_parallel_chunks_arrive_in_order_with_bounded_memory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    InlineExecutor.instances.clear()
    monkeypatch.setattr(_chunks, "ProcessPoolExecutor", InlineExecutor)
    n = 10 * 1024 + 7  # 11 tasks of one block
    path = simulate_to_file(tmp_path / "x.h5", n, 2, progress=True, workers=3, chunk_events=1000)
    (pool,) = InlineExecutor.instances
    assert (pool.max_workers, pool.start_method) == (3, "spawn")
    assert pool.most_outstanding == 2 * 3
    assert pool.outstanding == 0 and pool.shutdown_called
    assert_events_equal(read_file(path), simulate_events(n, 2))
    assert f"{n}/{n}" in capsys.readouterr().err  # the bar advanced to the end


def test_workers_are_capped_by_the_number_of_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    InlineExecutor.instances.clear()
    monkeypatch.setattr(_chunks, "ProcessPoolExecutor", InlineExecutor)
    simulate_to_file(tmp_path / "x.h5", 2500, 2, progress=False, workers=64, chunk_events=2048)
    assert [pool.max_workers for pool in InlineExecutor.instances] == [2]  # 2048 + 452 events


@pytest.mark.parametrize(
    ("n_events", "workers", "chunk_events"),
    [
        (3000, 1, 1024),  # one worker
        (3000, 4, 4096),  # fewer events than one chunk
        (1000, 4, 300),  # several chunks, but one RNG block
        (3000, None, 4096),  # every core, still one chunk
    ],
)
def test_small_runs_start_no_pool(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    n_events: int,
    workers: int | None,
    chunk_events: int,
) -> None:
    def no_pool(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("a pool was started")

    monkeypatch.setattr(_chunks, "ProcessPoolExecutor", no_pool)
    path = simulate_to_file(
        tmp_path / "x.h5",
        n_events,
        4,
        progress=False,
        workers=workers,
        chunk_events=chunk_events,
    )
    assert_events_equal(read_file(path), simulate_events(n_events, 4))


@pytest.mark.parametrize("workers", [0, -2, True, 1.5, "2"])
def test_bad_workers_are_refused(tmp_path: Path, workers: Any) -> None:
    with pytest.raises(InputError, match="workers"):
        simulate_to_file(tmp_path / "a.h5", 10, 1, progress=False, workers=workers)
    assert list(tmp_path.iterdir()) == []
