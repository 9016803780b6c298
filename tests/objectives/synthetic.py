"""A synthetic objective for runner tests: learning curves from arithmetic, no TensorFlow.

The curve of trial ``n`` rises to ``quality = 0.9 - 0.1 n + 0.04 x``: the trial number
dominates, so with one trial at a time ASHA's decisions are known in advance, while ``x`` moves
every value by up to 0.04 (and ``train_seconds`` by a factor of two), far above any rounding,
so a stored value computed from other parameters than the stored ones shows. Each report also
carries what the worker saw (``seen_x``, ``seen_seed``) and wall-clock times taken inside the
trial (``trained_from``, ``trained_to``), so tests check storage against the worker and
measure real overlap of training. The trial whose number is the constant ``fail_on`` raises.
"""

from __future__ import annotations

import time

from hpsearch.objective import TrialContext

METRICS = (
    "val_accuracy",
    "val_loss",
    "train_seconds",
    "test_accuracy",
    "n_params",
    "seen_x",
    "seen_seed",
    "trained_from",
    "trained_to",
)


def quality(number: int, x: float) -> float:
    """The final validation accuracy of trial ``number`` with parameter ``x``."""
    return 0.9 - 0.1 * number + 0.04 * x


def train(ctx: TrialContext) -> None:
    """Report ``ctx.epochs`` epochs of a made-up learning curve."""
    if ctx.number == ctx.params.get("fail_on"):
        raise ValueError(f"synthetic failure of trial {ctx.number}")
    x = float(ctx.params["x"])
    final = quality(ctx.number, x)
    seconds = 0.0
    started = time.time()
    for epoch in range(1, ctx.epochs + 1):
        time.sleep(float(ctx.params.get("sleep", 0.05)))
        seconds += 0.5 + 0.5 * x
        metrics = {
            "epoch": epoch,
            "val_accuracy": final * epoch / ctx.epochs,
            "val_loss": 1.0 - final * epoch / ctx.epochs,
            "train_seconds": seconds,
            "seen_x": x,
            "seen_seed": ctx.seed,
            "trained_from": started,
            "trained_to": time.time(),
        }
        if epoch == ctx.epochs:
            metrics.update(test_accuracy=final - 0.01, n_params=100, complete=True)
            if ctx.save_model is not None:  # keep_models: a stand-in for the trained model
                ctx.save_model.write_text(f"model of trial {ctx.number}\n")
        ctx.report(metrics)
