"""What a run ran on: the machines of its Ray cluster and the versions of the packages.

A Pareto front of accuracy against training time means little without the hardware the times
were taken on, and a result is reproduced only with the same library versions. The driver
records both on the study each time a run starts (:meth:`hpsearch.recorder.Recorder.note_run`);
the report shows them. Pure functions of Ray's node records, so they are tested without Ray.
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Mapping
from typing import Any

#: Packages whose versions decide what a trial computes (and hpsearch's own).
PACKAGES = (
    "hpsearch",
    "optuna",
    "ray",
    "tensorflow",
    "keras",
    "numpy",
    "h5py",
    "hyperopt",
    "plotly",
    "optuna-dashboard",
)

_GIB = 1024**3


def package_versions() -> dict[str, str]:
    """Installed versions of :data:`PACKAGES` (and Python), as this process sees them."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            continue
    return found


def describe_node(node: Mapping[str, Any]) -> dict[str, Any]:
    """One Ray node (an entry of ``ray.nodes()``) as host, CPUs, GPUs (and model), memory."""
    resources: Mapping[str, float] = node.get("Resources", {})
    accelerators = sorted(
        key.removeprefix("accelerator_type:")
        for key in resources
        if key.startswith("accelerator_type:")
    )
    return {
        "host": node.get("NodeManagerHostname") or node.get("NodeManagerAddress") or "?",
        "cpus": resources.get("CPU", 0.0),
        "gpus": resources.get("GPU", 0.0),
        "gpu_type": ", ".join(accelerators) or None,
        "memory_gib": round(resources.get("memory", 0.0) / _GIB, 1),
    }


def summarize(nodes: Iterable[Mapping[str, Any]]) -> str:
    """One line for the report: e.g. ``1 node: gpu01 16 CPUs, 1 GPU (H100), 120.3 GiB``."""
    parts = []
    described = [describe_node(node) for node in nodes]
    for node in described:
        text = f"{node['host']} {node['cpus']:g} CPUs"
        if node["gpus"]:
            text += f", {node['gpus']:g} GPU" + (
                f" ({node['gpu_type']})" if node["gpu_type"] else ""
            )
        text += f", {node['memory_gib']:g} GiB for Ray"
        parts.append(text)
    count = f"{len(described)} node{'s' if len(described) != 1 else ''}"
    return f"{count}: " + "; ".join(parts) if parts else "no Ray node recorded"
