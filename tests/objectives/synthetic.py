"""A synthetic objective for runner tests: learning curves from arithmetic, no TensorFlow.

The curve of trial ``n`` rises to ``quality``, with quality falling as ``n`` grows, so with one
trial at a time ASHA's decisions are known in advance. The trial whose number is the constant
``fail_on`` raise, to exercise FAIL.
"""

from __future__ import annotations

import time

from hpsearch.objective import TrialContext

METRICS = ("val_accuracy", "val_loss", "train_seconds", "test_accuracy", "n_params")


def train(ctx: TrialContext) -> None:
    """Report ``ctx.epochs`` epochs of a made-up learning curve."""
    if ctx.number == ctx.params.get("fail_on"):
        raise ValueError(f"synthetic failure of trial {ctx.number}")
    quality = 0.9 - 0.05 * ctx.number + 0.001 * float(ctx.params["x"])
    seconds = 0.0
    for epoch in range(1, ctx.epochs + 1):
        time.sleep(float(ctx.params.get("sleep", 0.05)))
        seconds += 0.5 + 0.1 * float(ctx.params["x"])
        metrics = {
            "epoch": epoch,
            "val_accuracy": quality * epoch / ctx.epochs,
            "val_loss": 1.0 - quality * epoch / ctx.epochs,
            "train_seconds": seconds,
        }
        if epoch == ctx.epochs:
            metrics.update(test_accuracy=quality - 0.01, n_params=100, complete=True)
        ctx.report(metrics)
