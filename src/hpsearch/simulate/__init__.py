"""Physics simulators that write the seed tasks' HDF5 files.

The seed studies' real data sets are not public, so hpsearch ships simulators whose files have
the same shapes and a comparable difficulty. Each simulator is pure numpy (no TensorFlow), is
deterministic given its master seed, and keeps every event's latent truth next to the data.
"""

from __future__ import annotations

from hpsearch.simulate.xgamma import (
    CLASS_NAMES,
    GENERATOR_VERSION,
    XGammaConfig,
    simulate_events,
    simulate_to_file,
)

__all__ = [
    "CLASS_NAMES",
    "GENERATOR_VERSION",
    "XGammaConfig",
    "simulate_events",
    "simulate_to_file",
]
