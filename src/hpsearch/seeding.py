"""Every random number in a study derives from one master seed.

A component asks for its own stream by name (``derive_seed(master, "split")``,
``derive_seed(master, "trial", 7)``), so adding a new consumer never shifts the numbers that
existing ones see, and the same study file reproduces the same data, split and trial seeds.
"""

from __future__ import annotations

import zlib

import numpy as np


def _key(part: str | int) -> int:
    if isinstance(part, int):
        return part
    return zlib.crc32(part.encode("utf-8"))


def derive_seed(master: int, *names: str | int) -> int:
    """Return a 32-bit seed for the stream called ``names`` under ``master``.

    Args:
        master: The study's master seed.
        *names: Path of the consumer, e.g. ``("trial", 3, "keras")``.

    Returns:
        A non-negative int below 2**31, valid for numpy, TensorFlow and Optuna alike.
    """
    sequence = np.random.SeedSequence(entropy=master, spawn_key=tuple(_key(n) for n in names))
    return int(sequence.generate_state(1, dtype=np.uint32)[0] & 0x7FFFFFFF)


def derive_rng(master: int, *names: str | int) -> np.random.Generator:
    """A numpy Generator on the stream :func:`derive_seed` names."""
    return np.random.default_rng(derive_seed(master, *names))
