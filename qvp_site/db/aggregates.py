"""Continuous aggregates on TimescaleDB, summary tables on plain PostgreSQL, refreshed by range.

A load refreshes only the buckets it touched, after it commits; ``maintain`` refreshes each
aggregate's recent window. TimescaleDB refuses to refresh inside a transaction, which is why
refreshes are scheduled with ``on_commit`` rather than run inside the load.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import OperationalError, connections, transaction

from qvp_site.db import catalog, engine
from qvp_site.db.buckets import bucket_sql, edge_sql
from qvp_site.db.catalog import Aggregate
from qvp_site.db.quoting import ident

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper

FUNCTIONS = ("first", "last", "min", "max", "sum", "avg", "count")
CONCURRENT_REFRESH_ATTEMPTS = 10
logger = logging.getLogger(__name__)


def _function_sql(function: str, column: str, ts: str, timescaledb: bool) -> str:
    if function in ("first", "last"):
        return edge_sql(function, column, ts, timescaledb=timescaledb)
    return f"{function}({column})"


def select_sql(agg: Aggregate, *, timescaledb: bool, where: str = "") -> str:
    """The aggregate's SELECT over its source table, with an optional WHERE clause."""
    ts = ident(agg.time_column)
    groups = [ident(c) for c in agg.group_by]
    items = [f"{bucket_sql(agg.bucket_width, ts, timescaledb=timescaledb)} AS bucket", *groups]
    for alias, function, column in agg.columns:
        column_sql = "*" if column == "*" else ident(column)
        items.append(f"{_function_sql(function, column_sql, ts, timescaledb)} AS {ident(alias)}")
    where_sql = f" WHERE {where}" if where else ""
    return (
        f"SELECT {', '.join(items)} FROM {ident(agg.source_table)}{where_sql}"
        f" GROUP BY {', '.join(['bucket', *groups])}"
    )


def aligned(agg: Aggregate, start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """[start, end] widened to whole buckets: [first bucket start, end of the last bucket)."""
    width = agg.bucket_width
    return width.floor(start), width.add(width.floor(end))


def refresh(
    agg: Aggregate,
    start: datetime,
    end: datetime,
    using: str = "default",
    *,
    force: bool = False,
    finer: Refreshed | None = None,
) -> tuple[datetime, datetime]:
    """Recompute the buckets of ``agg`` that overlap [start, end]; returns the range done.

    TimescaleDB recomputes only the buckets its invalidation log says changed, unless
    ``force``: a load forces the range it wrote. Rows inserted above the invalidation
    threshold are not logged (they are new), and a refresh policy that moves the threshold
    past them while their transaction is still open materializes their buckets without
    them; the load's own refresh would then find nothing to do and leave them out for good.

    ``finer``: an aggregate this one rolls up (``rolls_up``) refreshed just before over a range
    holding this one's: on plain PostgreSQL, the buckets are computed from its buckets instead
    of the source rows (a day from 24 hours, not from 1,440 minute bars).
    """
    connection = connections[using]
    lower, upper = aligned(agg, start, end)
    if not _owns(connection, agg.name):
        # Only the owner refreshes: TimescaleDB's rule, and the application's role may not
        # write market data's summaries on plain PostgreSQL either (it could rewrite any
        # bucket). It leaves the range pending; the next `maintain` (the scheduler, as the
        # owner) refreshes it.
        _mark_pending(connection, agg.name, start, end)
        logger.info("%s: [%s, %s) left to the next maintain", agg.name, lower, upper)
        return lower, upper
    if engine.is_timescaledb(connection):
        _refresh_continuous(connection, agg.name, lower, upper, force)
    else:
        where = f"{ident(agg.time_column)} >= %s AND {ident(agg.time_column)} < %s"
        select = select_sql(agg, timescaledb=False, where=where)
        if finer is not None and finer.lower <= lower and upper <= finer.upper:
            select = rollup_sql(agg, finer.agg)
        with transaction.atomic(using=using), connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", [f"qvp_agg:{agg.name}"])
            cursor.execute(
                f"DELETE FROM {ident(agg.name)} WHERE bucket >= %s AND bucket < %s", [lower, upper]
            )
            cursor.execute(f"INSERT INTO {ident(agg.name)} {select}", [lower, upper])
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET refreshed_at = now(), refreshed_from = %s,"
            " refreshed_to = %s WHERE view_name = %s",
            [lower, upper, agg.name],
        )
    return lower, upper


def _mark_pending(
    connection: BaseDatabaseWrapper, name: str, lower: datetime, upper: datetime
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = least(pending_from, %s),"
            " pending_to = greatest(pending_to, %s) WHERE view_name = %s",
            [lower, upper, name],
        )


def refresh_pending(agg: Aggregate, using: str = "default") -> tuple[datetime, datetime] | None:
    """Refresh the range loads by the application's role left pending; None if none was.
    After a load (``_refresh_marked``), the range is widened to the whole buckets of the
    aggregates that will roll this one up, or this one is rolled up from a finer one."""
    widen, finer = _ROLLUP.get()
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute(
            "SELECT pending_from, pending_to FROM qvp_timeseries_aggregate WHERE view_name = %s"
            " FOR UPDATE",
            [agg.name],
        )
        lower, upper = cursor.fetchone()
        if lower is None:
            return None
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = NULL, pending_to = NULL"
            " WHERE view_name = %s",
            [agg.name],
        )
    for coarser in widen:
        lower, upper = (
            min(lower, coarser.bucket_width.floor(lower)),
            max(upper, aligned(coarser, lower, upper)[1]),
        )
    try:
        return refresh(agg, lower, upper, using, force=True, finer=finer)  # ranges loads wrote
    except Exception:
        _mark_pending(connection, agg.name, lower, upper)  # not lost: tried again next time
        raise


