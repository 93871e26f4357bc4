"""Atomic file writes: write beside the target, fsync, then rename over it.

A reader (or a resumed run) sees either the old file or the new one, never half of one. A write
the operating system refuses (missing or read-only folder, full disk, name too long) is a
`UserError` naming the path; the old file is kept, so a run resumes once the cause is fixed.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Callable

from tetrad.core.errors import UserError


TEMPORARY_SUFFIX = ".tmp"


def atomic_write(path: str | os.PathLike, write: Callable[[Any], None], mode: str = "wb") -> Path:
    """Call `write(file_object)` on a temporary file in the target's folder, then rename it to `path`."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX)
    except OSError as e:
        raise UserError(f"cannot write {path}: {e.strerror or e}") from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise UserError(f"cannot write {path}: {e.strerror or e}") from None
        raise
    return path


def remove_stale_temporaries(folder: str | os.PathLike) -> None:
    """Delete the temporaries of atomic writes whose process was killed mid-write (call it only
    where no other process is writing, e.g. under a run's lock)."""
    folder = Path(folder)
    if folder.is_dir():
        for tmp in folder.glob(f".*{TEMPORARY_SUFFIX}"):
            tmp.unlink(missing_ok=True)


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
