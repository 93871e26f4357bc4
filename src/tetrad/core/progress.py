"""Progress bars on a terminal; silent in CI, when output is not a TTY, and on ranks > 0."""

from __future__ import annotations

import os
import sys
from typing import Iterable, TypeVar

from tqdm.auto import tqdm

from tetrad.core.distributed import is_main

T = TypeVar("T")


def progress_enabled() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI") and is_main()


def progress(iterable: Iterable[T] | None = None, *, total: int | None = None, desc: str | None = None,
             **kwargs) -> tqdm:
    """`tqdm` that shows only where a person is watching."""
    return tqdm(iterable, total=total, desc=desc, disable=not progress_enabled(), dynamic_ncols=True, **kwargs)
