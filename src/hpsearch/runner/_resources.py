"""How many trials can run at once, from what each node of the Ray cluster has.

A trial must fit on one node: two half-CPU-counts on two machines do not make one trial's
cores, and a GPU on the head does not serve a trial on a worker. So the trial slots are counted
per node, for CPUs *and* GPUs, and the run never asks for more trials than there are slots:
Tune would otherwise hold the extra trials PENDING while the searcher proposed them blind and
Optuna timed them from their ask (the GPU machine where four trials were asked at once and ran
one after another). Pure arithmetic on node resource dicts, so it is tested without Ray.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from hpsearch.errors import InputError
from hpsearch.spec import Study

#: Ray accounts resources in units of 1e-4; a share is rounded down to that grid so that
#: ``k`` trials of ``1/k`` GPU each really fit on one GPU (1/7 rounded to nearest would not).
_RAY_UNIT = 1e-4
_EPS = 1e-9


@dataclass(frozen=True)
class ResourcePlan:
    """What each trial gets and how many run side by side.

    Attributes:
        cpus: CPU cores per trial.
        gpus: GPU share per trial (0: CPU only).
        slots: Trials the cluster can hold at once, node by node.
        concurrency: Trials this run keeps going at once (slots, capped by the study and by
            the trials left).
    """

    cpus: float
    gpus: float
    slots: int
    concurrency: int


def _share(value: float) -> float:
    return math.floor(value / _RAY_UNIT + _EPS) * _RAY_UNIT


def _fits(capacity: float, need: float) -> int:
    return math.floor(capacity / need + _EPS)


def plan_resources(
    study: Study, nodes: Sequence[Mapping[str, float]], remaining: int
) -> ResourcePlan:
    """Size each trial and the run's concurrency to the nodes' CPUs and GPUs.

    With ``gpus_per_trial: auto`` on a cluster with GPUs, trials run on the GPU nodes only and
    share each node's GPUs in equal fractions (TensorFlow grows its memory on demand); without
    GPUs they run on CPUs.

    Args:
        study: The study (its ``resources`` section, and its file for error messages).
        nodes: Resources of each alive node, e.g. ``{"CPU": 16.0, "GPU": 1.0}``.
        remaining: Trials the budget still allows.

    Raises:
        InputError: No node can hold one trial (Tune would wait for it forever).
    """
    spec = study.spec.resources
    cpus = spec.cpus_per_trial
    cpu_slots = [_fits(node.get("CPU", 0.0), cpus) for node in nodes]
    gpu_nodes = [i for i, node in enumerate(nodes) if node.get("GPU", 0.0) > 0]
    most_cpus = max((node.get("CPU", 0.0) for node in nodes), default=0.0)
    if max(cpu_slots, default=0) == 0:
        raise InputError(
            study.source,
            "resources.cpus_per_trial",
            f"{cpus:g} CPUs per trial, but the largest Ray node has {most_cpus:g}",
            f"give at most {most_cpus:g} (a trial runs on one node)",
        )
    cap = min(remaining, spec.max_concurrent or remaining)

    if spec.gpus_per_trial == "auto":
        usable = [i for i in gpu_nodes if cpu_slots[i] > 0]
        if not usable:
            gpus = 0.0
        else:
            # Equal shares, as large as the trials this run keeps going allow (at most 1 each).
            gpus = min(
                _share(min(1.0, nodes[i]["GPU"] / max(1, min(cpu_slots[i], cap)))) for i in usable
            )
    else:
        gpus = float(spec.gpus_per_trial)

    if gpus > 0:
        slots = sum(min(cpu_slots[i], _fits(nodes[i].get("GPU", 0.0), gpus)) for i in gpu_nodes)
    else:
        slots = sum(cpu_slots)
    if slots == 0:
        most_gpus = max((node.get("GPU", 0.0) for node in nodes), default=0.0)
        raise InputError(
            study.source,
            "resources.gpus_per_trial",
            f"{gpus:g} GPUs and {cpus:g} CPUs per trial fit on no Ray node (most GPUs on one "
            f"node: {most_gpus:g})",
            "use `auto` (GPUs where there are any), or per-trial GPUs and CPUs that one node has",
        )
    return ResourcePlan(cpus=cpus, gpus=gpus, slots=slots, concurrency=max(1, min(slots, cap)))
