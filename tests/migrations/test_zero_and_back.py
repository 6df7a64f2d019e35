"""Every app migrates to zero and back to the latest, on the engine of the test database, into
the same schema; then the demo seeds and the audit chain verifies. On Citus, where the
distribution is not unapplied in place, every app goes back as far as the distribution lets it,
going further is refused before anything is undone, and all comes back.

It runs in a scratch database of the test server, through ``manage.py`` in a child process as an
operator would, so that the test database the other tests share is left alone.
"""

from __future__ import annotations

import re

import psycopg
import pytest
from django.db.migrations.loader import MigrationLoader

from qvp_site.db import engine
from tests.scratch_database import child_environment, conninfo, empty_database, run_manage

# Dependents first, so that each app's own backwards operations run.
APPS_TOP_DOWN = ["vectors", "signals", "risk", "trading", "marketdata", "qvp_site"]
PROJECT_APPS = set(APPS_TOP_DOWN)

# The public schema as the catalog describes it; on TimescaleDB its hypertables, continuous
# aggregates and policy jobs too (by name: their ids change when they are made again).
SCHEMA_QUERIES = {
    "relations": """
        SELECT c.relname, c.relkind, c.relrowsecurity FROM pg_class c
        WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
    """,
    "columns": """
        SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
               a.attidentity, pg_get_expr(ad.adbin, ad.adrelid)
        FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
        LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
        WHERE c.relnamespace = 'public'::regnamespace AND a.attnum > 0 AND NOT a.attisdropped
          AND c.relkind IN ('r', 'p', 'v', 'm')
    """,
    "constraints": """
        SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid) FROM pg_constraint
        WHERE connamespace = 'public'::regnamespace
    """,
    "indexes": "SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = 'public'",
    "triggers": """
        SELECT tgrelid::regclass::text, tgname, pg_get_triggerdef(oid) FROM pg_trigger
        WHERE NOT tgisinternal
          AND tgrelid IN (SELECT oid FROM pg_class WHERE relnamespace = 'public'::regnamespace)
    """,
    "functions": """
        SELECT p.oid::regprocedure::text,
               -- pg_get_functiondef refuses an aggregate: its final and state functions
               -- are listed themselves.
               CASE WHEN p.prokind = 'a' THEN 'aggregate' ELSE pg_get_functiondef(p.oid) END
        FROM pg_proc p
        WHERE p.pronamespace = 'public'::regnamespace
          AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
    """,
    "policies": """
        SELECT tablename, policyname, cmd, qual, with_check FROM pg_policies
        WHERE schemaname = 'public'
    """,
}
TIMESCALEDB_QUERIES = {
    "hypertables": "SELECT hypertable_name FROM timescaledb_information.hypertables",
    "aggregates": "SELECT view_name FROM timescaledb_information.continuous_aggregates",
    "jobs": """
        SELECT proc_name, coalesce(hypertable_name, '') FROM timescaledb_information.jobs
        WHERE proc_name LIKE 'policy_%'
    """,
}


@pytest.fixture
def scratch():
    """A new, empty database on the test server, dropped afterwards; and how to run
    ``manage.py`` against it and read its catalog."""
    with empty_database("qvp_zero") as name:
        env = child_environment(name)
        # No sealer runs beside this site, and on a cluster the seeding outlasts the default
        # window in which verify_audit lets entries wait unsigned.
        env["QVP_AUDIT_UNSIGNED_WINDOW"] = "3600"

        def manage(*args: str, refused: bool = False) -> str:
            return run_manage(env, *args, refused=refused)

        def schema() -> dict[str, list[tuple]]:
            with psycopg.connect(**conninfo(name)) as conn:
                queries = dict(SCHEMA_QUERIES)
                if conn.execute(
                    "SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'"
                ).fetchone():
                    queries.update(TIMESCALEDB_QUERIES)
                return {key: sorted(conn.execute(q).fetchall()) for key, q in queries.items()}

        yield manage, schema


def _leftovers(schema: dict[str, list[tuple]]) -> list[tuple]:
    """What of the project is still in public: anything but Django's own tables and those of
    the installed packages with tables (axes: failed logins)."""
    django_tables = ("auth_", "django_", "axes_")
    return (
        [row for row in schema["relations"] if not row[0].startswith(django_tables)]
        + schema["functions"]
        + schema["policies"]
    )


# On Citus the distribution (marketdata 0017, the revisions' 0019, the signals' 0010, the
# vectors' 0007) is not unapplied in place.
LAST_IRREVERSIBLE_ON_CITUS = (
    ("marketdata", "0019_revisions_distributed_on_citus"),
    ("signals", "0010_distributed_on_citus"),
    ("vectors", "0007_distributed_on_citus"),
)


def _same_schema(latest: dict[str, list[tuple]], again: dict[str, list[tuple]]) -> None:
    for part in latest:
        assert again[part] == latest[part], f"{part} differ after going back and forth"


def _to_zero(manage, schema) -> None:
    for app in APPS_TOP_DOWN:
        manage("migrate", app, "zero", "--verbosity", "0")
    applied = manage("showmigrations", *APPS_TOP_DOWN)
    assert "[X]" not in applied, f"migrations still applied after zero:\n{applied}"
    assert _leftovers(schema()) == [], "objects left behind by the backwards migrations"


def _back_to_the_distribution(manage) -> None:
    """On Citus: each app back to the newest of its migrations the distribution needs (or to
    zero), every later one unapplied; going further is refused, naming the migration and what
    to do instead, before anything is undone."""
    graph = MigrationLoader(None, ignore_no_migrations=True).graph
    kept = {node for last in LAST_IRREVERSIBLE_ON_CITUS for node in graph.forwards_plan(last)}
    for app in APPS_TOP_DOWN:
        needed = sorted(name for label, name in kept if label == app)  # named by number
        manage("migrate", app, needed[-1] if needed else "zero", "--verbosity", "0")
    applied = manage("showmigrations", *APPS_TOP_DOWN)
    assert applied.count("[X]") == sum(label in PROJECT_APPS for label, _ in kept), applied
    # Each app's distribution is named when going back past it; the market data's, when a
    # later app's would be unapplied first.
    for app, target, named in (
        ("signals", "0009", "signals 0010"),
        ("vectors", "0006", "vectors 0007"),
        ("marketdata", "zero", "(signals 0010|vectors 0007)"),
    ):
        refusal = manage("migrate", app, target, "--verbosity", "0", refused=True)
        assert re.search(
            f"{named}_distributed_on_citus cannot be unapplied, and nothing was", refusal
        )
        assert "cannot be undistributed in place" in refusal, refusal
        assert "restore a dump made before this migration" in refusal, refusal
        assert "Traceback" not in refusal, refusal
    assert manage("showmigrations", *APPS_TOP_DOWN) == applied


def test_every_app_migrates_to_zero_and_back_then_seeds_and_verifies(scratch, db):
    manage, schema = scratch
    manage("migrate", "--verbosity", "0")
    latest = schema()
    if engine.is_citus():
        _back_to_the_distribution(manage)
    else:
        _to_zero(manage, schema)

    manage("migrate", "--verbosity", "0")
    _same_schema(latest, schema())

    manage("seed_demo", "--days", "10", "--symbols", "AAPL,SPY", "--verbosity", "0")
    assert "audit chain intact" in manage("verify_audit")
