"""Files that readers may open at any moment are written whole or not at all.

Everything is written to a temporary name in the target's folder and renamed over the target
(atomic on one file system), so a reader sees the old file, the new file, or none, never a
half-written one; a crash leaves at most a hidden temporary file, removed on failure.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path to write instead of ``path``; renamed to ``path`` if the block ends
    without an exception, removed otherwise."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_json_atomically(path: Path, payload: Mapping[str, Any]) -> Path:
    with atomic_target(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")
    return path


def free_disk_bytes(path: Path) -> int:
    """Free space of the disk holding ``path`` (or its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    return shutil.disk_usage(path).free


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; None if there is no such file or it holds no JSON object."""
    try:
        payload = json.loads(path.read_text())
    except (FileNotFoundError, json.JSONDecodeError, UnicodeDecodeError):
        return None
    return payload if isinstance(payload, dict) else None