def _owns(connection: BaseDatabaseWrapper, relation: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
            " WHERE oid = %s::regclass",
            [ident(relation)],
        )
        return bool(cursor.fetchone()[0])


def _refresh_continuous(
    connection: BaseDatabaseWrapper, name: str, lower: datetime, upper: datetime, force: bool
) -> None:
    """CALL refresh_continuous_aggregate, waiting out a concurrent refresh of the same window
    (TimescaleDB refuses a second one rather than queueing it)."""
    for attempt in range(CONCURRENT_REFRESH_ATTEMPTS):
        try:
            with connection.cursor() as cursor:
                cursor.execute(
                    "CALL refresh_continuous_aggregate(%s, %s, %s, force => %s)",
                    [name, lower, upper, force],
                )
            return
        except OperationalError as error:
            if "concurrent refresh" not in str(error) or attempt == CONCURRENT_REFRESH_ATTEMPTS - 1:
                raise
            time.sleep(0.2 * (attempt + 1))


def refresh_table(
    table: str, start: datetime, end: datetime, using: str = "default"
) -> list[tuple[str, datetime, datetime]]:
    """Refresh every aggregate over ``table`` for [start, end], which a load has just written:
    every bucket of the range is recomputed (``refresh``'s ``force``)."""
    with connections[using].cursor() as cursor:
        found = catalog.aggregates(cursor, source_table=table)
    return [(agg.name, *refresh(agg, start, end, using, force=True)) for agg in found]


def refresh_after_commit(
    table: str, start: datetime, end: datetime, using: str = "default"
) -> None:
    """Refresh the aggregates over ``table`` for [start, end] once the current transaction
    commits (at once when there is none).

    The range is first marked pending in the transaction itself, so that the mark commits with
    the rows: a process or server that dies between the commit and the refresh leaves the range
    to the next ``maintain`` (``refresh_pending``), not summaries that never see the rows."""
    connection = connections[using]
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table=table)
    for agg in found:
        _mark_pending(connection, agg.name, start, end)
    transaction.on_commit(lambda: _refresh_marked(found, using), using=using)


def _refresh_marked(found: list[Aggregate], using: str) -> None:
    """After the commit: the pending range, ours included, taken and refreshed as ``maintain``
    does (taken first, so a load that marks after it keeps its own mark; put back if the
    refresh fails). A role that may not refresh leaves it pending, writing nothing more."""
    connection = connections[using]
    plain = not engine.is_timescaledb(connection)
    done: list[Refreshed] = []
    for agg in sorted(found, key=lambda a: (a.bucket_width.is_calendar, a.bucket_width.fixed)):
        if not _owns(connection, agg.name):
            continue
        widen = [c for c in found if plain and rolls_up(c, agg)]
        finer = next((r for r in done if plain and rolls_up(agg, r.agg)), None)
        token = _ROLLUP.set((widen, finer))
        try:
            refreshed = refresh_pending(agg, using)
        finally:
            _ROLLUP.reset(token)
        if refreshed is not None:
            done.append(Refreshed(agg, *refreshed))


@dataclass(frozen=True)
class Refreshed:
    """An aggregate's buckets just refreshed over [lower, upper)."""

    agg: Aggregate
    lower: datetime
    upper: datetime


# How refresh_pending widens its range and what it may roll up from, set by _refresh_marked
# for each aggregate in turn (maintain's calls see neither), so its signature stays maintain's.
_ROLLUP: ContextVar[tuple[Sequence[Aggregate], Refreshed | None]] = ContextVar(
    "qvp_aggregate_rollup", default=((), None)
)

# What a bucket of buckets is, by the function of the rows: first of firsts, sum of counts...
_ROLLUPS = {
    "first": "(array_agg({c} ORDER BY bucket ASC))[1]",
    "last": "(array_agg({c} ORDER BY bucket ASC))[count(*)]",
    "min": "min({c})",
    "max": "max({c})",
    "sum": "sum({c})",
    "count": "sum({c})",
}


def rolls_up(coarse: Aggregate, fine: Aggregate) -> bool:
    """Whether ``coarse``'s buckets are computed exactly from ``fine``'s: the same source,
    time and groups, fixed widths from the same origin with the coarse a multiple of the fine
    (every fine bucket inside one coarse bucket), and each coarse column a function of the
    rows that a fine column holds and that combines (no avg)."""
    cw, fw = coarse.bucket_width, fine.bucket_width
    if coarse.name == fine.name or cw.is_calendar or fw.is_calendar or not fw.fixed:
        return False
    same = (coarse.source_table, coarse.time_column, list(coarse.group_by)) == (
        fine.source_table,
        fine.time_column,
        list(fine.group_by),
    )
    multiple = cw.fixed > fw.fixed and cw.fixed % fw.fixed == timedelta(0)
    held = {(function, column) for _, function, column in fine.columns}
    return same and multiple and all(f in _ROLLUPS and (f, c) in held for _, f, c in coarse.columns)


def rollup_sql(coarse: Aggregate, fine: Aggregate) -> str:
    """``coarse``'s SELECT over ``fine``'s buckets in [%s, %s) (see ``rolls_up``)."""
    alias = {(function, column): name for name, function, column in fine.columns}
    groups = [ident(c) for c in coarse.group_by]
    items = [f"{bucket_sql(coarse.bucket_width, 'bucket', timescaledb=False)} AS bucket", *groups]
    for name, function, column in coarse.columns:
        value = _ROLLUPS[function].format(c=ident(alias[(function, column)]))
        items.append(f"{value} AS {ident(name)}")
    return (
        f"SELECT {', '.join(items)} FROM {ident(fine.name)} WHERE bucket >= %s AND bucket < %s"
        f" GROUP BY {', '.join(['1', *groups])}"
    )
