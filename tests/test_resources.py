"""Trial slots from each node's CPUs and GPUs (no Ray: node resources are plain dicts)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from hpsearch.errors import InputError
from hpsearch.runner._resources import plan_resources
from hpsearch.spec import load_study


@pytest.fixture
def plan(synthetic_study: Callable[..., Path]) -> Callable[..., tuple[float, float, int]]:
    def make(nodes: list[dict[str, float]], remaining: int = 100, **resources: object) -> tuple:
        study = load_study(synthetic_study(resources=resources))
        result = plan_resources(study, nodes, remaining)
        return result.cpus, result.gpus, result.concurrency

    return make


def test_one_gpu_per_trial_on_one_gpu_runs_one_trial(plan: Callable[..., tuple]) -> None:
    # The review's machine: 2 CPUs, 1 GPU, gpus_per_trial 1. CPUs alone would say 2.
    assert plan([{"CPU": 2, "GPU": 1}], cpus_per_trial=1, gpus_per_trial=1) == (1, 1, 1)


def test_cpu_only_machine_counts_cores(plan: Callable[..., tuple]) -> None:
    assert plan([{"CPU": 2}], cpus_per_trial=1) == (1, 0, 2)
    assert plan([{"CPU": 2}], remaining=1, cpus_per_trial=1) == (1, 0, 1)
    assert plan([{"CPU": 16}], cpus_per_trial=3, max_concurrent=4) == (3, 0, 4)


def test_auto_packs_the_running_trials_onto_the_gpus(plan: Callable[..., tuple]) -> None:
    assert plan([{"CPU": 16, "GPU": 1}], cpus_per_trial=2) == (2, 0.125, 8)
    assert plan([{"CPU": 16, "GPU": 1}], cpus_per_trial=2, max_concurrent=2) == (2, 0.5, 2)
    assert plan([{"CPU": 16, "GPU": 2}], cpus_per_trial=2, max_concurrent=2) == (2, 1.0, 2)
    # 1/7 GPU rounded down to Ray's 1e-4 grid, so that all 7 really fit on one GPU.
    _, gpus, n = plan([{"CPU": 7, "GPU": 1}], cpus_per_trial=1)
    assert n == 7 and gpus * 7 <= 1.0 and gpus == pytest.approx(1 / 7, abs=1e-4)


def test_slots_are_counted_per_node(plan: Callable[..., tuple]) -> None:
    nodes = [{"CPU": 3, "GPU": 1}, {"CPU": 3, "GPU": 1}]
    # 6 CPUs and 2 GPUs in all, but a trial of 2 CPUs + 1 GPU fits once per node: 2, not 3.
    assert plan(nodes, cpus_per_trial=2, gpus_per_trial=1) == (2, 1, 2)
    # A CPU-only head and a GPU worker: with auto, trials go where the GPU is.
    assert plan([{"CPU": 8}, {"CPU": 4, "GPU": 1}], cpus_per_trial=1) == (1, 0.25, 4)


def test_what_no_node_can_hold_is_refused(plan: Callable[..., tuple]) -> None:
    with pytest.raises(InputError, match="largest Ray node has 4") as info:
        plan([{"CPU": 4}, {"CPU": 4}], cpus_per_trial=6)
    assert info.value.key == "resources.cpus_per_trial"
    with pytest.raises(InputError, match="fit on no Ray node") as info:
        plan([{"CPU": 2}], cpus_per_trial=1, gpus_per_trial=1)
    assert info.value.key == "resources.gpus_per_trial"
    with pytest.raises(InputError, match="fit on no Ray node"):
        plan([{"CPU": 8}, {"CPU": 1, "GPU": 1}], cpus_per_trial=2, gpus_per_trial=1)
