"""hpsearch: hyperparameter and architecture search for astroparticle-physics deep learning.

Importing this package stays cheap on purpose: TensorFlow and Ray are imported only inside the
functions that train or schedule trials, so the CLI, the spec validator and the report start in
well under a second.
"""

from __future__ import annotations

from hpsearch._version import __version__
from hpsearch.errors import DataError, HpsearchError, InputError

__all__ = ["DataError", "HpsearchError", "InputError", "__version__"]
