"""Continuous aggregates on TimescaleDB, summary tables on plain PostgreSQL, refreshed by range.

A load refreshes only the buckets it touched, after it commits; ``maintain`` refreshes each
aggregate's recent window. TimescaleDB refuses to refresh inside a transaction, which is why
refreshes are scheduled with ``on_commit`` rather than run inside the load.

On plain PostgreSQL the refresh is SQL's (qvp_site/sql/maintenance/0013.sql:
``qvp_refresh_summary``, ``qvp_refresh_summary_pending``), the implementation
``daily_maintenance()`` runs too; ``select_sql`` writes the summary's query when a migration
creates it, and ``qvp_summary_select`` writes the same text for the refreshes.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import OperationalError, connections, transaction

from qvp_site.db import catalog, engine
from qvp_site.db.buckets import bucket_sql, edge_sql
from qvp_site.db.catalog import Aggregate
from qvp_site.db.quoting import ident

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.backends.utils import CursorWrapper

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
    agg: Aggregate, start: datetime, end: datetime, using: str = "default", *, force: bool = False
) -> tuple[datetime, datetime]:
    """Recompute the buckets of ``agg`` that overlap [start, end]; returns the range done.

    TimescaleDB recomputes only the buckets its invalidation log says changed, unless
    ``force``: a load forces the range it wrote. Rows inserted above the invalidation
    threshold are not logged (they are new), and a refresh policy that moves the threshold
    past them while their transaction is still open materializes their buckets without
    them; the load's own refresh would then find nothing to do and leave them out for good.
    """
    connection = connections[using]
    lower, upper = aligned(agg, start, end)
    if not _owns(connection, agg.name):
        # Only the owner refreshes: TimescaleDB's rule, and the application's role may not
        # write market data's summaries on plain PostgreSQL either (it could rewrite any
        # bucket). It leaves the range pending; the next `maintain` (the scheduler, as the
        # owner) refreshes it.
        mark_pending(connection, agg.name, start, end)
        logger.info("%s: [%s, %s) left to the next maintain", agg.name, lower, upper)
        return lower, upper
    if not engine.is_timescaledb(connection):
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT done_from, done_to FROM qvp_refresh_summary(%s, %s, %s)",
                [agg.name, start, end],
            )
            done_from, done_to = cursor.fetchone()
            return done_from, done_to
    _refresh_continuous(connection, agg.name, lower, upper, force)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET refreshed_at = now(), refreshed_from = %s,"
            " refreshed_to = %s WHERE view_name = %s",
            [lower, upper, agg.name],
        )
    return lower, upper


def summary_select(cursor: CursorWrapper, name: str, where: str = "") -> str:
    """The summary ``name``'s SELECT over its source as plain PostgreSQL computes it, written by
    SQL (``qvp_summary_select``): the query the refreshes run, for a rollup to build on."""
    cursor.execute("SELECT qvp_summary_select(%s, %s)", [name, where])
    return str(cursor.fetchone()[0])


def mark_pending(
    connection: BaseDatabaseWrapper, name: str, lower: datetime, upper: datetime
) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = least(pending_from, %s),"
            " pending_to = greatest(pending_to, %s) WHERE view_name = %s",
            [lower, upper, name],
        )


def refresh_pending(agg: Aggregate, using: str = "default") -> tuple[datetime, datetime] | None:
    """Refresh the range loads by the application's role left pending; None if none was."""
    connection = connections[using]
    if not engine.is_timescaledb(connection) and _owns(connection, agg.name):
        with connection.cursor() as cursor:  # taken and refreshed in one transaction
            cursor.execute(
                "SELECT done_from, done_to FROM qvp_refresh_summary_pending(%s)", [agg.name]
            )
            found = cursor.fetchone()
            return (found[0], found[1]) if found else None
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
    try:
        return refresh(agg, lower, upper, using, force=True)  # ranges loads wrote
    except Exception:
        mark_pending(connection, agg.name, lower, upper)  # not lost: tried again next time
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
        mark_pending(connection, agg.name, start, end)
    transaction.on_commit(lambda: _refresh_marked(found, using), using=using)


def _refresh_marked(found: list[Aggregate], using: str) -> None:
    """After the commit: the pending range, ours included, taken and refreshed as ``maintain``
    does (taken first, so a load that marks after it keeps its own mark; put back if the
    refresh fails). A role that may not refresh leaves it pending, writing nothing more."""
    connection = connections[using]
    for agg in found:
        if _owns(connection, agg.name):
            refresh_pending(agg, using)
