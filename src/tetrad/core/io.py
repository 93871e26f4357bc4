"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a resumed run) sees either the old file or the new one, never half of one.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call `write(file_object)` on a temporary file in the target's folder, then rename it to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_jsonable) + "\n")


def write_marked_block(path: str | os.PathLike, name: str, text: str, title: str = "") -> Path:
    """Put `text` between `<!-- name -->` and `<!-- /name -->` in `path`, keeping everything else.

    Several commands can each own one generated block of a results document, beside text
    written by hand. A missing block is appended; a missing file starts with `title`.
    """
    path = Path(path)
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    old = path.read_text() if path.is_file() else (title + "\n" if title else "")
    block = f"{start}\n{text.rstrip()}\n{end}"
    if start in old and end in old:
        new = old[: old.index(start)] + block + old[old.index(end) + len(end):]
    else:
        new = (old.rstrip() + "\n\n" if old.strip() else "") + block + "\n"
    return atomic_write_text(path, new)


def _jsonable(x: Any) -> Any:
    """NumPy and torch scalars/arrays as plain JSON values."""
    if hasattr(x, "tolist"):
        return x.tolist()
    if hasattr(x, "item"):
        return x.item()
    raise TypeError(f"{type(x).__name__} is not JSON serialisable")
