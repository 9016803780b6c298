"""Running on a Ray cluster (``--address``): the code travels with the job, the data is checked.

On one machine every Ray worker imports hpsearch and the objective from the driver's own
files. The nodes of a cluster need not share a disk with the driver, so a driver that joins a
cluster sends its code through Ray's runtime environment instead (``ray.init(runtime_env=)``):

* the hpsearch package, as a ``py_modules`` entry, so that every node runs the driver's
  version of it (ahead of any installed copy), not whatever its own checkout holds;
* the objective file, staged into a folder of its own whose name carries the content's hash,
  or the objective's whole folder when it imports modules beside it (``import helpers``).
  Staging decides what is sent: caches, virtual environments, data and results folders and
  data files stay behind, and a folder over :data:`MAX_OBJECTIVE_BYTES` is refused before
  anything is sent (Ray's package store caps one package at a few hundred MiB, and a large
  upload delays every worker's start).

The search space is not sent: the driver samples parameters and sends them with each trial.
The Python environment (hpsearch's dependencies, TensorFlow) must be installed alike on every
node; a runtime environment that installs packages would need a network the nodes may lack.

Data is not sent either (it is large and read where the trials run): every node that can run
a trial must see the study's files at the driver's paths. :func:`check_data_on_nodes` asks
each of them, with a tiny task pinned to the node, before the first trial is asked, so that a
node without the data ends the run with one clear message rather than failing its trials one
by one. Local Ray needs none of this: its workers share the driver's disk, and the driver has
already checked the data.

Ray is imported inside functions: the worker imports this module to find the shipped
objective.
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import importlib.util
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch.errors import InputError
from hpsearch.objective import TrialFailed, is_module_name

#: Prefix of the folder a shipped objective travels in; the rest of its name is a content hash.
SHIPPED_PREFIX = "hpsearch_objective_"
#: Most bytes of an objective's folder hpsearch sends to a cluster (Ray warns at 10 MiB per
#: file and refuses packages of about 500 MiB; every node unpacks the package at its start).
MAX_OBJECTIVE_BYTES = 100 * 2**20
#: Ray's ``excludes`` for every shipped folder: byte code is rebuilt on the node.
PACKAGE_EXCLUDES = ("__pycache__/", "*.pyc", "*.pyo")
#: Folders an objective's folder may hold that are never code the objective imports.
_SKIP_DIRS = frozenset(
    {
        ".git",
        ".hg",
        ".svn",
        ".venv",
        "venv",
        ".tox",
        ".nox",
        "__pycache__",
        ".mypy_cache",
        ".ruff_cache",
        ".pytest_cache",
        ".ipynb_checkpoints",
        ".hypothesis",
        "node_modules",
        "data",
        "results",
        "build",
        "dist",
        "mlruns",
        "wandb",
    }
)
#: Files that are data, models or archives, not code: large, and read where the data lives.
_SKIP_SUFFIXES = frozenset(
    {
        ".h5",
        ".hdf5",
        ".hdf",
        ".he5",
        ".nc",
        ".npy",
        ".npz",
        ".db",
        ".sqlite",
        ".sqlite3",
        ".keras",
        ".ckpt",
        ".pt",
        ".pth",
        ".onnx",
        ".parquet",
        ".feather",
        ".zip",
        ".tar",
        ".gz",
        ".bz2",
        ".xz",
        ".pyc",
        ".pyo",
    }
)


@dataclass(frozen=True)
class Shipment:
    """What a driver joining a cluster sends with its job.

    Attributes:
        runtime_env: Ray's runtime environment for ``ray.init``: ``py_modules`` and
            ``excludes``.
        objective: Where the objective is on a node, ``FOLDER/FILE.py`` with ``FOLDER`` an
            importable name there (see :func:`locate_objective`); None for an objective named
            as a module (``hpsearch.tasks.generic``), which travels inside hpsearch.
    """

    runtime_env: dict[str, Any]
    objective: str | None


def package_dir() -> Path:
    """The folder of the hpsearch package this driver runs."""
    import hpsearch

    return Path(hpsearch.__file__).resolve().parent


@contextlib.contextmanager
def shipment(objective_ref: str, *, source: str | Path) -> Iterator[Shipment]:
    """Stage the code a cluster's workers need, for ``ray.init(runtime_env=...)``.

    Ray zips and uploads ``py_modules`` folders inside ``ray.init``; the staged copy is
    deleted when the context ends, so ``ray.init`` must be called inside it.

    Args:
        objective_ref: The study's objective: a module name, or an objective file's path.
        source: The study file, for error messages.

    Raises:
        InputError: The objective's folder is too large to send.
    """
    with tempfile.TemporaryDirectory(prefix="hpsearch-ship-") as scratch:
        modules = [str(package_dir())]
        shipped: str | None = None
        if not is_module_name(objective_ref):
            folder, name, _ = stage_objective(Path(objective_ref), Path(scratch), source=source)
            modules.append(str(folder))
            shipped = f"{folder.name}/{name}"
        yield Shipment({"py_modules": modules, "excludes": list(PACKAGE_EXCLUDES)}, shipped)


def sibling_imports(file: Path) -> list[str]:
    """Modules ``file`` imports that live beside it (``helpers.py`` or a ``helpers/`` folder).

    Such an objective needs its folder on the nodes, not only its file. Relative imports are
    not counted: an objective file is loaded as a top-level module, where they cannot work.
    """
    tree = ast.parse(file.read_text(encoding="utf-8"), filename=str(file))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    folder = file.parent
    return sorted(
        name
        for name in names
        if name != file.stem and ((folder / f"{name}.py").is_file() or (folder / name).is_dir())
    )


def _wanted(folder: Path) -> Iterator[Path]:
    """The files of ``folder`` worth sending, skipping data, caches and environments."""
    for root, dirs, names in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.endswith(".egg-info"))
        for name in sorted(names):
            path = Path(root) / name
            if path.suffix.lower() not in _SKIP_SUFFIXES and path.is_file():
                yield path


def stage_objective(
    file: Path, scratch: Path, *, source: str | Path
) -> tuple[Path, str, tuple[str, ...]]:
    """Copy the objective (its file, or its folder if it imports siblings) into ``scratch``.

    The copy's folder is named after a hash of what it holds, so that on a node it is an
    importable name no installed package has, and a changed objective is a new package.

    Returns:
        The staged folder, the objective's file name inside it, and every staged file
        (relative paths).

    Raises:
        InputError: The folder to send holds more than :data:`MAX_OBJECTIVE_BYTES`.
    """
    file = file.resolve()
    if sibling_imports(file):
        chosen: list[Path] = []
        total = 0
        for path in _wanted(file.parent):
            chosen.append(path)
            total += path.stat().st_size
            if total > MAX_OBJECTIVE_BYTES:
                raise InputError(
                    source,
                    "objective_file",
                    f"the objective imports modules beside it, so its folder {file.parent} "
                    f"is sent to every Ray node, but it holds over "
                    f"{MAX_OBJECTIVE_BYTES // 2**20} MiB of files",
                    "move the objective and the modules it imports into a folder of their own "
                    "(data files, caches and `data/`, `results/`, `.venv/` folders are left "
                    "out already)",
                )
        relative = [path.relative_to(file.parent) for path in chosen]
    else:
        relative = [Path(file.name)]
    digest = hashlib.sha256()
    for rel in relative:
        digest.update(str(rel).encode() + b"\0" + (file.parent / rel).read_bytes() + b"\0")
    folder = scratch / f"{SHIPPED_PREFIX}{digest.hexdigest()[:16]}"
    for rel in relative:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(file.parent / rel, folder / rel)
    return folder, file.name, tuple(str(rel) for rel in relative)


def locate_objective(shipped: str) -> Path:
    """The shipped objective's file on this node (see :attr:`Shipment.objective`).

    Ray unpacks each ``py_modules`` folder on the node and puts it on the worker's path, so
    the staged folder is found by its (unique) name. The folder also goes on ``sys.path`` (at
    its end: an installed module of the same name still wins, as on the driver), so that the
    objective imports the modules beside it.

    Raises:
        TrialFailed: The worker has no such folder (the job's runtime environment is missing).
    """
    name, _, file = shipped.partition("/")
    spec = importlib.util.find_spec(name)
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    if not locations:
        raise TrialFailed(
            f"the objective sent with the job ({shipped}) is not on this worker's path; was "
            "the Ray job started without hpsearch's runtime environment?"
        )
    folder = Path(locations[0])
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
    return folder / file


def data_problems(expected: Mapping[str, int]) -> list[str]:
    """What is wrong with the data files here, compared with the driver's copies.

    Runs on a node (see :func:`check_data_on_nodes`) and reads only a file's first bytes.

    Args:
        expected: Each data file's absolute path and its size on the driver.

    Returns:
        One line per file that is missing, unreadable, of another size, or not HDF5.
    """
    import h5py

    problems = []
    for name, size in expected.items():
        path = Path(name)
        if not path.exists():
            problems.append(f"{name} is missing")
        elif not path.is_file():
            problems.append(f"{name} is not a file")
        else:
            try:
                with path.open("rb") as handle:
                    handle.read(8)
                here = path.stat().st_size
            except OSError as exc:
                problems.append(f"{name} cannot be read ({exc.strerror or exc})")
                continue
            if here != size:
                problems.append(
                    f"{name} has {here} bytes, the driver's copy {size} (another or a partial copy)"
                )
            elif not h5py.is_hdf5(name):
                problems.append(f"{name} is not an HDF5 file")
    return problems


def node_label(node: Mapping[str, Any]) -> str:
    """A node as a person finds it: host name, address and the start of its Ray node id."""
    host = node.get("NodeManagerHostname") or "?"
    return f"{host} ({node.get('NodeManagerAddress', '?')}, node {str(node['NodeID'])[:12]})"


def check_data_on_nodes(
    files: Sequence[Path],
    nodes: Sequence[Mapping[str, Any]],
    *,
    source: str | Path,
    timeout: float = 120.0,
) -> None:
    """Check on each node that can run a trial that it reads the study's data at its path.

    One task per node, pinned to it (node affinity, not soft) and needing no CPU, so that it
    runs even while other jobs fill the node. The first task on a node also sets up the job's
    runtime environment there, which the trials then find ready.

    Args:
        files: The study's data files, as the driver opened them.
        nodes: The nodes to check, as ``ray.nodes()`` describes them.
        source: The study file, for the error message.
        timeout: Seconds to wait for every node's answer.

    Raises:
        InputError: A node lacks a file, cannot read it, or did not answer.
    """
    import ray
    from ray.exceptions import GetTimeoutError, RayError
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    expected = {str(path): path.stat().st_size for path in files}
    probe = ray.remote(num_cpus=0, max_retries=0)(data_problems)
    pending = [
        (
            node,
            probe.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(str(node["NodeID"]), soft=False)
            ).remote(expected),
        )
        for node in nodes
    ]
    deadline = time.monotonic() + timeout
    problems: list[str] = []
    for node, ref in pending:
        where = node_label(node)
        try:
            found = ray.get(ref, timeout=max(0.1, deadline - time.monotonic()))
        except GetTimeoutError:
            ray.cancel(ref, force=True)
            problems.append(f"{where}: no answer within {timeout:g} s")
        except RayError as exc:
            text = str(exc).strip().splitlines()
            problems.append(f"{where}: the check could not run ({text[-1] if text else exc})")
        else:
            problems.extend(f"{where}: {line}" for line in found)
    if problems:
        raise InputError(
            source,
            "data.path",
            f"the data is not readable on every Ray node that runs trials ({len(nodes)} "
            "checked): " + "; ".join(problems),
            "put the data at the same path on every node (copy it there, or keep it on a "
            "filesystem all nodes mount), with the same Python environment on every node",
        )
