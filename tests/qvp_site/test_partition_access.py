"""No partition or chunk is reachable around its parent: row-level security applies to the
table a query names, so a partition or TimescaleDB chunk named directly would show and change
every account's rows. Raw SQL as each role, on every partition and chunk the catalog knows
(walked, not named): after demo data, after ``create_db_roles`` ran again over it, and for
partitions and chunks made later by ``maintain`` and by a load. Continuous aggregates and the
System page's catalog reads still work as both roles."""

from __future__ import annotations

from datetime import UTC, datetime
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import DatabaseError, connection, transaction
from psycopg import errors

from marketdata.models import MinuteBar
from qvp_site.acting import declare
from qvp_site.db import catalog, engine, partitions, roles
from qvp_site.db.aggregates import refresh_table
from qvp_site.db.status import table_status

ROLES = (roles.APP_ROLE, roles.READONLY_ROLE)
LATER = datetime(2031, 3, 3, tzinfo=UTC)


def children() -> dict[str, str]:
    """Every partition and chunk -> its parent: inheritance children (partitions, chunks,
    compressed chunks) and, on TimescaleDB, every relation of its chunks' schema that is not
    the extension's own (the hypertables behind compression and continuous aggregates)."""
    queries = [
        """
        SELECT i.inhrelid::regclass::text, i.inhparent::regclass::text
        FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
        WHERE c.relkind IN ('r', 'p', 'f')
        """
    ]
    if engine.is_timescaledb():
        queries[:0] = [
            f"""
            SELECT c.oid::regclass::text, c.relname FROM pg_class c
            WHERE c.relnamespace = '{roles.CHUNK_SCHEMA}'::regnamespace
              AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
              AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                              AND d.objid = c.oid AND d.deptype = 'e')
            """,
            """
            SELECT format('%I.%I', chunk_schema, chunk_name), hypertable_name
            FROM timescaledb_information.chunks
            """,
        ]
    found: dict[str, str] = {}
    with connection.cursor() as cursor:
        for query in queries:
            cursor.execute(query)
            found.update(cursor.fetchall())
    return found


def _first_column(relation: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT quote_ident(attname) FROM pg_attribute WHERE attrelid = %s::regclass"
            " AND attnum > 0 AND NOT attisdropped ORDER BY attnum LIMIT 1",
            [relation],
        )
        return cursor.fetchone()[0]


def _granted(role: str, relation: str, privilege: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_table_privilege(%s, %s::regclass, %s)", [role, relation, privilege]
        )
        return cursor.fetchone()[0]


def reachable(role: str, relation: str) -> list[str]:
    """The statements ``role`` may run on ``relation``, each tried in a savepoint: those that
    ran, and those refused for another reason than privileges (a view that cannot be
    updated...) that the role holds the privilege for."""
    column = _first_column(relation)
    found = []
    for privilege, statement in (
        ("SELECT", f"SELECT 1 FROM {relation} LIMIT 1"),
        ("INSERT", f"INSERT INTO {relation} DEFAULT VALUES"),
        ("UPDATE", f"UPDATE {relation} SET {column} = {column} WHERE false"),
        ("DELETE", f"DELETE FROM {relation} WHERE false"),
        ("TRUNCATE", f"TRUNCATE {relation}"),
    ):
        try:
            with transaction.atomic(), connection.cursor() as cursor:
                cursor.execute(f"SET LOCAL ROLE {role}")
                cursor.execute(statement)
                found.append(statement)
                cursor.execute("RESET ROLE")
        except DatabaseError as error:
            refused = isinstance(error.__cause__, errors.InsufficientPrivilege)
            if not refused and _granted(role, relation, privilege):
                found.append(f"{statement}: {error}")
    return found


def assert_closed(relations: dict[str, str]) -> None:
    assert relations, "no partition or chunk to try"
    open_ = {
        (role, relation): statements
        for relation in sorted(relations)
        for role in ROLES
        if (statements := reachable(role, relation))
    }
    assert not open_, f"partitions or chunks reachable around their parent: {open_}"


@pytest.fixture
def demo(db, app_role_password):
    """A few days of demo data in the test's transaction, then the roles' grants again (on
    TimescaleDB a grant on a hypertable reaches its chunks)."""
    call_command("seed_demo", days=3, symbols=["AAPL"], stdout=StringIO())
    call_command("create_db_roles", stdout=StringIO())


