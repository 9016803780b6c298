"""The search-efficiency benchmark's strategies: each loads, and its label says what it runs.

The benchmark's tables name each strategy by its label alone, and a replay of all of them takes
minutes; a label that drifted from the study it loads (a default changed in the study file, a
typo in an override) would put a wrong name on measured figures without any run failing.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from hpsearch.spec import load_study

ROOT = Path(__file__).resolve().parents[1]

SEARCHER_WORDS = {
    "random": "random",
    "optuna-tpe": "tpe",
    "optuna-nsga2": "nsga-ii",
    "hyperopt-tpe": "hyperopt tpe",
}
SCHEDULER_WORDS = {
    "fifo": "no early stopping",
    "optuna-median": "medianpruner",
    "asha": "asha",
    "moasha": "moasha",
    "hyperband": "hyperband",
}


def _benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "search_efficiency", ROOT / "benchmarks" / "search_efficiency.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module


BENCHMARK = _benchmark()


@pytest.mark.parametrize("strategy", BENCHMARK.STRATEGIES, ids=lambda s: s.key)
def test_a_strategy_loads_the_searcher_and_scheduler_its_label_names(strategy: Any) -> None:
    spec = load_study(BENCHMARK.STUDY, list(strategy.overrides)).spec
    label = strategy.label.lower()
    searcher, scheduler = spec.searcher, spec.scheduler
    assert SEARCHER_WORDS[searcher.type] in label
    assert SCHEDULER_WORDS[scheduler.type] in label
    if "startup trials" in label:
        assert f"{searcher.n_startup_trials} startup trials" in label
    if "population" in label:
        assert f"population {searcher.population_size}" in label
    if scheduler.type in {"asha", "moasha", "hyperband"}:
        assert f"grace {scheduler.grace_period}" in label
        assert f"factor {scheduler.reduction_factor:g}" in label
    if scheduler.type == "hyperband":
        assert f"{scheduler.brackets} brackets" in label
    metrics = [objective.metric for objective in spec.objectives]
    if "multi-objective" in label or scheduler.type == "moasha":
        assert len(metrics) > 1
    if "val_accuracy" in label:
        assert metrics == ["val_accuracy"]


def test_the_keys_are_distinct_and_the_default_is_not_a_candidate() -> None:
    keys = [s.key for s in BENCHMARK.STRATEGIES]
    assert len(keys) == len(set(keys))
    shipped = next(s for s in BENCHMARK.STRATEGIES if s.key == "hpsearch")
    assert shipped.overrides == () and not shipped.candidate


def test_the_figure_and_traces_are_named_after_the_page(tmp_path: Path) -> None:
    # An exploratory run (`--out /tmp/x.md`) once overwrote the figure of docs/ and the traces
    # `make bench` saved, and its page linked a figure that was not beside it.
    args = BENCHMARK.parse_args(["--out", str(tmp_path / "try.md")])
    assert args.figure == tmp_path / "figures" / "try.png"
    assert args.traces == Path("results/bench/try_traces.json")
    shipped = BENCHMARK.parse_args([])
    assert shipped.figure == ROOT / "docs" / "figures" / "search_efficiency.png"
    assert shipped.traces == Path("results/bench/search_efficiency_traces.json")
    chosen = BENCHMARK.parse_args(["--out", str(tmp_path / "a.md"), "--figure", "b.png"])
    assert chosen.figure == Path("b.png")
