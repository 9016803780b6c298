"""What happens to a study's results after the search: read, exported, retrained, listed.

* :mod:`hpsearch.results.storage`: open a storage and a study **without creating anything**
  (a mistyped URL must not leave an empty database behind), and mask passwords in URLs.
* :mod:`hpsearch.results.export`: pick a trial (by number, a ``--best`` rule or the Pareto set)
  and write it as a retraining config.
* :mod:`hpsearch.results.retrain`: train a config's model again, outside Ray, and save it.

Importing this package imports neither Optuna's storage nor TensorFlow; each module imports
what it needs when called.
"""

from __future__ import annotations
