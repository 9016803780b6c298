"""Model builders shared by tasks; each imports Keras only when called.

A study chooses a model family (:data:`FAMILIES`) and its parameters like any other
hyperparameter; :func:`build_model` turns a trial's decoded choice into a Keras model with the
task's :class:`Head` (:func:`families_for_rank` says which families read sequences, images or
volumes), and :func:`build_optimizer` its optimizer, learning-rate schedule and the
callbacks the schedule needs. Importing this package does not import Keras or TensorFlow.
"""

from __future__ import annotations

from hpsearch.models._base import Family, Head
from hpsearch.models._families import FAMILIES, REGULARISATION, build_model, families_for_rank
from hpsearch.models._optim import OPTIMIZERS, SCHEDULES, build_optimizer
from hpsearch.models._options import Param
from hpsearch.models.resnet1d import build_resnet1d

__all__ = [
    "FAMILIES",
    "OPTIMIZERS",
    "REGULARISATION",
    "SCHEDULES",
    "Family",
    "Head",
    "Param",
    "build_model",
    "build_optimizer",
    "build_resnet1d",
    "families_for_rank",
]