def test_no_partition_or_chunk_is_reachable_after_demo_data(demo):
    found = children()
    parents = set(found.values())
    assert {"trading_portfoliosnapshot", "marketdata_minutebar"} <= parents, parents
    assert_closed(found)


def test_partitions_maintain_makes_later_are_closed(demo):
    if engine.is_timescaledb():
        pytest.skip("TimescaleDB makes chunks as rows arrive, not in maintain")
    before = children()
    call_command("maintain", "--cover", "2031-03-01", "2031-03-20", stdout=StringIO())
    made = {name: parent for name, parent in children().items() if name not in before}
    assert "trading_portfoliosnapshot" in made.values()
    assert_closed(made)


@pytest.mark.timescaledb
def test_what_maintain_compresses_later_is_closed(transactional_db, app_role_password, instrument):
    """Compression makes a relation with the hypertable's grants; maintain closes it."""
    old = datetime(2024, 1, 2, 15, tzinfo=UTC)
    MinuteBar.objects.create(instrument=instrument, ts=old, open=1, high=1, low=1, close=1)
    before = children()
    try:
        call_command("maintain", stdout=StringIO())
        made = {name: parent for name, parent in children().items() if name not in before}
        assert_closed(made)
    finally:
        MinuteBar.objects.all().delete()
        refresh_table("marketdata_minutebar", old, old)


def test_partitions_and_chunks_a_load_makes_later_are_closed(demo, desks):
    before = children()
    with connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {roles.APP_ROLE}")
    declare(desks["alice"])
    partitions.prepare_load("trading_portfoliosnapshot", LATER, LATER)
    with connection.cursor() as cursor:
        # The columns the role may write: when a snapshot was stored is the database's.
        cursor.execute(
            "INSERT INTO trading_portfoliosnapshot (account_id, ts, currency, cash,"
            " market_value, nav, gross_exposure, net_exposure, unpriced, code_version)"
            " VALUES (%s, %s, 'USD', 0, 0, 0, 0, 0, '[]', '')",
            [desks["alpha"].pk, LATER],
        )
        cursor.execute("RESET ROLE")
    made = {name: parent for name, parent in children().items() if name not in before}
    assert "trading_portfoliosnapshot" in made.values(), made
    assert_closed(made)


def _count_as(role: str | None, relation: str) -> int:
    with transaction.atomic(), connection.cursor() as cursor:
        if role:
            cursor.execute(f"SET LOCAL ROLE {role}")
        cursor.execute(f"SELECT count(*) FROM {relation}")
        (rows,) = cursor.fetchone()
        cursor.execute("RESET ROLE")
    return rows


def test_aggregates_stay_readable_by_both_roles(demo):
    """Materialized only, as the project makes them, and real-time on TimescaleDB (which
    reads the materialization and the hypertable's latest rows)."""
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor)
    assert found
    modes = [True, False] if engine.is_timescaledb() else [True]
    if engine.is_timescaledb():
        # A bar past any watermark an earlier test's refresh left behind (TimescaleDB keeps
        # watermarks outside the tables a test empties): the real-time part always has a row.
        instrument = MinuteBar.objects.values_list("instrument_id", flat=True).first()
        MinuteBar.objects.create(
            instrument_id=instrument, ts=datetime(2099, 1, 5, 15, tzinfo=UTC),
            open=1, high=1, low=1, close=1, volume=1,
        )  # fmt: skip
    for agg, materialized_only in [(a, m) for a in found for m in modes]:
        if engine.is_timescaledb():
            with connection.cursor() as cursor:
                cursor.execute(
                    f"ALTER MATERIALIZED VIEW {agg.name}"
                    f" SET (timescaledb.materialized_only = {materialized_only})"
                )
        rows = _count_as(None, agg.name)
        assert materialized_only or rows, agg.name  # real-time: the demo's bars
        for role in ROLES:
            assert _count_as(role, agg.name) == rows, (role, agg.name, materialized_only)


@pytest.mark.switches_role  # on Citus: the shards' figures come over each role's connections
def test_the_system_pages_catalog_reads_are_the_same_for_both_roles(demo):
    owners = table_status()
    assert any(status.chunks for status in owners)
    for role in ROLES:
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(f"SET LOCAL ROLE {role}")
            assert table_status() == owners, role
            cursor.execute("RESET ROLE")
