"""A test objective for any space: made-up curves, and the parameters it received reported back.

``seen`` (the JSON of ``ctx.params``) lets a test compare what the worker got with what storage
holds, whichever searcher proposed the trial and however conditional the space is.
"""

from __future__ import annotations

import json
import zlib

from hpsearch.objective import TrialContext

METRICS = ("val_accuracy", "val_loss", "train_seconds", "seen")


def train(ctx: TrialContext) -> None:
    """Report ``ctx.epochs`` epochs of a curve that depends on the parameters."""
    seen = json.dumps(ctx.params, sort_keys=True)
    final = 0.5 + 0.4 * (zlib.crc32(seen.encode()) % 1000) / 1000
    for epoch in range(1, ctx.epochs + 1):
        ctx.report(
            {
                "epoch": epoch,
                "val_accuracy": final * epoch / ctx.epochs,
                "val_loss": 1.0 - final * epoch / ctx.epochs,
                "train_seconds": 0.1 * epoch,
                "seen": seen,
                "complete": epoch == ctx.epochs,
            }
        )
