"""Declarative inputs: study files and search spaces, validated at the edge."""

from __future__ import annotations

from hpsearch.spec._space import (
    OPTION_KEY,
    CategoricalParam,
    Choice,
    FloatParam,
    IntParam,
    Param,
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
    load_enqueue,
    load_study,
)

__all__ = [
    "DEFAULT_STORAGE",
    "OPTION_KEY",
    "BudgetSpec",
    "CategoricalParam",
    "Choice",
    "DataSpec",
    "FloatParam",
    "IntParam",
    "ObjectiveSpec",
    "Param",
    "ResourcesSpec",
    "SchedulerSpec",
    "SearchSpace",
    "SearcherSpec",
    "Study",
    "StudySpec",
    "load_enqueue",
    "load_space",
    "load_study",
]
