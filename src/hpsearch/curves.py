"""Learning-curve tables: every epoch of a fixed sample of a study's configurations, kept.

``hpsearch curves record STUDY --configs N`` trains N configurations drawn at random (seeded
by the study's master seed) to the full epoch budget, with no early stopping, and writes what
each reported per epoch to one HDF5 file. ``hpsearch run STUDY --replay TABLE`` then runs whole
searches against that file in seconds (see :mod:`hpsearch.runner._replay`), which is what
makes searchers and schedulers comparable over many seeds (``make bench``), as the tabular
benchmarks of the HPO literature (HPOBench, YAHPO, Syne Tune's blackbox repository) do.

A searcher proposes points of the study's whole space, not only the recorded ones; a proposal
is answered by its **nearest recorded neighbour** (:class:`Neighbours`). Chosen over
restricting the space to the recorded points, which would turn every parameter into one
unordered category and leave a model-based searcher nothing to model; and over a surrogate
model (a random forest), which would invent curves nobody trained, with made-up noise and
made-up coupling between accuracy and time. The neighbour's curve is a real, whole training
run: its accuracy and its seconds belong together, epoch by epoch. The trial is stored with
the neighbour's parameters, so that a searcher learns each result with the configuration that
produced it.

File layout (all arrays share the row order)::

    /params          (n,) JSON text: a row's flat parameters, by dotted name
    /state           (n,) COMPLETE or FAIL (a trial whose training failed, replayed as such)
    /error           (n,) the failure's text ("" for COMPLETE)
    /seed            (n,) the trial's seed
    /metrics/<name>  (n, epochs) float64, NaN after a failed trial's last report
    attrs["hpsearch_curves"]  JSON: study, space fingerprint and tree, objectives, epochs,
                              the recording command, machine, versions, data provenance
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hpsearch.errors import InputError

if TYPE_CHECKING:
    import optuna

    from hpsearch.spec import SearchSpace

#: The attribute of the file's root that holds its description (JSON).
META_KEY = "hpsearch_curves"
#: Format version, bumped when the layout changes.
FORMAT = 1
#: The report key that says how long a trial has run, wall time (see ReportChannel).
WALL = "wall_seconds"
#: What a replayed report adds about the replay itself (see :mod:`hpsearch.runner._replay`):
#: bookkeeping, stored with the trial's last report but kept out of its per-epoch history.
REPLAY_KEYS = ("replay_row", "replay_distance", "replay_started", "replay_clock")
#: Weight of a mismatched conditional choice (the model family, the LR schedule) in the
#: neighbour distance: a proposal is answered by a run of the same branch whenever one exists.
CHOICE_WEIGHT = 10.0


@dataclass(frozen=True)
class CurveTable:
    """Recorded per-epoch metrics of a sample of configurations.

    Attributes:
        params: Each row's flat parameters (dotted names, as stored with Optuna trials).
        metrics: Per metric, an array (rows, epochs); NaN where the row did not report.
        state: ``COMPLETE`` or ``FAIL`` per row.
        error: The failure's text per row ("" for COMPLETE).
        seed: The seed each row was trained with.
        meta: What made the table (see the module docstring).
    """

    params: list[dict[str, Any]]
    metrics: dict[str, np.ndarray]
    state: list[str]
    error: list[str]
    seed: list[int]
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def rows(self) -> int:
        """How many configurations the table holds."""
        return len(self.params)

    @property
    def epochs(self) -> int:
        """Epochs recorded per configuration."""
        return int(next(iter(self.metrics.values())).shape[1]) if self.metrics else 0

    def reported(self, row: int) -> int:
        """How many epochs the row reported (all of them for a COMPLETE row)."""
        wall = self.metrics[WALL][row]
        return int(np.sum(np.isfinite(wall)))

    def epoch_seconds(self, row: int) -> np.ndarray:
        """The wall seconds each reported epoch of ``row`` took (the first includes the build)."""
        wall = self.metrics[WALL][row, : self.reported(row)]
        return np.diff(wall, prepend=0.0)

    def report(self, row: int, epoch: int) -> dict[str, Any]:
        """What ``row`` reported at ``epoch`` (from 1): its metrics, as the objective sent them."""
        values: dict[str, Any] = {}
        for name, array in self.metrics.items():
            value = float(array[row, epoch - 1])
            if math.isfinite(value):
                values[name] = value
        values["epoch"] = epoch
        return values

    # -- files ---------------------------------------------------------------------------

    def write(self, path: str | Path) -> Path:
        """Write the table to ``path`` (HDF5), replacing any file there."""
        import h5py

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = h5py.string_dtype()
        partial = path.with_name(path.name + ".partial")
        with h5py.File(partial, "w") as file:
            file.attrs[META_KEY] = json.dumps({**self.meta, "format": FORMAT}, sort_keys=True)
            file.create_dataset(
                "params", data=[json.dumps(p, sort_keys=True) for p in self.params], dtype=text
            )
            file.create_dataset("state", data=self.state, dtype=text)
            file.create_dataset("error", data=self.error, dtype=text)
            file.create_dataset("seed", data=np.asarray(self.seed, dtype=np.int64))
            group = file.create_group("metrics")
            for name, array in sorted(self.metrics.items()):
                group.create_dataset(name, data=array, compression="gzip", shuffle=True)
        partial.replace(path)
        return path

    @classmethod
    def read(cls, path: str | Path, *, source: str = "--replay") -> CurveTable:
        """Read a table written by :meth:`write`.

        Raises:
            InputError: No such file, not HDF5, or not a learning-curve table.
        """
        import h5py

        path = Path(path)
        fix = "record one with `hpsearch curves record STUDY --configs N --out FILE`"
        if not path.is_file():
            raise InputError(source, "table", f"no learning-curve table at {path}", fix)
        try:
            with h5py.File(path, "r") as file:
                if META_KEY not in file.attrs:
                    raise InputError(
                        str(path), META_KEY, "is not a learning-curve table (no description)", fix
                    )
                meta = json.loads(file.attrs[META_KEY])
                params = [json.loads(p) for p in file["params"].asstr()[()]]
                state = list(file["state"].asstr()[()])
                error = list(file["error"].asstr()[()])
                seed = [int(s) for s in file["seed"][()]]
                metrics = {name: np.asarray(data[()]) for name, data in file["metrics"].items()}
        except OSError as exc:
            raise InputError(source, "table", f"cannot read {path} as HDF5: {exc}", fix) from exc
        except KeyError as exc:
            raise InputError(str(path), str(exc), "is missing from the table", fix) from exc
        if WALL not in metrics:
            raise InputError(
                str(path),
                f"metrics/{WALL}",
                "is missing: the replay's clock needs each epoch's wall time",
                fix,
            )
        return cls(params, metrics, state, error, seed, meta)

    @classmethod
    def from_study(
        cls,
        study: optuna.Study,
        *,
        epochs: int,
        meta: Mapping[str, Any],
    ) -> CurveTable:
        """The table of a recording study's finished trials, in trial order.

        Trials cut short by the run (interrupted, time budget, lost worker) are left out: they
        say nothing about their configuration. A trial whose training failed stays, as FAIL,
        so that a replayed search meets the failures a real one would.
        """
        from optuna.trial import TrialState

        from hpsearch.lifecycle import NOT_JUDGED
        from hpsearch.results.storage import trial_history

        rows: list[optuna.trial.FrozenTrial] = []
        for trial in study.get_trials(deepcopy=False):
            if trial.state == TrialState.COMPLETE or (
                trial.state == TrialState.FAIL
                and trial.user_attrs.get("stop_reason") not in NOT_JUDGED
            ):
                rows.append(trial)
        histories = [trial_history(trial) for trial in rows]
        reported = [
            *(report.items() for history in histories for report in history),
            *(
                ((k, v) for k, v in trial.user_attrs.items() if k.startswith("test_"))
                for trial in rows
            ),
        ]
        names = sorted(
            {
                key
                for items in reported
                for key, value in items
                if key != "epoch" and isinstance(value, int | float) and not isinstance(value, bool)
            }
        )
        metrics = {name: np.full((len(rows), epochs), np.nan) for name in names}
        for i, (trial, history) in enumerate(zip(rows, histories, strict=True)):
            for report in history:
                epoch = report.get("epoch")
                if not isinstance(epoch, int) or not 1 <= epoch <= epochs:
                    continue
                for name in names:
                    value = report.get(name)
                    if isinstance(value, int | float) and not isinstance(value, bool):
                        metrics[name][i, epoch - 1] = float(value)
            # The final report's test metrics live in the trial's attributes, not its history.
            for name in names:
                value = trial.user_attrs.get(name)
                if name.startswith("test_") and isinstance(value, int | float):
                    metrics[name][i, epochs - 1] = float(value)
        return cls(
            params=[dict(trial.params) for trial in rows],
            metrics=metrics,
            state=[trial.state.name for trial in rows],
            error=[str(trial.user_attrs.get("error", "")) for trial in rows],
            seed=[int(trial.user_attrs.get("seed", 0)) for trial in rows],
            meta=dict(meta),
        )


class Neighbours:
    """Answers a proposed configuration with the table's nearest recorded one.

    The distance counts :data:`CHOICE_WEIGHT` for each conditional choice (model family,
    optimizer, LR schedule) that both take, differently, plus the *mean* difference over the
    other parameters both have: 0 or 1 for a categorical value, the difference of numbers
    scaled to their range (log-scaled where the space says ``log``) for a number. So a
    proposal is answered by a row of the same branches wherever one exists, and among those
    by the closest values. A mean, not a sum, and no charge for the parameters of a branch
    the other side did not take: otherwise rows whose branches have few parameters (the
    ``constant`` LR schedule has none) would be nearer to every proposal than rows with
    more. Ties go to the earlier row, so a replay is deterministic.
    """

    def __init__(self, table: CurveTable, space: SearchSpace) -> None:
        from hpsearch.spec import CategoricalParam

        self._numeric: list[tuple[str, float, float, bool]] = []
        self._categorical: list[tuple[str, bool]] = []
        choices = set(space.choice_names())
        for name, param in space.params().items():
            if isinstance(param, CategoricalParam):
                self._categorical.append((name, name in choices))
            else:
                low, high = float(param.low), float(param.high)
                self._numeric.append((name, low, high, bool(param.log)))
        self._rows = table.rows
        self._num = (
            np.stack(
                [
                    self._scale(name, [p.get(name) for p in table.params])
                    for name, *_ in self._numeric
                ]
            )
            if self._numeric
            else np.zeros((0, self._rows))
        )
        self._cat = [
            [json.dumps(p.get(name), sort_keys=True) if name in p else None for p in table.params]
            for name, _ in self._categorical
        ]

    def _scale(self, name: str, values: Sequence[Any]) -> np.ndarray:
        """Values of numeric parameter ``name`` on [0, 1]; NaN where absent."""
        _, low, high, log = next(n for n in self._numeric if n[0] == name)
        out = np.full(len(values), np.nan)
        for i, value in enumerate(values):
            if isinstance(value, int | float) and not isinstance(value, bool):
                if log:
                    lo, hi, v = math.log(low), math.log(high), math.log(max(value, low))
                else:
                    lo, hi, v = low, high, float(value)
                out[i] = 0.0 if hi == lo else (v - lo) / (hi - lo)
        return out

    def distances(self, flat: Mapping[str, Any]) -> np.ndarray:
        """The distance from ``flat`` (dotted parameters) to every row."""
        choices = np.zeros(self._rows)
        shared = np.zeros(self._rows)  # parameters both sides have
        differ = np.zeros(self._rows)  # their summed differences
        for (name, *_), row in zip(self._numeric, self._num, strict=True):
            mine = self._scale(name, [flat.get(name)])[0]
            if math.isnan(mine):
                continue
            both = np.isfinite(row)
            shared += both
            differ += np.where(both, np.minimum(np.abs(row - mine), 1.0), 0.0)
        for (name, is_choice), column in zip(self._categorical, self._cat, strict=True):
            if name not in flat:
                continue
            mine = json.dumps(flat[name], sort_keys=True)
            both = np.array([value is not None for value in column])
            unlike = np.array([value is not None and value != mine for value in column])
            if is_choice:
                choices += unlike
            else:
                shared += both
                differ += unlike
        return CHOICE_WEIGHT * choices + differ / np.maximum(shared, 1.0)

    def nearest(self, flat: Mapping[str, Any], *, taken: Collection[int] = ()) -> tuple[int, float]:
        """The nearest row to ``flat`` and its distance (0: a recorded configuration).

        Args:
            flat: The proposal (dotted parameters).
            taken: Rows not to answer with while any other is left.
        """
        distances = self.distances(flat)
        free = distances.copy()
        free[list(taken)] = np.inf
        row = int(np.argmin(free)) if np.isfinite(free).any() else int(np.argmin(distances))
        return row, float(distances[row])
