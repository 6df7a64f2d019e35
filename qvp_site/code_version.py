"""Which code a run ran, recorded beside its results so that repeating it can say whether the
code was the same.

``QVP_CODE_VERSION`` when the deployment sets it (an image built without its .git folder), else
the git commit of the checkout (with ``+dirty`` when files differ from it), else the package's
version. Asked once per process.
"""

from __future__ import annotations

import os
import subprocess
from functools import cache
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


@cache
def code_version() -> str:
    named = os.environ.get("QVP_CODE_VERSION", "").strip()
    if named:
        return named[:100]
    commit = _git("rev-parse", "HEAD")
    if commit:
        dirty = _git("status", "--porcelain", "--untracked-files=no")
        return f"{commit}+dirty" if dirty else commit
    return f"qvp {_package_version()}"


def _git(*arguments: str) -> str:
    try:
        done = subprocess.run(
            ["git", *arguments], cwd=ROOT, capture_output=True, text=True, timeout=10,
            check=False,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _package_version() -> str:
    try:
        return metadata.version("qvp")
    except metadata.PackageNotFoundError:
        return "unknown"
