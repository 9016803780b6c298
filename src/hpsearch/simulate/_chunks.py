"""The simulators' common file writer: chunks of events, simulated on every core, written in order.

Why shared: every seed simulator writes the same kind of file (fixed-shape per-event datasets,
root attributes) from a deterministic event stream, and every one wants the same guarantees:
its contents never depend on how the work is chunked or on how many processes do it; memory
stays bounded whatever the number of events; an interrupted run, or an error in any worker,
leaves no half-written file behind. This module does that once; a simulator gives it the
datasets (:class:`Column`), the root attributes, and a picklable ``simulate_range(start, stop)``
that returns events ``start`` to ``stop`` of its stream.

Determinism is the simulator's part: it must draw event ``i`` from an RNG stream that depends
only on ``(seed, i // block_events)`` (e.g. ``derive_rng(seed, name, block)``), so that
``simulate_range`` gives the same events for any range. This module's part is to hand workers
whole blocks (no block is simulated twice) and to write results in event order.
"""

from __future__ import annotations

import contextlib
import itertools
import multiprocessing
import os
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpsearch.errors import InputError

__all__ = ["Column", "check_run", "write_simulation"]

SimulateRange = Callable[[int, int], Mapping[str, np.ndarray]]
"""``simulate_range(start, stop)``: one array per column for events ``start`` to ``stop``."""

Chunks = Generator[tuple[int, int, Mapping[str, np.ndarray]], None, None]
"""``(start, stop, columns)`` of consecutive event ranges, in order."""


@dataclass(frozen=True)
class Column:
    """One per-event dataset of a simulation file.

    Attributes:
        name: Dataset path in the file, e.g. ``"waveforms"`` or ``"truth/energy_kev"``
            (intermediate groups are created).
        shape: Per-event shape, ``()`` for a scalar per event; the dataset is
            ``(n_events, *shape)``.
        dtype: numpy dtype (or an h5py string dtype).
        chunk_rows: HDF5 chunk size in events, for big per-event arrays that are read a batch
            of rows at a time (capped at ``n_events``); ``None`` leaves h5py's default
            (contiguous unless compressed).
        compression: h5py compression filter (e.g. ``"gzip"``), ``None`` for none.
        attrs: Attributes of the dataset (e.g. ``target_names``), ``None`` for none.
    """

    name: str
    shape: tuple[int, ...]
    dtype: Any
    chunk_rows: int | None = None
    compression: str | None = None
    attrs: Mapping[str, Any] | None = None


def check_run(n_events: Any, seed: Any, minimum: int, source: str) -> None:
    """Refuse a bad event count or seed with an :class:`InputError` naming ``source``.

    Args:
        n_events: Number of events asked for.
        seed: Master seed asked for.
        minimum: Smallest allowed ``n_events`` (0 in memory, 1 for a file).
        source: Who is asking (the simulator's name), for the message.
    """
    if isinstance(n_events, bool) or not isinstance(n_events, int | np.integer):
        raise InputError(
            source, "n_events", f"must be an integer, got {n_events!r}", "give a whole number"
        )
    if n_events < minimum:
        raise InputError(
            source, "n_events", f"must be >= {minimum}, got {n_events}", "ask for more events"
        )
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise InputError(
            source, "seed", f"must be a non-negative integer, got {seed!r}", "use e.g. 0"
        )


def write_simulation(
    path: str | Path,
    n_events: int,
    *,
    columns: Sequence[Column],
    attrs: Mapping[str, Any],
    simulate_range: SimulateRange,
    block_events: int,
    chunk_events: int = 2048,
    workers: int | None = None,
    progress: bool = True,
    label: str = "events",
    source: str = "simulate",
) -> Path:
    """Simulate ``n_events`` events into an HDF5 file, chunk by chunk, possibly in parallel.

    Chunks are simulated by ``workers`` processes and written in order as they arrive. Writes
    to a temporary file in the target's directory and renames it at the end, so an interrupted
    run, or an error in any worker, leaves no half-written file under ``path`` (an existing
    file there is kept until the rename replaces it).

    Parallel runs hand each worker whole RNG blocks, ``max(1, chunk_events // block_events)``
    blocks per task, so that no block is simulated twice, and keep at most ``2 * workers``
    tasks in flight: memory stays about ``2 * workers * max(chunk_events, block_events)``
    events in the parent, whatever ``n_events`` is. Workers are started with the ``spawn``
    method, not ``fork``: the caller may be a CLI or a runner with threads (TensorFlow, Ray, a
    progress bar), and forking a threaded process can deadlock the child on a lock some other
    thread held. Like any ``spawn`` pool, it must be started from an importable script (under
    ``if __name__ == "__main__":``) or from ``python -c``; pass ``workers=1`` otherwise. A run
    of at most one chunk, or of a single task, or ``workers=1``, starts no pool and calls
    ``simulate_range`` in this process on consecutive ranges of ``chunk_events`` events (a
    stateful ``simulate_range`` may cache its last block between such calls).

    Args:
        path: Target file; parent directories are created. An existing file is replaced.
        n_events: Number of events (>= 1).
        columns: The per-event datasets, created in this order.
        attrs: Root attributes of the file (h5py-storable values).
        simulate_range: Picklable callable (a module-level function, a ``functools.partial``
            of one, or an instance of a module-level class) returning, for events ``[start,
            stop)``, one array per column name of shape ``(stop - start, *column.shape)``.
        block_events: Events per RNG block of the simulator (tasks are whole blocks).
        chunk_events: Events generated and written per step (memory knob only).
        workers: Processes simulating chunks; ``None`` means ``os.cpu_count()``. Never more
            than there are tasks.
        progress: Show a rich progress bar on stderr; it advances as chunks are written.
        label: Description next to the progress bar (e.g. the file name).
        source: The simulator's name: the progress bar's prefix and the ``source`` of an
            :class:`InputError`.

    Returns:
        The path of the written file.

    Raises:
        InputError: On bad arguments (before any file is created).
        Exception: Whatever a worker raised, re-raised here (its traceback chained as the
            cause); the temporary file is removed first.
    """
    import h5py  # deferred: importing a simulator stays cheap

    check_run(n_events, 0, 1, source)
    if isinstance(chunk_events, bool) or not isinstance(chunk_events, int) or chunk_events < 1:
        raise InputError(
            source,
            "chunk_events",
            f"must be a positive integer, got {chunk_events!r}",
            "use e.g. 2048",
        )
    if workers is None:
        workers = os.cpu_count() or 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise InputError(
            source,
            "workers",
            f"must be a positive integer or None, got {workers!r}",
            "use None for every core, or 1 for no worker processes",
        )
    if isinstance(block_events, bool) or not isinstance(block_events, int) or block_events < 1:
        raise ValueError(f"block_events must be a positive integer, got {block_events!r}")
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temp_name = tempfile.mkstemp(
        prefix=f".{target.name}.", suffix=".part", dir=target.parent
    )
    os.close(handle)
    temp = Path(temp_name)
    # mkstemp makes the file private (0600); give the result the usual umask-based mode.
    umask = os.umask(0)
    os.umask(umask)
    temp.chmod(0o666 & ~umask)
    n_events = int(n_events)
    try:
        with h5py.File(temp, "w") as h5:
            for key, value in attrs.items():
                h5.attrs[key] = value
            datasets = {}
            for column in columns:
                chunks = None
                if column.chunk_rows is not None:
                    chunks = (min(column.chunk_rows, n_events), *column.shape)
                datasets[column.name] = h5.create_dataset(
                    column.name,
                    shape=(n_events, *column.shape),
                    dtype=column.dtype,
                    chunks=chunks,
                    compression=column.compression,
                )
                for key, value in (column.attrs or {}).items():
                    datasets[column.name].attrs[key] = value
            parts = _chunks(n_events, simulate_range, block_events, chunk_events, workers)
            with _progress_bar(progress, n_events, label, source) as advance, parts as results:
                for start, stop, values in results:
                    for name, dataset in datasets.items():
                        dataset[start:stop] = values[name]
                    advance(stop - start)
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    return target


