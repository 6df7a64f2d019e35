"""The database roles the application runs as, and what each may do.

``trading_app`` is the application: it reads and writes data but runs no DDL, cannot change
the audit log, and is subject to row-level security (it owns nothing). ``trading_readonly``
reads everything (reporting, auditors' SQL). Migrations and maintenance run as the owner.
Per-table limits of ``trading_app`` beyond SELECT come from each app's
``AppConfig.app_role_privileges``; tables not listed get SELECT, INSERT, UPDATE, DELETE.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from psycopg import sql

# The monitoring views' functions: read by both roles, revoked from PUBLIC.
from qvp_site.db.monitoring import FUNCTIONS as MONITORING_FUNCTIONS

if TYPE_CHECKING:
    import psycopg
    from django.db.backends.utils import CursorWrapper

APP_ROLE = "trading_app"
READONLY_ROLE = "trading_readonly"
FULL = "SELECT, INSERT, UPDATE, DELETE"


@dataclass(frozen=True)
class RoleSpec:
    name: str
    password: str | None


def limits() -> dict[str, str]:
    """Table -> what trading_app may do besides SELECT ('' for nothing), from every app."""
    found: dict[str, str] = {}
    for config in apps.get_app_configs():
        found.update(getattr(config, "app_role_privileges", {}))
    return found


def ensure_role(cursor: CursorWrapper | psycopg.Cursor[Any], role: RoleSpec) -> bool:
    """Create the login role if missing (True when created); set its password if given."""
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name])
    created = cursor.fetchone() is None
    verb = "CREATE" if created else "ALTER"
    statement = sql.SQL(
        "{} ROLE {} LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
    ).format(sql.SQL(verb), sql.Identifier(role.name))
    if created:
        try:
            cursor.execute("SAVEPOINT qvp_role")
            cursor.execute(statement)
            cursor.execute("RELEASE SAVEPOINT qvp_role")
        except Exception as error:  # another process created it between our look and now
            cursor.execute("ROLLBACK TO SAVEPOINT qvp_role")
            if "already exists" not in str(error):
                raise
            created = False
    else:
        cursor.execute(statement)
    if role.password:
        cursor.execute(
            sql.SQL("ALTER ROLE {} PASSWORD {}").format(
                sql.Identifier(role.name), sql.Literal(role.password)
            )
        )
    return created


def grant(cursor: CursorWrapper, database: str, owner: str) -> None:
    """Apply every grant, idempotently: the same statements on every run."""
    app, readonly = sql.Identifier(APP_ROLE), sql.Identifier(READONLY_ROLE)
    owner_id, db = sql.Identifier(owner), sql.Identifier(database)
    statements = [
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, app),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}").format(db, readonly),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}, {}").format(app, readonly),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}").format(app, readonly),
        sql.SQL("GRANT SELECT ON ALL TABLES IN SCHEMA public TO {}").format(readonly),
        sql.SQL("GRANT {} ON ALL TABLES IN SCHEMA public TO {}").format(sql.SQL(FULL), app),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(app),
        # Tables that later migrations create get the same, until the next run narrows them.
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT {} ON TABLES TO {}"
        ).format(owner_id, sql.SQL(FULL), app),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public GRANT SELECT ON TABLES TO {}"
        ).format(owner_id, readonly),
        sql.SQL(
            "ALTER DEFAULT PRIVILEGES FOR ROLE {} IN SCHEMA public"
            " GRANT USAGE, SELECT ON SEQUENCES TO {}"
        ).format(owner_id, app),
    ]
    for statement in statements:
        cursor.execute(statement)
    _narrow(cursor, app)
    _owners_functions(cursor, app, readonly)
    _timescaledb_internals(cursor, app, readonly)


def _narrow(cursor: CursorWrapper, app: sql.Identifier) -> None:
    cursor.execute("SELECT relname FROM pg_class WHERE relnamespace = 'public'::regnamespace")
    present = {row[0] for row in cursor.fetchall()}
    for table, privileges in limits().items():
        if table not in present:
            continue
        name = sql.Identifier(table)
        cursor.execute(
            sql.SQL("REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(name, app)
        )
        if privileges:
            cursor.execute(sql.SQL("GRANT {} ON {} TO {}").format(sql.SQL(privileges), name, app))


# Functions that run as the owner on the application's behalf (revoked from PUBLIC).
OWNERS_FUNCTIONS = ("qvp_create_partition(regclass, text, timestamptz, timestamptz)",)


def _owners_functions(cursor: CursorWrapper, app: sql.Identifier, readonly: sql.Identifier) -> None:
    for signature, grantees in [(s, [app]) for s in OWNERS_FUNCTIONS] + [
        (s, [app, readonly]) for s in MONITORING_FUNCTIONS
    ]:
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [signature])
        if cursor.fetchone()[0]:
            cursor.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    sql.SQL(signature), sql.SQL(", ").join(grantees)
                )
            )


def _timescaledb_internals(
    cursor: CursorWrapper, app: sql.Identifier, readonly: sql.Identifier
) -> None:
    """Reading a continuous aggregate reads its materialization in TimescaleDB's schemas."""
    cursor.execute(
        "SELECT nspname FROM pg_namespace WHERE nspname IN"
        " ('_timescaledb_internal', 'timescaledb_information', '_timescaledb_catalog')"
    )
    for (schema,) in cursor.fetchall():
        cursor.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}, {}").format(
                sql.Identifier(schema), app, readonly
            )
        )
