"""What the time-series tables look like now: chunks or partitions, sizes, policies, runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from django.db import connection

from qvp_site.db import catalog, engine, partitions
from qvp_site.db.quoting import ident


@dataclass
class TableStatus:
    table: str
    kind: str
    chunk_interval: str
    chunks: int
    oldest: datetime | None
    newest: datetime | None
    row_estimate: int
    total_bytes: int
    compressed_chunks: int = 0
    compression_ratio: float | None = None
    policies: list[str] = field(default_factory=list)
    aggregates: list[str] = field(default_factory=list)


def table_status() -> list[TableStatus]:
    timescaledb = engine.is_timescaledb(connection)
    with connection.cursor() as cursor:
        found = catalog.time_series(cursor)
        statuses = [
            _timescaledb_status(cursor, s) if timescaledb else _partitioned_status(cursor, s)
            for s in found
        ]
        for status, series in zip(statuses, found, strict=True):
            status.aggregates = _aggregate_lines(cursor, series.table)
    return statuses


def estimate(cursor, table: str) -> tuple[int, int]:
    """The planner's row estimate and the size in bytes of ``table`` with its partitions or
    chunks, from the catalog: no scan, whatever the table's size."""
    cursor.execute(
        """
        SELECT COALESCE(sum(GREATEST(c.reltuples, 0)), 0)::bigint,
               COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint
        FROM pg_class c
        WHERE c.oid = %s::regclass
           OR c.oid IN (SELECT inhrelid FROM pg_inherits WHERE inhparent = %s::regclass)
        """,
        [ident(table), ident(table)],
    )
    rows, size = cursor.fetchone()
    return int(rows), int(size)


def _partitioned_status(cursor, series) -> TableStatus:
    parts = partitions.partitions(cursor, series.table)
    rows, size = estimate(cursor, series.table)
    policies = []
    if series.retention:
        policies.append(f"retention {series.retention.sql()} (drops partitions)")
    if series.compress_after:
        policies.append(
            f"compression after {series.compress_after}: unavailable on plain PostgreSQL"
        )
    cursor.execute(
        "SELECT retention_last_run, retention_last_result FROM qvp_timeseries_table"
        " WHERE table_name = %s",
        [series.table],
    )
    last_run, last_result = cursor.fetchone()
    if last_run:
        policies.append(f"retention last run {last_run:%Y-%m-%d %H:%M}: {last_result}")
    return TableStatus(
        table=series.table,
        kind="partitioned table",
        chunk_interval=series.chunk_interval.sql(),
        chunks=len(parts),
        oldest=parts[0].lower if parts else None,
        newest=parts[-1].upper if parts else None,
        row_estimate=int(rows),
        total_bytes=int(size),
        policies=policies,
    )


def _timescaledb_status(cursor, series) -> TableStatus:
    regclass = ident(series.table)
    cursor.execute(
        """
        SELECT count(*), min(range_start), max(range_end), count(*) FILTER (WHERE is_compressed)
        FROM timescaledb_information.chunks WHERE hypertable_name = %s
        """,
        [series.table],
    )
    chunks, oldest, newest, compressed = cursor.fetchone()
    cursor.execute(
        "SELECT approximate_row_count(%s::regclass), hypertable_size(%s::regclass)",
        [regclass, regclass],
    )
    rows, size = cursor.fetchone()
    cursor.execute(
        "SELECT before_compression_total_bytes, after_compression_total_bytes"
        " FROM hypertable_compression_stats(%s::regclass)",
        [regclass],
    )
    stats = cursor.fetchone()
    ratio = stats[0] / stats[1] if stats and stats[0] and stats[1] else None
    cursor.execute(
        """
        SELECT j.proc_name, j.schedule_interval, j.config, s.last_run_started_at,
               s.last_run_status
        FROM timescaledb_information.jobs j
        LEFT JOIN timescaledb_information.job_stats s USING (job_id)
        WHERE j.hypertable_name = %s ORDER BY j.job_id
        """,
        [series.table],
    )
    policies = [
        f"{proc} every {every} {config}; last run {started or 'never'} {status or ''}".strip()
        for proc, every, config, started, status in cursor.fetchall()
    ]
    return TableStatus(
        table=series.table,
        kind="hypertable",
        chunk_interval=series.chunk_interval.sql(),
        chunks=chunks,
        oldest=oldest,
        newest=newest,
        row_estimate=max(int(rows or 0), 0),
        total_bytes=int(size or 0),
        compressed_chunks=compressed,
        compression_ratio=ratio,
        policies=policies,
    )


def _aggregate_lines(cursor, table: str) -> list[str]:
    cursor.execute(
        "SELECT view_name, bucket_width, refreshed_at, refreshed_from, refreshed_to"
        " FROM qvp_timeseries_aggregate WHERE source_table = %s ORDER BY view_name",
        [table],
    )
    return [
        f"{name} by {width}; "
        + (
            f"refreshed {at:%Y-%m-%d %H:%M} for {lo:%Y-%m-%d} .. {hi:%Y-%m-%d}"
            if at
            else "never refreshed"
        )
        for name, width, at, lo, hi in cursor.fetchall()
    ]
