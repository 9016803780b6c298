"""A search space drawn as a tree for the terminal (``hpsearch validate``).

Each choice shows its options, each option its own parameters and how many points it has
where it is finite, so a user sees at a glance what a trial of each branch searches and which
parts a grid could cover.
"""

from __future__ import annotations

from collections.abc import Mapping

from rich.markup import escape
from rich.tree import Tree

from hpsearch.spec._space import (
    CategoricalParam,
    Choice,
    FloatParam,
    IntParam,
    Node,
    SearchSpace,
    _size,
)


def _points(size: int | None) -> str:
    return "continuous" if size is None else f"{size:,} point{'s' if size != 1 else ''}"


def _describe(param: FloatParam | IntParam | CategoricalParam) -> str:
    if isinstance(param, CategoricalParam):
        return f"categorical {escape(str(param.choices))}"
    scale = ", log" if param.log else ""
    step = f", step {param.step:g}" if param.step not in (None, 1) else ""
    return f"{param.type} [{param.low:g}, {param.high:g}{scale}{step}]"


def _add(branch: Tree, tree: Mapping[str, Node]) -> None:
    for key, node in tree.items():
        if isinstance(node, Choice):
            child = branch.add(f"[bold]{key}[/]  choice of {node.size()}")
            for option, body in node.options.items():
                size = _size(body)
                label = f"[cyan]{option}[/]  ({_points(size)})" if body else f"[cyan]{option}[/]"
                _add(child.add(label), body)
        elif isinstance(node, FloatParam | IntParam | CategoricalParam):
            branch.add(f"{key}  {_describe(node)}")
        elif isinstance(node, dict):
            _add(branch.add(f"[bold]{key}[/]  ({_points(_size(node))})"), node)
        else:
            branch.add(f"[dim]{key} = {escape(repr(node))}[/]")


def space_tree(space: SearchSpace) -> Tree:
    """The space as a rich Tree: groups, choices with their options, parameters, constants."""
    includes = f", includes {len(space.includes)} fragment(s)" if space.includes else ""
    root = Tree(
        f"[bold]{escape(str(space.source))}[/]: {len(space.params())} searched names, "
        f"{_points(space.size())}{includes}"
    )
    _add(root, space.tree)
    return root
