"""Ends the Ray processes of a driver that was killed (``kill -9``, the OOM killer).

Ray ends its GCS, raylet and workers when the driver that started them dies, but its
dashboard and runtime-env agents outlive it (seen on Ray 2.60: both still alive minutes after
the driver got SIGKILL, trying to report the raylet's death to a GCS that is gone). A killed
driver can clean nothing up, so a small watcher, started beside local Ray, notes the driver's
descendants every second and ends those still alive once the driver is gone. Linux only (it
reads ``/proc``); elsewhere it is not started.

Run as ``python -m hpsearch.runner._reaper PID``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

_PROC = Path("/proc")


def _stat(pid: int) -> tuple[int, str] | None:
    """A process's parent and start time (which tells a reused pid apart), or None."""
    try:
        text = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), fields[19]


def descendants(root: int) -> dict[int, str]:
    """Every live descendant of ``root``, with its start time."""
    children: dict[int, list[int]] = {}
    started: dict[int, str] = {}
    for entry in _PROC.iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(int(entry.name))
        if stat is not None:
            children.setdefault(stat[0], []).append(int(entry.name))
            started[int(entry.name)] = stat[1]
    found: dict[int, str] = {}
    todo = list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if pid in found or pid not in started:
            continue
        found[pid] = started[pid]
        todo.extend(children.get(pid, []))
    return found


def watch(driver: int, interval: float = 1.0) -> None:
    """Until ``driver`` is gone, note its descendants; then end those still alive."""
    known: dict[int, str] = {}
    while _stat(driver) is not None:
        known.update(descendants(driver))
        known.pop(os.getpid(), None)  # the watcher is a child of the driver too
        time.sleep(interval)
    for pid, started in known.items():
        stat = _stat(pid)
        if stat is not None and stat[1] == started:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)


_started = False


def start() -> None:
    """Start the watcher for this process, once (no-op without ``/proc``)."""
    global _started
    if _started or not (_PROC / "self" / "stat").exists():
        return
    _started = True
    subprocess.Popen(
        [sys.executable, "-m", "hpsearch.runner._reaper", str(os.getpid())],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # a Ctrl-C to the driver's terminal must not end it first
        close_fds=True,
    )


if __name__ == "__main__":
    watch(int(sys.argv[1]))
