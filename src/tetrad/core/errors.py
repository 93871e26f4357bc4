"""The one exception type for mistakes a user can make.

A `UserError` reaching the command line prints one line and exits with status 2;
any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import os
import sys


class UserError(Exception):
    """Bad input a user can fix: a config key, a missing or corrupt file, empty data."""


def warn(message: str) -> None:
    """One line on stderr for what a user should know but that does not stop the run."""
    print(f"tetrad: warning: {message}", file=sys.stderr, flush=True)


def require_file(path: str | os.PathLike, what: str = "file") -> str:
    """Return `path` as a string, or raise `UserError` naming it if it is not a file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}")
    return path
