"""Native range partitions for the plain-PostgreSQL engine.

Partitions are created ahead of the data by ``maintain`` and on demand for a load that needs
older or later ones, each batch in its own short transaction under an advisory lock (creating
a partition locks the parent). The only default partition refuses every row with a message
that names the missing range, so nothing is silently swallowed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection as default_connection
from django.db import transaction

from qvp_site.db import catalog, engine
from qvp_site.db.intervals import Interval
from qvp_site.db.plpgsql import interval, utc_add
from qvp_site.db.quoting import ident, literal

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

_BOUND = re.compile(r"FROM \('([^']+)'\) TO \('([^']+)'\)")


@dataclass(frozen=True)
class Partition:
    name: str
    lower: datetime
    upper: datetime


def default_partition_name(table: str) -> str:
    return f"{table[:48]}_default"


def _whole_days(width: Interval) -> bool:
    """Whether partitions of ``width`` all start at midnight, so their names need no time."""
    return width.is_calendar or width.fixed.total_seconds() % 86400 == 0


def partition_name(table: str, lower: datetime, width: Interval) -> str:
    stamp = "%Y%m%d" if _whole_days(width) else "%Y%m%dT%H%M"
    return f"{table[:48]}_p{lower.astimezone(UTC).strftime(stamp)}"


def partitions(cursor: CursorWrapper, table: str) -> list[Partition]:
    """The range partitions of ``table`` in time order (the refusing default left out)."""
    return partitions_of(cursor, [table])[table]


def partitions_of(cursor: CursorWrapper, tables: list[str]) -> dict[str, list[Partition]]:
    """The range partitions of each of ``tables`` in time order, in one query."""
    cursor.execute(
        """
        SELECT t.name, c.relname, pg_get_expr(c.relpartbound, c.oid)
        FROM unnest(%s::text[]) AS t(name)
        JOIN pg_inherits i ON i.inhparent = quote_ident(t.name)::regclass
        JOIN pg_class c ON c.oid = i.inhrelid
        """,
        [list(tables)],
    )
    found: dict[str, list[Partition]] = {table: [] for table in tables}
    for table, name, bound in cursor.fetchall():
        match = _BOUND.search(bound or "")
        if match:
            lower, upper = (datetime.fromisoformat(v).astimezone(UTC) for v in match.groups())
            found[table].append(Partition(name, lower, upper))
    return {table: sorted(parts, key=lambda p: p.lower) for table, parts in found.items()}


def bounds_covering(
    width: Interval, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """Aligned [lower, upper) ranges of ``width`` that cover [start, end]."""
    lower = width.floor(start)
    ranges = []
    while lower <= end:
        upper = width.add(lower)
        ranges.append((lower, upper))
        lower = upper
    return ranges


def _lock_key(table: str) -> str:
    return f"qvp_partitions:{table}"


def create_partitions(
    cursor: CursorWrapper, table: str, width: Interval, start: datetime, end: datetime
) -> list[str]:
    """Create the missing partitions of ``table`` covering [start, end]; returns their names.

    The caller holds the transaction; an advisory lock keyed on the table serialises creators.
    """
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_lock_key(table)])
    existing = {(p.lower, p.upper) for p in partitions(cursor, table)}
    created = []
    for lower, upper in bounds_covering(width, start, end):
        if (lower, upper) in existing:
            continue
        name = partition_name(table, lower, width)
        # Through the owner's function: the application's role runs no DDL.
        cursor.execute(
            "SELECT qvp_create_partition(%s::regclass, %s, %s, %s)",
            [ident(table), name, lower, upper],
        )
        created.append(name)
    return created


def covering_partitions_plpgsql(
    table: str, width: Interval, *, parent: str, start_sql: str, end_sql: str
) -> str:
    """A PL/pgSQL block that attaches to ``parent`` the partitions of ``table`` covering
    [start_sql, end_sql] (expressions the server evaluates), named and bounded as
    ``create_partitions`` makes them: for a rebuild, where only the server knows the rows.

    ``parent`` is the table being built, not yet named ``table``. The bounds step in UTC, as
    ``Interval.add`` does; ``qvp_bucket_floor`` aligns the first as ``Interval.floor`` does.
    """
    width_sql = interval(width)
    stamp = "YYYYMMDD" if _whole_days(width) else 'YYYYMMDD"T"HH24MI'
    prefix = literal(f"{table[:48]}_p")
    name = f"{prefix} || to_char(qvp_lower AT TIME ZONE 'UTC', {literal(stamp)})"
    return f"""