def _task_ranges(n_events: int, block_events: int, chunk_events: int) -> list[tuple[int, int]]:
    """Event ranges for worker tasks: whole RNG blocks, about ``chunk_events`` events each.

    Aligned on blocks because a block is simulated whole: a range cutting one would make two
    workers simulate it. Rounded down to whole blocks (at least one) so that ``chunk_events``
    stays an upper bound on memory wherever it is at least a block.
    """
    task_events = max(1, chunk_events // block_events) * block_events
    return [
        (start, min(start + task_events, n_events)) for start in range(0, n_events, task_events)
    ]


def _chunks(
    n_events: int,
    simulate_range: SimulateRange,
    block_events: int,
    chunk_events: int,
    workers: int,
) -> contextlib.closing[Chunks]:
    """``(start, stop, columns)`` for consecutive ranges covering all events, in order.

    A context manager, so that leaving it early (an error while writing) stops the pool at
    once rather than whenever the generator is collected.
    """
    ranges = _task_ranges(n_events, block_events, chunk_events)
    if workers == 1 or n_events <= chunk_events or len(ranges) == 1:
        return contextlib.closing(_serial_chunks(n_events, simulate_range, chunk_events))
    return contextlib.closing(_parallel_chunks(ranges, simulate_range, min(workers, len(ranges))))


def _serial_chunks(n_events: int, simulate_range: SimulateRange, chunk_events: int) -> Chunks:
    """Every ``chunk_events`` events, simulated in this process."""
    for start in range(0, n_events, chunk_events):
        stop = min(start + chunk_events, n_events)
        yield start, stop, simulate_range(start, stop)


def _parallel_chunks(
    ranges: list[tuple[int, int]], simulate_range: SimulateRange, workers: int
) -> Chunks:
    """The ``ranges``' events, simulated by ``workers`` spawned processes, yielded in order.

    At most ``2 * workers`` tasks are submitted and not yet yielded: enough that every worker
    has its next task queued while the parent writes, few enough to bound memory. The next
    task is submitted before a result is yielded, so workers keep going while it is written.
    A worker's exception is re-raised by ``Future.result``; on any exit the pool's queued
    tasks are cancelled and its processes joined.
    """
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    todo = iter(ranges)
    pending: deque[tuple[int, int, Future[Mapping[str, np.ndarray]]]] = deque()

    def submit(start: int, stop: int) -> None:
        pending.append((start, stop, pool.submit(simulate_range, start, stop)))

    try:
        for start, stop in itertools.islice(todo, 2 * workers):
            submit(start, stop)
        while pending:
            start, stop, future = pending.popleft()
            try:
                result = future.result()
            except BrokenProcessPool as error:
                raise BrokenProcessPool(
                    "a simulation worker process died (its traceback, if any, is above). Killed "
                    "for memory? Lower chunk_events or workers. Started from a script without "
                    "`if __name__ == '__main__':`? Spawned workers re-run such a script: add "
                    "the guard, or pass workers=1"
                ) from error
            following = next(todo, None)
            if following is not None:
                submit(*following)
            yield start, stop, result
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextlib.contextmanager
def _progress_bar(enabled: bool, total: int, label: str, source: str) -> Iterator[Any]:
    """Yield ``advance(n)``; draws a rich progress bar on stderr when enabled."""
    if not enabled:
        yield lambda _n: None
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(
        TextColumn(f"[bold]{escape(source)}[/] {{task.description}}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
