"""Declarative inputs: study files and search spaces, validated at the edge."""

from __future__ import annotations

from hpsearch.spec._space import (
    CategoricalParam,
    FloatParam,
    IntParam,
    SearchSpace,
    load_space,
)
from hpsearch.spec._study import (
    DEFAULT_STORAGE,
    BudgetSpec,
    DataSpec,
    ObjectiveSpec,
    ResourcesSpec,
    SchedulerSpec,
    SearcherSpec,
    Study,
    StudySpec,
    load_study,
)

__all__ = [
    "DEFAULT_STORAGE",
    "BudgetSpec",
    "CategoricalParam",
    "DataSpec",
    "FloatParam",
    "IntParam",
    "ObjectiveSpec",
    "ResourcesSpec",
    "SchedulerSpec",
    "SearchSpace",
    "SearcherSpec",
    "Study",
    "StudySpec",
    "load_space",
    "load_study",
]
