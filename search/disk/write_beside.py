"""A file replaced whole, its temporary file outside the folder Tune uploads in the background."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable
from pathlib import Path


def write_beside(path: Path, write: Callable[[Path], None]) -> None:
    """``write(tmp)``, then ``tmp`` replaces ``path``: the temporary file in the folder above ``path``'s (the same
    file system, and not in a folder Tune uploads: an upload running while it is renamed would fail)."""
    tmp = path.parent.resolve().parent / f".{uuid.uuid4()}-{path.name}"
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
