"""A synthetic objective that reports where it ran: for the cluster and GPU-packing tests.

Like ``synthetic.py`` (a made-up learning curve, no TensorFlow, ``sleep`` seconds per epoch),
and each report also says what the trial's own code saw: the file it was imported from
(``objective_file``), the hpsearch package it imported (``hpsearch_file``), the GPUs its
process may use (``seen_cuda``, Ray's ``CUDA_VISIBLE_DEVICES``), and when it trained
(``trained_from``, ``trained_to``, by the worker's clock).
"""

from __future__ import annotations

import os
import time

import hpsearch
from hpsearch.objective import TrialContext

METRICS = (
    "val_accuracy",
    "val_loss",
    "train_seconds",
    "objective_file",
    "hpsearch_file",
    "seen_cuda",
    "trained_from",
    "trained_to",
)


def train(ctx: TrialContext) -> None:
    """Report ``ctx.epochs`` epochs of a made-up learning curve and where they ran."""
    x = float(ctx.params["x"])
    final = 0.5 + 0.4 * x
    started = time.time()
    for epoch in range(1, ctx.epochs + 1):
        time.sleep(float(ctx.params.get("sleep", 0.05)))
        metrics = {
            "epoch": epoch,
            "val_accuracy": final * epoch / ctx.epochs,
            "val_loss": 1.0 - final * epoch / ctx.epochs,
            "train_seconds": 0.1 * epoch,
            "objective_file": __file__,
            "hpsearch_file": hpsearch.__file__,
            "seen_cuda": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
            "trained_from": started,
            "trained_to": time.time(),
        }
        if epoch == ctx.epochs:
            metrics["complete"] = True
        ctx.report(metrics)
