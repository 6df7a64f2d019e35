"""The database roles: made idempotently, and what the application's role leaves to the owner."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction

from qvp_site.db import aggregates, catalog, roles


def role_flags(name: str) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolbypassrls"
            " FROM pg_roles WHERE rolname = %s",
            [name],
        )
        return cursor.fetchone()


def test_create_db_roles_is_idempotent(db, app_role_password):
    out = StringIO()
    call_command("create_db_roles", stdout=out)
    call_command("create_db_roles", stdout=out)
    assert "trading_app: exists" in out.getvalue()
    for name in (roles.APP_ROLE, roles.READONLY_ROLE):
        assert role_flags(name) == (True, False, False, False, False)


def test_app_role_owns_nothing(db, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_class WHERE relowner = (SELECT oid FROM pg_roles"
            " WHERE rolname = %s)",
            [roles.APP_ROLE],
        )
        assert cursor.fetchone()[0] == 0


def test_refresh_by_the_app_role_is_left_to_maintain(transactional_db, app_role_password):
    """On both engines: the application's role may not write the summaries."""
    with connection.cursor() as cursor:
        (agg,) = [a for a in catalog.aggregates(cursor) if a.name == "marketdata_minutebar_1h"]
    start, end = datetime(2024, 5, 13, tzinfo=UTC), datetime(2024, 5, 13, 5, tzinfo=UTC)
    # What an earlier test's load left pending (the catalog's rows outlive a test's flush)
    # goes first, as the next maintain would take it.
    aggregates.refresh_pending(agg)
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
        try:
            span = aggregates.refresh(agg, start, end)
        finally:
            cursor.execute("RESET ROLE")
        cursor.execute(
            "SELECT pending_from, pending_to FROM qvp_timeseries_aggregate WHERE view_name = %s",
            [agg.name],
        )
        assert cursor.fetchone() == (start, end)
    assert aggregates.refresh_pending(agg) == span
    assert aggregates.refresh_pending(agg) is None


def test_the_app_role_detects_the_engine_as_the_owner_does(as_app_role):
    from qvp_site.db import engine

    owner_view = engine.detect()
    engine.forget()
    try:
        assert engine.detect() == owner_view
    finally:
        engine.forget()


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE {agg} SET close = 999999",
        "DELETE FROM {agg}",
        "INSERT INTO {agg} SELECT * FROM {agg} LIMIT 1",
        "TRUNCATE {agg}",
    ],
)
def test_the_app_role_writes_no_aggregate(db, app_role_password, statement):
    """The buckets the API and the dashboard serve are the owner's to write."""
    with connection.cursor() as cursor:
        names = [a.name for a in catalog.aggregates(cursor)]
    assert names
    for name in names:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {roles.APP_ROLE}")
            refused = pytest.raises(DatabaseError, match=r"permission denied|not a table")
            with refused, transaction.atomic():  # a table here, a view on TimescaleDB
                cursor.execute(statement.format(agg=name))
            cursor.execute("RESET ROLE")
