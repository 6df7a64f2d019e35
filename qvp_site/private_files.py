"""Small private files (keys, passwords) written once, whole, and read back strictly.

Processes that start at once (test workers, six commands after a reboot) each try to write
the file; one wins and all read its value, never a half-written or empty file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path


def write_once(path: Path, value: str) -> None:
    """Write ``path`` (0600) unless it exists: processes starting at once (test workers) all
    read the one value that won, never a half-written file."""
    draft = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    descriptor = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as out:
            out.write(value + "\n")
            out.flush()
            os.fsync(out.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)


def read_private(path: Path) -> str:
    with path.open() as file:
        if os.fstat(file.fileno()).st_mode & 0o077:
            os.fchmod(file.fileno(), 0o600)
        value = file.read().strip()
    if not value:
        raise RuntimeError(f"{path} is empty: restore it from a backup (what it held is in use)")
    return value
