"""Physics simulators that write the seed tasks' HDF5 files.

The seed studies' real data sets are not public, so hpsearch ships simulators whose files have
the same shapes and a comparable difficulty. Each simulator is pure numpy (no TensorFlow), is
deterministic given its master seed, and keeps every event's latent truth next to the data.
"""

from __future__ import annotations

# The seed tasks' simulators by module (their simulate_to_file would clash with xgamma's).
from hpsearch.simulate import gce, gce_baseline, ta_sd, ta_sd_fit
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
    "gce",
    "gce_baseline",
    "simulate_events",
    "simulate_to_file",
    "ta_sd",
    "ta_sd_fit",
]
