"""``sqlmigrate`` shows what each migration runs, and what it runs on an engine never changes.

Each project migration's ``sqlmigrate`` output, forwards and backwards, is kept per engine in
``sqlmigrate/<engine>/`` (on Citus only where it differs from plain PostgreSQL's). The output
is for the engine the test database has; the operations read nothing else of the database, so
it is the same on every database of that engine. A migration the engine refuses to run in a
direction (Citus: unapplying the distribution) keeps its refusal instead.

A migration without a snapshot on this engine (a new migration, or an engine added) fails with
how to record it: run the tests with ``QVP_RECORD_SQLMIGRATE=1`` and commit the files written.
A recorded snapshot is never rewritten: a released migration must not change what it runs.
"""

from __future__ import annotations

import difflib
import os
import re
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db.migrations import RunPython
from django.db.migrations.exceptions import IrreversibleError
from django.db.migrations.loader import MigrationLoader

from qvp_site.db import engine

SNAPSHOTS = Path(__file__).resolve().parent / "sqlmigrate"
APPS = ("qvp_site", "marketdata", "trading", "risk", "signals", "vectors")
RECORD = os.environ.get("QVP_RECORD_SQLMIGRATE") == "1"


def _migrations() -> list[tuple[str, str]]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return sorted(key for key in loader.disk_migrations if key[0] in APPS)


# On Citus the shard count of the instruments' keys is a setting (QVP_CITUS_SHARD_COUNT): kept
# as its name in the snapshots, so that a cluster of another count reads the same ones.
SHARD_COUNT = re.compile(r"\bshard_count => \d+\b")


def _sqlmigrate(app_label: str, name: str, *, backwards: bool) -> str:
    """What the migration runs on this engine, or the refusal it gives instead (on Citus the
    distribution is not unapplied in place)."""
    out = StringIO()
    citus = engine.is_citus()
    try:
        call_command("sqlmigrate", app_label, name, backwards=backwards, stdout=out, no_color=True)
    except IrreversibleError as refused:
        if not citus:
            raise
        return f"-- refused: {refused}\n"
    if not citus:
        return out.getvalue()
    return SHARD_COUNT.sub("shard_count => QVP_CITUS_SHARD_COUNT", out.getvalue())


def _snapshot(app_label: str, name: str, direction: str, output: str) -> Path:
    """The snapshot the output is held to. Citus builds on the plain engine: there a migration
    is held to plain PostgreSQL's snapshot unless it has one of its own (its Citus branch),
    recorded only where the output differs."""
    kind = engine.detect().engine
    own = SNAPSHOTS / kind / app_label / f"{name}.{direction}.sql"
    plain = SNAPSHOTS / "postgresql" / app_label / f"{name}.{direction}.sql"
    differs = RECORD and plain.exists() and plain.read_text() != output
    if kind == "citus" and not own.exists() and plain.exists() and not differs:
        return plain
    if not own.exists():
        if not RECORD:
            pytest.fail(
                f"no sqlmigrate snapshot {own.relative_to(SNAPSHOTS.parent)}: record it"
                " with QVP_RECORD_SQLMIGRATE=1 and commit it"
            )
        own.parent.mkdir(parents=True, exist_ok=True)
        own.write_text(output)
    return own


@pytest.mark.parametrize("direction", ["forwards", "backwards"])
@pytest.mark.parametrize(
    ("app_label", "name"), _migrations(), ids=[f"{a}/{n}" for a, n in _migrations()]
)
def test_sqlmigrate_output_is_the_released_one(db, app_label, name, direction):
    output = _sqlmigrate(app_label, name, backwards=direction == "backwards")
    snapshot = _snapshot(app_label, name, direction, output)
    recorded = snapshot.read_text()
    diff = "".join(
        difflib.unified_diff(
            recorded.splitlines(keepends=True),
            output.splitlines(keepends=True),
            "released",
            "now",
        )
    )
    assert output == recorded, (
        f"{app_label} {name} {direction} runs other SQL than released:\n{diff}"
    )


def test_every_operation_but_python_shows_its_sql():
    """No operation of a project migration hides from sqlmigrate (RunPython alone is code)."""
    loader = MigrationLoader(None, ignore_no_migrations=True)
    hidden = [
        f"{app_label} {name}: {operation.describe()}"
        for app_label, name in _migrations()
        for operation in loader.disk_migrations[app_label, name].operations
        if not operation.reduces_to_sql and not isinstance(operation, RunPython)
    ]
    assert not hidden, f"operations sqlmigrate cannot show: {hidden}"
