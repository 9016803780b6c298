"""An objective whose worker process dies: for the worker-retry tests.

The synthetic objective (``synthetic.py``: a made-up learning curve, no TensorFlow), except
that one configuration's worker kills itself with SIGKILL in epoch 2, as the OOM killer would. The
victim is the first trial to train: it writes its seed to ``<markers>/victim``, and a retry of
it has the same parameters and seed, so it is the victim again. With ``die: once`` the victim
dies on its first attempt only (``<markers>/died-<seed>`` remembers it), with ``die: always``
on every attempt. Every other trial completes.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from synthetic import METRICS
from synthetic import train as train_synthetic

from hpsearch.objective import TrialContext

__all__ = ["METRICS", "train"]


def _victim(markers: Path, seed: int) -> bool:
    """Whether this trial (by its seed) is the one whose worker dies; the first one is."""
    markers.mkdir(parents=True, exist_ok=True)
    victim = markers / "victim"
    try:
        with victim.open("x") as file:  # only one trial can create it
            file.write(str(seed))
    except FileExistsError:
        pass
    return victim.read_text().strip() == str(seed)


def train(ctx: TrialContext) -> None:
    """The synthetic objective's epochs; the victim's process is killed in epoch 2."""
    markers = Path(str(ctx.params["markers"]))
    victim = _victim(markers, ctx.seed)
    died = markers / f"died-{ctx.seed}"

    def report(metrics: Mapping[str, Any]) -> None:
        if (
            metrics["epoch"] == 2
            and victim
            and (ctx.params["die"] == "always" or not died.exists())
        ):
            died.write_text(f"trial {ctx.number}\n")
            os.kill(os.getpid(), signal.SIGKILL)
        ctx.report(metrics)

    train_synthetic(dataclasses.replace(ctx, report=report))
