"""Native range partitions for the plain-PostgreSQL engine.

Partitions are created ahead of the data by ``maintain`` and on demand for a load that needs
older or later ones, each batch in its own short transaction under an advisory lock (creating
a partition locks the parent). The only default partition refuses every row with a message
that names the missing range, so nothing is silently swallowed.

A load makes partitions only for the intervals its rows fall in (found by the server, from the
staged rows or the batch's times), and no more new ones than QVP_MAX_NEW_PARTITIONS_PER_LOAD:
two bars in 1900 and 2999 need two partitions, not the eleven hundred between them, and a file
spread over a thousand years is refused before anything is made. On TimescaleDB, which makes a
chunk per interval as rows arrive, the same limit counts the chunks the rows would make.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import connection as default_connection
from django.db import transaction

from qvp_site.db import catalog, engine
from qvp_site.db.buckets import bucket_sql
from qvp_site.db.intervals import Interval, parse_interval
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
    """Before a load of ``table``'s rows spread over all of [start, end]: on plain
    PostgreSQL, create the partitions covering it (chunk width from the catalog) in their own
    short transaction; on TimescaleDB nothing, since hypertables make their chunks as rows
    arrive. For what the site computes from its own rows (a job's run at one time, a restored
    archive, the demo), so not limited; what a request or a file brings goes by
    ``prepare_times`` or ``rows_needs`` and ``make_needed``, which make only where rows fall,
    and no more new partitions than QVP_MAX_NEW_PARTITIONS_PER_LOAD."""
    conn = using or default_connection
    if engine.is_timescaledb(conn):
        return []
    with conn.cursor() as cursor:
        (series,) = catalog.time_series(cursor, table)
    width = series.chunk_interval
    lowers = [lower for lower, _ in bounds_covering(width, start, end)]
    return make_needed(Needs(table, lowers, start, end, width), using=conn, limited=False)


class TooManyPartitions(Exception):
    """A load whose rows would make more new partitions (chunks) than one load may."""

    def __init__(self, needs: Needs, new: int, limit: int, what: str = "partitions") -> None:
        self.needs, self.new, self.limit = needs, new, limit
        super().__init__(
            f"its rows, from {_utc(needs.first)} to {_utc(needs.last)}, would make {new:,}"
            f" new {what} of {needs.table}; one load may make at most {limit:,}"
            " (QVP_MAX_NEW_PARTITIONS_PER_LOAD): send the range in smaller parts"
        )


@dataclass(frozen=True)
class Needs:
    """The intervals a load's rows fall in: their lower bounds, aligned as the engine's
    partitions (or TimescaleDB's chunks) are, and the first and last of the rows' times."""

    table: str
    lowers: list[datetime]
    first: datetime
    last: datetime
    width: Interval | None = None  # the partitions' (plain PostgreSQL)


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(sep=" ")


def new_partition_limit() -> int:
    return int(settings.QVP_MAX_NEW_PARTITIONS_PER_LOAD)


def rows_needs(
    cursor: CursorWrapper, table: str, rows_sql: str, params: Sequence[Any] = ()
) -> Needs | None:
    """The intervals the rows of ``rows_sql`` (a query with a ``ts`` column) fall in, found
    by the server in one statement (a hash of the intervals, never a row in Python), with the
    width read from the catalog just before; None where there is no row. Run where ``rows_sql``
    reads as the load does (its time zone, its staging tables); it takes ``params``, so a
    literal % in it is written %%."""
    timescaledb = engine.is_timescaledb(cursor.db)
    width_sql = _TSDB_LENGTH if timescaledb else _PLAIN_WIDTH
    cursor.execute(f"SELECT width::text FROM ({width_sql}) AS w", [table])
    found = cursor.fetchone()
    if found is None:
        raise ValueError(f"{table} is not a time-series table")
    # The width as a constant, not a column, and a fixed one as date_bin itself: a STRICT SQL
    # function with a CASE is never inlined, and qvp_bucket_floor called per row took 1.4 s
    # of a 200,000-row load, where the grouping itself takes 0.05 s.
    width = found[0]
    if timescaledb:
        floor = _TSDB_FLOOR.format(width=f"{literal(width)}::bigint")
    else:
        floor = bucket_sql(parse_interval(width), "ts", timescaledb=False)
    # As UTC wall times: the load's session may read its file in another zone, and an array
    # of times with an offset does not come back right from every zone's history.
    cursor.execute(
        f"""
        SELECT array_agg(lower AT TIME ZONE 'UTC' ORDER BY lower),
               min(first) AT TIME ZONE 'UTC', max(last) AT TIME ZONE 'UTC'
        FROM (
            SELECT {floor} AS lower, min(ts) AS first, max(ts) AS last
            FROM ({rows_sql}) AS qvp_rows WHERE ts IS NOT NULL GROUP BY 1
        ) AS qvp_intervals
        """,
        params,
    )
    lowers, first, last = cursor.fetchone()
    if first is None:
        return None
    return Needs(
        table,
        [_as_utc(lower) for lower in lowers],
        _as_utc(first),
        _as_utc(last),
        None if timescaledb else parse_interval(width),
    )


# The partitions' width (a time is floored to its partition's lower bound as a bucket is:
# buckets.bucket_sql, qvp_bucket_floor's origins).
_PLAIN_WIDTH = (
    "SELECT chunk_interval::interval AS width FROM qvp_timeseries_table WHERE table_name = %s"
)
# TimescaleDB cuts chunks of its dimension's length in microseconds from the Unix epoch (its
# 1 year is 360 days), so the catalog's width cannot say where.
_TSDB_LENGTH = (
    "SELECT (extract(epoch FROM time_interval) * 1000000)::bigint AS width"
    " FROM timescaledb_information.dimensions WHERE hypertable_schema = 'public'"
    " AND hypertable_name = %s AND time_interval IS NOT NULL"
)
_TSDB_FLOOR = (
    "to_timestamp(floor(extract(epoch FROM ts) * 1000000 / {width}) * {width} / 1000000.0)"
)


def _as_utc(wall: datetime) -> datetime:
    return wall.replace(tzinfo=UTC)


def prepare_times(
    table: str, times: Sequence[datetime], using: BaseDatabaseWrapper | None = None
) -> list[str]:
    """Before a load of rows at ``times`` (a batch in memory): make the partitions of the
    intervals they fall in, and only those, or none (TooManyPartitions) where more than
    QVP_MAX_NEW_PARTITIONS_PER_LOAD would be new."""
    conn = using or default_connection
    with conn.cursor() as cursor:
        needs = rows_needs(cursor, table, "SELECT unnest(%s::timestamptz[]) AS ts", [list(times)])
    return [] if needs is None else make_needed(needs, using=conn)


def make_needed(
    needs: Needs, using: BaseDatabaseWrapper | None = None, *, limited: bool = True
) -> list[str]:
    """Make the partitions of ``needs`` that do not exist yet, in their own short transaction,
    or none at all where they are more than QVP_MAX_NEW_PARTITIONS_PER_LOAD (``limited``):
    TooManyPartitions. On TimescaleDB nothing is made here; the limit counts the chunks the
    rows would make."""
    conn = using or default_connection
    limit = new_partition_limit() if limited else len(needs.lowers)
    with transaction.atomic(using=conn.alias), conn.cursor() as cursor:
        if engine.is_timescaledb(conn):
            new = _new_chunks(cursor, needs)
            if new > limit:
                raise TooManyPartitions(needs, new, limit, what="chunks")
            return []
        width = needs.width
        if width is None:
            (series,) = catalog.time_series(cursor, needs.table)
            width = series.chunk_interval
        return _create_new(cursor, width, needs, limit)


def _create_new(cursor: CursorWrapper, width: Interval, needs: Needs, limit: int) -> list[str]:
    cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [_lock_key(needs.table)])
    existing = {p.lower for p in partitions(cursor, needs.table)}
    new = [lower for lower in needs.lowers if lower not in existing]
    if len(new) > limit:  # counted before any is made: a refusal leaves nothing behind
        raise TooManyPartitions(needs, len(new), limit)
    created = []
    for lower in new:
        name = partition_name(needs.table, lower, width)
        # Through the owner's function: the application's role runs no DDL.
        cursor.execute(
            "SELECT qvp_create_partition(%s::regclass, %s, %s, %s)",
            [ident(needs.table), name, lower, width.add(lower)],
        )
        created.append(name)
    return created


def _new_chunks(cursor: CursorWrapper, needs: Needs) -> int:
    """How many of ``needs``' chunks TimescaleDB has yet to make (a chunk is found by its
    start, where TimescaleDB's alignment puts it)."""
    cursor.execute(
        """
        SELECT count(*) FROM unnest(%s::timestamptz[]) AS l(lower)
        WHERE l.lower NOT IN (
            SELECT range_start FROM timescaledb_information.chunks
            WHERE hypertable_schema = 'public' AND hypertable_name = %s
        )
        """,
        [needs.lowers, needs.table],
    )
    return int(cursor.fetchone()[0])


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
