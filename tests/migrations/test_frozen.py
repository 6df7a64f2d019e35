"""Released migrations never change: neither their files nor the SQL files they read, and they
read nothing of the project that could change under them.

``released.sha256`` (the format of ``sha256sum``, so ``sha256sum -c`` checks it too) holds the
digest of every released migration and versioned SQL file. Releasing a migration adds its lines;
changing a released one is refused here: write a new migration (and a new SQL version) instead.
"""

from __future__ import annotations

import ast
import hashlib
from pathlib import Path

import pytest

from qvp_site.db import sqlfiles

ROOT = Path(__file__).resolve().parent.parent.parent
LOCK = Path(__file__).resolve().parent / "released.sha256"
APPS = ("qvp_site", "marketdata", "trading", "risk", "signals", "vectors")

# What a migration may import: Django, libraries, and the project's migration operations and
# SQL loader, whose output the per-engine sqlmigrate snapshots (test_sqlmigrate.py) pin.
ALLOWED_PROJECT_IMPORTS = {
    "qvp_site.db.audit",
    "qvp_site.db.extensions",
    "qvp_site.db.distribution",
    "qvp_site.db.distributed_summaries",
    "qvp_site.db.operations",
    "qvp_site.db.references",
    "qvp_site.db.sqlfiles",
    "qvp_site.db.vector_indexes",
}
PROJECT_PACKAGES = {*APPS, "dashboard", "tests"}


def _migration_files() -> list[Path]:
    return sorted(path for app in APPS for path in (ROOT / app / "migrations").glob("0*.py"))


def _sql_files() -> list[Path]:
    return sorted(
        sqlfiles.sql_path(app, family, version)
        for app, family in sqlfiles.families()
        for version in sqlfiles.versions(app, family)
    )


def _released() -> dict[str, str]:
    digests = {}
    for number, line in enumerate(LOCK.read_text().splitlines(), start=1):
        digest, _, name = line.partition("  ")
        assert len(digest) == 64, f"{LOCK.name} line {number}: not a SHA-256 digest"
        assert name, f"{LOCK.name} line {number}: no path after the digest"
        digests[name] = digest
    return digests


def _digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_released_migrations_and_their_sql_are_unchanged():
    changed = [
        name
        for name, digest in _released().items()
        if not (ROOT / name).is_file() or _digest(ROOT / name) != digest
    ]
    assert not changed, (
        f"released files changed or removed: {changed}. A released migration never changes:"
        " write a new migration (with a new SQL version) instead."
    )


def test_every_migration_and_sql_file_is_released():
    released = _released()
    unlisted = [
        _relative(path)
        for path in [*_migration_files(), *_sql_files()]
        if _relative(path) not in released
    ]
    assert not unlisted, (
        f"not in tests/migrations/{LOCK.name}: {unlisted}. Add each with"
        f" `sha256sum PATH >> tests/migrations/{LOCK.name}` when you release it."
    )


def _project_imports(path: Path) -> set[str]:
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            modules.add(node.module)
    return {m for m in modules if m.split(".")[0] in PROJECT_PACKAGES}


@pytest.mark.parametrize("path", _migration_files(), ids=_relative)
def test_migrations_import_no_live_project_code(path):
    assert _project_imports(path) <= ALLOWED_PROJECT_IMPORTS, (
        f"{_relative(path)} imports {_project_imports(path) - ALLOWED_PROJECT_IMPORTS}: copy what"
        " it needs into the migration, or version it as SQL (qvp_site/db/sqlfiles.py)"
    )


@pytest.mark.parametrize("path", _migration_files(), ids=_relative)
def test_migrations_read_no_files_but_versioned_sql(path):
    source = path.read_text()
    for call in ("read_text", "open("):
        assert call not in source, (
            f"{_relative(path)} reads a file itself ({call}): read versioned SQL with"
            " qvp_site.db.sqlfiles.read_sql"
        )
