"""What a run ran on, from Ray's node records (no Ray needed)."""

from __future__ import annotations

from hpsearch.provenance import describe_node, package_versions, summarize

GPU_NODE = {
    "NodeManagerHostname": "gpu01",
    "Resources": {"CPU": 16.0, "GPU": 1.0, "memory": 64 * 1024**3, "accelerator_type:H100": 1.0},
}
CPU_NODE = {"NodeManagerHostname": "cpu07", "Resources": {"CPU": 2.0, "memory": 8 * 1024**3}}


def test_a_gpu_node_is_described_with_its_gpu_model() -> None:
    assert describe_node(GPU_NODE) == {
        "host": "gpu01",
        "cpus": 16.0,
        "gpus": 1.0,
        "gpu_type": "H100",
        "memory_gib": 64.0,
    }
    assert describe_node(CPU_NODE)["gpu_type"] is None


def test_the_summary_names_every_node() -> None:
    assert summarize([GPU_NODE, CPU_NODE]) == (
        "2 nodes: gpu01 16 CPUs, 1 GPU (H100), 64 GiB for Ray; cpu07 2 CPUs, 8 GiB for Ray"
    )
    assert summarize([]) == "no Ray node recorded"


def test_versions_are_the_installed_ones() -> None:
    import numpy
    import optuna

    versions = package_versions()
    assert versions["numpy"] == numpy.__version__
    assert versions["optuna"] == optuna.__version__
    assert "python" in versions