DECLARE
    qvp_first timestamptz := qvp_bucket_floor({width_sql}, {start_sql});
    qvp_last timestamptz := {end_sql};
    qvp_lower timestamptz;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext({literal(_lock_key(table))}));
    FOR qvp_lower IN
        SELECT bound AT TIME ZONE 'UTC' FROM generate_series(
            qvp_first AT TIME ZONE 'UTC', qvp_last AT TIME ZONE 'UTC', {width_sql}) AS bound
    LOOP
        EXECUTE format(
            'CREATE TABLE IF NOT EXISTS %I PARTITION OF %I FOR VALUES FROM (%L) TO (%L)',
            {name}, {literal(parent)}, qvp_lower, {utc_add("qvp_lower", width_sql)});
    END LOOP;
END;
"""


def ensure_partitions(
    table: str,
    width: Interval,
    start: datetime,
    end: datetime,
    using: BaseDatabaseWrapper | None = None,
) -> list[str]:
    """Create the partitions a load of [start, end] needs, in their own short transaction."""
    conn = using or default_connection
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        return create_partitions(cursor, table, width, start, end)


def prepare_load(
    table: str, start: datetime, end: datetime, using: BaseDatabaseWrapper | None = None
) -> list[str]:
    """Before a load of ``table``'s rows in [start, end]: on plain PostgreSQL, create the
    partitions it needs (chunk width from the catalog) in their own short transaction; on
    TimescaleDB nothing, since hypertables make their chunks as rows arrive."""
    conn = using or default_connection
    if engine.is_timescaledb(conn):
        return []
    with conn.cursor() as cursor:
        (series,) = catalog.time_series(cursor, table)
    return ensure_partitions(table, series.chunk_interval, start, end, using=conn)


def refusing_default_sql(table: str, time_column: str) -> list[str]:
    """A default partition whose trigger refuses every row, naming the range it lacks."""
    name = default_partition_name(table)
    args = ", ".join(literal(v) for v in (table, time_column))
    return [
        f"CREATE TABLE IF NOT EXISTS {ident(name)} PARTITION OF {ident(table)} DEFAULT",
        "CREATE OR REPLACE TRIGGER qvp_refuse_unpartitioned BEFORE INSERT OR UPDATE"
        f" ON {ident(name)} FOR EACH ROW EXECUTE FUNCTION qvp_refuse_unpartitioned_row({args})",
    ]


def drop_partitions_before(cursor: CursorWrapper, table: str, cutoff: datetime) -> list[str]:
    """Retention: drop whole partitions whose every row is older than ``cutoff``."""
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_lock_key(table)])
    dropped = []
    for part in partitions(cursor, table):
        if part.upper <= cutoff:
            cursor.execute(f"DROP TABLE {ident(part.name)}")
            dropped.append(part.name)
    return dropped


def ahead_of(width: Interval, now: datetime) -> datetime:
    """How far ahead of now partitions exist: two chunks past the current one, a week at least."""
    return max(width.add(width.floor(now), 2), now + timedelta(days=7))


def ahead_of_sql(width: Interval) -> str:
    """``ahead_of(width, now)`` as a SQL expression, for the server to evaluate."""
    width_sql = interval(width)
    chunks = utc_add(f"qvp_bucket_floor({width_sql}, now())", f"2 * {width_sql}")
    week = utc_add("now()", "interval '7 days'")
    return f"greatest({chunks}, {week})"
