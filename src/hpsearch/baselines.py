"""Non-learned baselines a network has to beat.

For ``xgamma`` the classical discriminator is the pulse's rise time: an X-ray's charge arrives
within the SDD drift time (tens of ns to ~800 ns), a gamma's scintillation light over the
microsecond CsI(Tl) decay (Marisaldi et al. 2005, IEEE TNS 52(5):1842). :func:`rise_time_ns`
measures it and :class:`RiseTimeCut` turns it into a classifier with one threshold. A network
is only worth its cost if it clearly beats this cut on held-out events. Pure numpy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpsearch.errors import InputError

if TYPE_CHECKING:
    from hpsearch.objective import DataRef

__all__ = ["CutScore", "RiseTimeCut", "rise_time_ns", "score_rise_time_cut"]


def _smooth(traces: NDArray[np.float64], width: int) -> NDArray[np.float64]:
    """Centred moving average along the samples; the edges average over what exists."""
    if width <= 1:
        return traces
    n = traces.shape[1]
    cumulative = np.concatenate([np.zeros((traces.shape[0], 1)), np.cumsum(traces, axis=1)], axis=1)
    half = width // 2
    lo = np.clip(np.arange(n) - half, 0, n)
    hi = np.clip(np.arange(n) - half + width, 0, n)
    smoothed: NDArray[np.float64] = (cumulative[:, hi] - cumulative[:, lo]) / (hi - lo)
    return smoothed


def rise_time_ns(
    waveforms: ArrayLike,
    sample_period_ns: float,
    pretrigger_samples: int,
    *,
    smooth_ns: float = 400.0,
    plateau_ns: float = 800.0,
) -> NDArray[np.float64]:
    """10%-90% rise time of each trace, made robust to noise.

    Method, per trace:

    1. Baseline: mean of the first half of the pre-trigger samples. Only the first half,
       because a leading-edge trigger fires late on slow, small pulses (time walk), so a
       gamma's rise may begin well before the trigger sample.
    2. Smooth the trace with a centred moving average over ``smooth_ns``, which divides white
       noise by the square root of its length in samples at the cost of a class-blind widening
       of fast edges (an X-ray's rise becomes about ``0.8 * smooth_ns`` longer).
    3. Amplitude: mean of the smoothed samples in the last ``plateau_ns`` minus the baseline
       (for a gamma the "plateau" is still creeping up with the slow CsI(Tl) component; the
       rise time is then relative to the charge seen in the trace).
    4. 90% point: the first sample at or after the baseline window whose normalized value
       reaches 0.9. 10% point: the last sample before it that lies below 0.1 (so noise spikes
       in the baseline do not count). Both crossing times are linearly interpolated between
       samples.

    Args:
        waveforms: ``(n_events, n_samples)`` traces (any units, positive-going pulses); a
            trailing channel axis of length 1 is accepted.
        sample_period_ns: Sampling period in ns.
        pretrigger_samples: Samples before the trigger (the file's ``pretrigger_samples``).
        smooth_ns: Width of the moving average in ns (rounded to whole samples; below 1.5
            samples it disables smoothing). The default, 400 ns, is near the width that
            maximizes the cut's accuracy on the default xgamma simulation (swept 100-600 ns):
            the baseline is meant to be a fair opponent, not a straw man.
        plateau_ns: Length of the trace end averaged for the amplitude, in ns (default
            800 ns, likewise tuned).

    Returns:
        float64 ``(n_events,)`` rise times in ns; NaN where the amplitude is not positive
        (no pulse to measure).

    Raises:
        InputError: On a non-2-D input or settings that do not fit the trace.
    """
    traces = np.asarray(waveforms, dtype=np.float64)
    if traces.ndim == 3 and traces.shape[2] == 1:
        traces = traces[:, :, 0]
    if traces.ndim != 2:
        raise InputError(
            "rise_time_ns", "waveforms", f"must be 2-D, got shape {traces.shape}", "pass (N, T)"
        )
    n_events, n_samples = traces.shape
    if not 2 <= pretrigger_samples < n_samples:
        raise InputError(
            "rise_time_ns",
            "pretrigger_samples",
            f"must lie in [2, {n_samples}), got {pretrigger_samples}",
            "pass the file's pretrigger_samples attribute",
        )
    if not sample_period_ns > 0:
        raise InputError(
            "rise_time_ns",
            "sample_period_ns",
            f"must be > 0, got {sample_period_ns}",
            "pass the file's sample_period_ns attribute",
        )
    smooth_samples = max(1, round(smooth_ns / sample_period_ns))
    plateau_samples = max(1, round(plateau_ns / sample_period_ns))
    if plateau_samples > n_samples - pretrigger_samples:
        raise InputError(
            "rise_time_ns",
            "plateau_ns",
            f"{plateau_ns} ns is longer than the {n_samples - pretrigger_samples} samples after "
            "the trigger",
            "use a shorter plateau",
        )
    if n_events == 0:
        return np.zeros(0)
    baseline_stop = pretrigger_samples // 2
    baseline = traces[:, :baseline_stop].mean(axis=1)
    smoothed = _smooth(traces, smooth_samples)
    amplitude = smoothed[:, -plateau_samples:].mean(axis=1) - baseline
    valid = amplitude > 0
    scale = np.where(valid, amplitude, 1.0)
    norm = (smoothed - baseline[:, None]) / scale[:, None]

    samples = np.arange(n_samples)
    reached = (norm >= 0.9) & (samples >= baseline_stop)
    # A positive amplitude guarantees a plateau sample at >= 100%, hence a 90% crossing.
    i90 = np.argmax(reached, axis=1)
    below = (norm < 0.1) & (samples < i90[:, None])
    has_below = below.any(axis=1)
    i10 = np.where(has_below, n_samples - 1 - np.argmax(below[:, ::-1], axis=1), i90)
    rows = np.arange(n_events)
    t90 = _crossing(norm, rows, i90 - 1, 0.9)
    t10 = np.where(has_below, _crossing(norm, rows, i10, 0.1), i90.astype(np.float64))
    rise = (t90 - t10) * sample_period_ns
    return np.where(valid, rise, np.nan)


def _crossing(
    norm: NDArray[np.float64], rows: NDArray[np.int64], left: NDArray[np.int64], level: float
) -> NDArray[np.float64]:
    """Fractional sample index where ``norm`` crosses ``level`` between ``left`` and ``left+1``.

    Where ``left < 0`` (the crossing is at the first sample) the first sample is returned.
    """
    n_samples = norm.shape[1]
    a_index = np.clip(left, 0, n_samples - 1)
    b_index = np.clip(left + 1, 0, n_samples - 1)
    a = norm[rows, a_index]
    b = norm[rows, b_index]
    step = b - a
    safe = np.where(step != 0, step, 1.0)
    frac = np.where(step != 0, np.clip((level - a) / safe, 0.0, 1.0), 0.0)
    result: NDArray[np.float64] = np.where(left < 0, 0.0, a_index + frac)
    return result


@dataclass
class RiseTimeCut:
    """One-threshold classifier: rise time above ``threshold_ns`` means gamma (label 1).

    Attributes:
        threshold_ns: The cut; events with a rise time strictly above it are called gammas.
        nan_label: Label given to events whose rise time is NaN (no measurable pulse); fitted
            as the majority label of such events in the training set (1 if there were none).
    """

    threshold_ns: float
    nan_label: int = 1

    @classmethod
    def fit(cls, rise_ns: ArrayLike, labels: ArrayLike) -> RiseTimeCut:
        """Pick the threshold that maximizes accuracy on the given (training) events.

        Every split between consecutive distinct rise times is tried; the threshold is the
        midpoint of the best one (ties go to the lowest threshold).

        Args:
            rise_ns: ``(N,)`` rise times in ns, NaN allowed.
            labels: ``(N,)`` labels, 0 = X-ray, 1 = gamma.

        Raises:
            InputError: On mismatched shapes, labels other than 0/1, or no events.
        """
        rise, truth = _check_pair(rise_ns, labels)
        nan = np.isnan(rise)
        nan_label = int(truth[nan].mean() >= 0.5) if nan.any() else 1
        finite_rise = rise[~nan]
        finite_truth = truth[~nan]
        if finite_rise.size == 0:
            return cls(threshold_ns=0.0, nan_label=nan_label)
        order = np.argsort(finite_rise, kind="stable")
        values = finite_rise[order]
        gamma = finite_truth[order] == 1
        # Split k: the k smallest are called X-rays, the rest gammas.
        xray_below = np.concatenate([[0], np.cumsum(~gamma)])
        gamma_above = int(gamma.sum()) - np.concatenate([[0], np.cumsum(gamma)])
        correct = xray_below + gamma_above
        allowed = np.ones(values.size + 1, dtype=bool)
        allowed[1:-1] = values[1:] > values[:-1]
        best = int(np.argmax(np.where(allowed, correct, -1)))
        if best == 0:
            threshold = float(values[0]) - 1.0
        elif best == values.size:
            threshold = float(values[-1]) + 1.0
        else:
            threshold = 0.5 * float(values[best - 1] + values[best])
        return cls(threshold_ns=threshold, nan_label=nan_label)

    def predict(self, rise_ns: ArrayLike) -> NDArray[np.int8]:
        """Labels for the given rise times (1 = gamma above the threshold)."""
        rise = np.asarray(rise_ns, dtype=np.float64)
        above = (rise > self.threshold_ns).astype(np.int8)
        return np.where(np.isnan(rise), np.int8(self.nan_label), above).astype(np.int8)

    def accuracy(self, rise_ns: ArrayLike, labels: ArrayLike) -> float:
        """Fraction of events whose label the cut predicts correctly."""
        rise, truth = _check_pair(rise_ns, labels)
        return float(np.mean(self.predict(rise) == truth))


def _check_pair(
    rise_ns: ArrayLike, labels: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
    rise = np.asarray(rise_ns, dtype=np.float64).reshape(-1)
    truth = np.asarray(labels).reshape(-1)
    if rise.shape != truth.shape or rise.size == 0:
        raise InputError(
            "RiseTimeCut",
            "rise_ns, labels",
            f"need equal, non-zero lengths, got {rise.shape[0]} and {truth.shape[0]}",
            "pass one rise time per label",
        )
    if not np.isin(truth, (0, 1)).all():
        raise InputError(
            "RiseTimeCut", "labels", "must be 0 (X-ray) or 1 (gamma)", "pass binary labels"
        )
    return rise, truth.astype(np.int64)


@dataclass(frozen=True)
class CutScore:
    """The rise-time cut fitted on a study's training events and scored on its test events."""

    cut: RiseTimeCut
    accuracy: float
    n_train: int
    n_test: int


def score_rise_time_cut(data: DataRef) -> CutScore:
    """Fit the cut on the split's training events and score it on its test events.

    Reads the file batch by batch, as the networks do, so it works on files beyond memory;
    the split is the study's own, so the number compares with the trials' test accuracy.
    """
    from hpsearch.data import BatchReader, H5Source, iterate

    info = data.info()
    period = float(info.attrs.get("sample_period_ns", 1.0))
    pretrigger = int(info.attrs.get("pretrigger_samples", max(1, info.event_shape[0] // 8)))
    split = data.split()

    def rises(blocks: NDArray[np.int64]) -> tuple[NDArray[np.float64], NDArray[np.int64]]:
        source = H5Source(info, data.layout)
        with BatchReader(source, blocks, 1024, shuffle=False, seed=0) as reader:
            pairs = [(rise_time_ns(x, period, pretrigger), y) for x, y in iterate(reader)]
        return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])

    train_rise, train_labels = rises(split.train)
    test_rise, test_labels = rises(split.test)
    cut = RiseTimeCut.fit(train_rise, train_labels)
    return CutScore(
        cut=cut,
        accuracy=cut.accuracy(test_rise, test_labels),
        n_train=len(train_rise),
        n_test=len(test_rise),
    )
