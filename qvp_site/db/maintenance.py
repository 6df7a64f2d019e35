"""``maintain``: partitions ahead, retention, compression where due, aggregates, statistics.

Each step is safe to run twice at once: partition work and aggregate refreshes take advisory
locks, and TimescaleDB serialises its own chunk operations.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

from django.db import connection, transaction
from django.utils import timezone

from qvp_site.db import aggregates, catalog, engine, partitions, roles
from qvp_site.db.catalog import TimeSeries
from qvp_site.db.intervals import parse_interval
from qvp_site.db.policies import sync_retention_policy
from qvp_site.db.quoting import ident

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

Report = Callable[[str], None]


def maintain(
    *,
    report: Report,
    analyze: bool = False,
    vacuum: bool = False,
    cover: tuple[datetime, datetime] | None = None,
    now: datetime | None = None,
) -> None:
    """Run every maintenance step over every time-series table, reporting each action."""
    now = now or timezone.now()
    timescaledb = engine.is_timescaledb(connection)
    with connection.cursor() as cursor:
        tables = catalog.time_series(cursor)
    for series in tables:
        if timescaledb:
            _timescaledb_table(series, now, report)
        else:
            _partitioned_table(series, now, cover, report)
        _refresh_aggregates(series, now, report)
        if analyze or vacuum:
            verb = "VACUUM (ANALYZE)" if vacuum else "ANALYZE"
            with connection.cursor() as cursor:
                cursor.execute(f"{verb} {ident(series.table)}")
            report(f"{series.table}: {verb.lower()}")


def _partitioned_table(
    series: TimeSeries,
    now: datetime,
    cover: tuple[datetime, datetime] | None,
    report: Report,
) -> None:
    width = series.chunk_interval
    created = partitions.ensure_partitions(
        series.table, width, width.add(now, -1), partitions.ahead_of(width, now)
    )
    if cover:
        created += partitions.ensure_partitions(series.table, width, *cover)
    report(f"{series.table}: {len(created)} partition(s) created" + _names(created))
    retention = series.retention
    if retention is not None:
        cutoff = retention.add(now, -1)
        with transaction.atomic(), connection.cursor() as cursor:
            dropped = partitions.drop_partitions_before(cursor, series.table, cutoff)
            result = f"{len(dropped)} partition(s) older than {cutoff:%Y-%m-%d %H:%M} dropped"
            kept = partitions.partitions(cursor, series.table)
            oldest = min([cutoff, *(p.lower for p in kept[:1])])
            result += _drop_revisions_before(cursor, series.table, oldest)
            _record_retention(cursor, series.table, result)
        report(f"{series.table}: retention {retention.sql()}: {result}" + _names(dropped))
    if series.compress_after:
        report(f"{series.table}: compression unavailable on plain PostgreSQL (skipped)")


def _timescaledb_table(series: TimeSeries, now: datetime, report: Report) -> None:
    regclass = ident(series.table)
    with connection.cursor() as cursor:
        report(f"{series.table}: {sync_retention_policy(cursor, series.table)}")
        retention = series.retention
        if retention is not None:
            cursor.execute(
                "SELECT count(*) FROM drop_chunks(%s::regclass, older_than => %s::interval)",
                [regclass, retention.sql()],
            )
            result = f"{cursor.fetchone()[0]} chunk(s) dropped"
            cursor.execute(  # TimescaleDB's public view of its chunks, stable across versions
                "SELECT min(range_start) FROM timescaledb_information.chunks"
                " WHERE hypertable_schema = 'public' AND hypertable_name = %s",
                [series.table],
            )
            kept = cursor.fetchone()[0]
            oldest = min(retention.add(now, -1), kept) if kept else retention.add(now, -1)
            result += _drop_revisions_before(cursor, series.table, oldest)
            _record_retention(cursor, series.table, result)
            report(f"{series.table}: retention {retention.sql()}: {result}")
        if series.compress_after:
            # What compression makes has the hypertable's grants: the function closes it in
            # this transaction (qvp_site/sql/compression/0009.sql), as the job does.
            cursor.execute(
                "SELECT qvp_compress_chunks(%s::regclass, %s::interval)",
                [regclass, parse_interval(series.compress_after).sql()],
            )
            report(f"{series.table}: {cursor.fetchone()[0]} chunk(s) compressed or already so")
            # And whatever else is open there: a chunk the owner compressed by hand.
            roles.close_chunks(cursor)


def _refresh_aggregates(series: TimeSeries, now: datetime, report: Report) -> None:
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table=series.table)
    for agg in found:
        if pending := aggregates.refresh_pending(agg):
            report(f"{agg.name}: refreshed pending {_span(*pending)}")
        lower, upper = aggregates.refresh(agg, agg.refresh_window.add(now, -1), now)
        report(f"{agg.name}: refreshed {_span(lower, upper)}")


def _drop_revisions_before(cursor: CursorWrapper, table: str, cutoff: datetime) -> str:
    """Retention drops history on purpose, not as a revision: the revisions of the rows it
    drops (``<table>revision``, marketdata 0009) go with them: those older than ``cutoff``,
    the start of the oldest partition or chunk kept (a row of a partition that straddles the
    retention's cutoff stays, and so do its revisions). What it says of them."""
    revisions = f"{table}revision"
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [revisions])
    if not cursor.fetchone()[0]:
        return ""
    cursor.execute(f"DELETE FROM {ident(revisions)} WHERE ts < %s", [cutoff])
    return f", {cursor.rowcount} revision(s) dropped"


def _record_retention(cursor: CursorWrapper, table: str, result: str) -> None:
    cursor.execute(
        "UPDATE qvp_timeseries_table SET retention_last_run = now(), retention_last_result = %s"
        " WHERE table_name = %s",
        [result, table],
    )


def _span(lower: datetime, upper: datetime) -> str:
    return f"{lower:%Y-%m-%d %H:%M} .. {upper:%Y-%m-%d %H:%M}"


def _names(names: list[str]) -> str:
    return f": {', '.join(names)}" if names else ""
