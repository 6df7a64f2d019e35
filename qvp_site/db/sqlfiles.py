"""Versioned SQL files: what a migration installs, frozen when the migration is released.

A family of database objects (the books' triggers, the risk functions, the audit chain...) lives
in ``<app>/sql/<family>/<version>.sql``, one file per migration that installs or changes it,
named after that migration (``trading/sql/books/0002.sql`` for ``trading/0002``). A change is a
new file read by a new migration; a released file never changes (``tests/migrations`` holds
their digests), and a migration that replaces a version reverses to the one before it.

Files are read by path, not through the app registry, so that a migration reads the same
bytes whatever else is installed. A family named ``<name>_on_citus`` holds the Citus branch of
functions of another family, installed on Citus alone.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
VERSION_SUFFIX = ".sql"


def sql_path(app_label: str, family: str, version: str) -> Path:
    return ROOT / app_label / "sql" / family / f"{version}{VERSION_SUFFIX}"


def read_sql(app_label: str, family: str, version: str) -> str:
    """The SQL of ``family`` at ``version`` (a migration's number, e.g. "0005")."""
    path = sql_path(app_label, family, version)
    if not path.is_file():
        raise FileNotFoundError(f"no SQL version {version} of {app_label}/{family}: {path}")
    return path.read_text()


def versions(app_label: str, family: str) -> list[str]:
    """The versions of ``family``, oldest first."""
    folder = ROOT / app_label / "sql" / family
    return sorted(p.name.removesuffix(VERSION_SUFFIX) for p in folder.glob(f"*{VERSION_SUFFIX}"))


# A family whose name ends so is the Citus branch of another's functions: installed on Citus
# alone, over the other's (qvp_site/db/distribution.py's ReplaceFunctionOnCitus).
CITUS_BRANCH = "_on_citus"


def is_citus_branch(family: str) -> bool:
    return family.endswith(CITUS_BRANCH)


def families() -> list[tuple[str, str]]:
    """Every (app label, family) of the project, in a stable order."""
    return sorted(
        (folder.parent.parent.name, folder.name)
        for folder in ROOT.glob("*/sql/*")
        if folder.is_dir() and any(folder.glob(f"*{VERSION_SUFFIX}"))
    )


def latest_sql(app_label: str, family: str) -> str:
    """The newest version of ``family``: what a database migrated to the end holds."""
    return read_sql(app_label, family, versions(app_label, family)[-1])
