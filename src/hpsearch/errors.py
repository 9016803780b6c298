"""The exception hierarchy: one root, and one class for everything a user can fix.

The CLI turns an :class:`InputError` into a message on stderr and exit code 2 *before* anything
is run or stored, so every check of user input raises it with the file, the key and the fix.
"""

from __future__ import annotations

from pathlib import Path


class HpsearchError(Exception):
    """Root of every error hpsearch raises on purpose."""


class InputError(HpsearchError):
    """Bad user input: a study or space file, a ``--set`` override, a data file.

    Args:
        source: The file (or command-line option) the bad value came from.
        key: The dotted key (or dataset name) inside that source.
        problem: What is wrong, with the value that was given.
        fix: What the user should do about it.
    """

    exit_code = 2

    def __init__(self, source: str | Path, key: str, problem: str, fix: str) -> None:
        self.source = str(source)
        self.key = key
        self.problem = problem
        self.fix = fix
        where = f"{self.source}: {key}" if key else self.source
        super().__init__(f"{where}: {problem}\n  fix: {fix}")


class DataError(InputError):
    """A data file that is missing, has the wrong layout, or holds non-finite values."""
