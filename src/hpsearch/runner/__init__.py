"""Running a study on Ray Tune. Ray is imported only when a study actually runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hpsearch.runner._driver import RunSummary


def run_study(*args: Any, **kwargs: Any) -> RunSummary:
    """Run a study; see :func:`hpsearch.runner._driver.run_study`."""
    from hpsearch.runner._driver import run_study as _run

    return _run(*args, **kwargs)


__all__ = ["run_study"]
