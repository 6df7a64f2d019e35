"""What the time-series tables look like now: chunks or partitions, sizes, policies, runs.

A handful of catalog queries for all the tables together, whatever their number (the
dashboard's system page and ``timeseries_status`` read it), and never a scan of their rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import connection

from qvp_site.db import catalog, engine, partitions
from qvp_site.display import duration_text

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

    from qvp_site.db.catalog import TimeSeries


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
    # A part holding rows was never analysed: row_estimate misses its rows.
    unanalysed: bool = False
    # True when row_estimate is an exact count: a small table never analysed has no estimate.
    rows_counted: bool = False
    compressed_chunks: int = 0
    compression_ratio: float | None = None
    policies: list[str] = field(default_factory=list)
    aggregates: list[str] = field(default_factory=list)
    # On Citus, where a distributed table's shards are and what they hold, node by node.
    nodes: list[NodeShare] = field(default_factory=list)
    distributed: bool = False


@dataclass(frozen=True)
class NodeShare:
    """A Citus node's share of a distributed table: its shards (of the table itself, not of
    each partition), and the estimated rows and bytes of all of them, partitions included."""

    node: str
    shards: int
    row_estimate: int
    total_bytes: int
    unanalysed: bool = False  # a shard holding pages has no statistics yet
    reachable: bool = True  # False: the worker did not answer; its figures are missing


def table_status() -> list[TableStatus]:
    timescaledb = engine.is_timescaledb(connection)
    with connection.cursor() as cursor:
        found = catalog.time_series(cursor)
        tables = [series.table for series in found]
        if timescaledb:
            statuses = _timescaledb_statuses(cursor, found)
        else:
            statuses = _partitioned_statuses(cursor, found)
        aggregates = _aggregate_lines(cursor, tables)
        if engine.is_citus(connection):
            _citus_shares(cursor, statuses)
        _count_unknown_small_tables(cursor, statuses)
    for status in statuses:
        status.aggregates = aggregates.get(status.table, [])
    return statuses


# A table no ANALYZE has seen yet (reltuples -1 on PostgreSQL 14+: a freshly seeded demo,
# before autovacuum's turn) has no estimate; up to this size it is counted instead, which
# reads a few megabytes at most.
COUNT_UP_TO_BYTES = 8 * 1024 * 1024


def _count_unknown_small_tables(cursor: CursorWrapper, statuses: list[TableStatus]) -> None:
    """Exact row counts for the small tables without an estimate (never analysed), all in
    one statement."""
    small = [
        s
        for s in statuses
        if s.unanalysed and s.total_bytes <= COUNT_UP_TO_BYTES and not s.distributed
    ]
    if not small:
        return
    quote = connection.ops.quote_name
    cursor.execute(
        " UNION ALL ".join(f"SELECT %s, count(*) FROM {quote(s.table)}" for s in small),
        [s.table for s in small],
    )
    counts = dict(cursor.fetchall())
    for status in small:
        status.row_estimate = int(counts[status.table])
        status.rows_counted = True


# Each distributed table's shards per node, in one statement: the sizes from citus_shards,
# the row estimates from the workers' own catalogs (reltuples of each shard, partitions'
# shards included), both summed to the table the partitions belong to. A worker that does
# not answer is named so; a shard with pages but no statistics marks its node unanalysed.
_CITUS_SHARES = """
WITH answers AS (
    SELECT nodename, nodeport, success, result
    FROM run_command_on_workers($$
        SELECT coalesce(json_agg(json_build_array(relname, reltuples, relpages)), '[]')
        FROM pg_class WHERE relkind = 'r' AND (reltuples > 0 OR relpages > 0)
          AND relnamespace = 'public'::regnamespace$$)
),
shard_rows AS (
    SELECT e ->> 0 AS shard, (e ->> 1)::float8 AS reltuples
    FROM answers AS a CROSS JOIN LATERAL json_array_elements(a.result::json) AS e
    WHERE a.success
)
SELECT coalesce(pg_partition_root(s.table_name), s.table_name)::text,
       s.nodename || ':' || s.nodeport,
       count(*) FILTER (WHERE NOT c.relispartition),
       coalesce(sum(greatest(r.reltuples, 0)), 0)::bigint,
       coalesce(sum(s.shard_size), 0)::bigint,
       bool_or(r.reltuples < 0),
       bool_and(a.success)
FROM citus_shards s
JOIN pg_class c ON c.oid = s.table_name
JOIN answers a ON a.nodename = s.nodename AND a.nodeport = s.nodeport
LEFT JOIN shard_rows r ON r.shard = s.shard_name
WHERE s.citus_table_type = 'distributed'
GROUP BY 1, 2 ORDER BY 1, 2
"""


def _citus_shares(cursor: CursorWrapper, statuses: list[TableStatus]) -> None:
    """On Citus, each distributed table's nodes, and its rows and bytes summed from them (the
    coordinator holds none of its rows). Never counted: a count would scan every shard, and
    fail while a worker is down."""
    cursor.execute(_CITUS_SHARES)
    shares: dict[str, list[NodeShare]] = {}
    for table, node, shards, rows, size, unanalysed, reachable in cursor.fetchall():
        share = NodeShare(node, shards, rows, size, bool(unanalysed), bool(reachable))
        shares.setdefault(table, []).append(share)
    for status in statuses:
        status.nodes = shares.get(status.table, [])
        if status.nodes:
            status.row_estimate = sum(n.row_estimate for n in status.nodes)
            status.total_bytes = sum(n.total_bytes for n in status.nodes)
            status.unanalysed = any(n.unanalysed for n in status.nodes)
            status.distributed = True


_SINGULAR = re.compile(r"\b1 (microsecond|second|minute|hour|day|week|month|year)s\b")
# PostgreSQL's own output for months: "1 mon", "3 mons".
_MONS = re.compile(r"\b(\d+) mons?\b")


def spoken(text: str) -> str:
    """An interval as said, not as PostgreSQL's literal: "1 day", "2 days" (never "1 days"),
    "3 months" (never "3 mons")."""
    months = _MONS.sub(lambda m: f"{m[1]} month{'' if m[1] == '1' else 's'}", text)
    return _SINGULAR.sub(r"1 \1", months)


def estimate(cursor: CursorWrapper, table: str) -> tuple[int, int]:
    """The planner's row estimate and the size in bytes of ``table`` with its partitions or
    chunks, from the catalog: no scan, whatever the table's size. On Citus, a distributed
    table's from its shards on the workers (the coordinator's shell holds no row)."""
    if engine.is_citus(cursor.db):
        cursor.execute(
            f"SELECT sum(rows)::bigint, sum(bytes)::bigint FROM ({_CITUS_SHARES})"
            " AS s (name, node, shards, rows, bytes, unanalysed, reachable) WHERE name = %s",
            [table],
        )
        rows, size = cursor.fetchone()
        if rows is not None:
            return int(rows), int(size)
    rows, size, _unknown = _estimates(cursor, [table])[table]
    return rows, size


def _estimates(cursor: CursorWrapper, tables: list[str]) -> dict[str, tuple[int, int, bool]]:
    """Per table: the row estimate, the size, and whether a part of it holding rows has never
    been analysed (reltuples < 0). A partitioned parent holds no rows itself: once analysed,
    its reltuples repeats its partitions' total, which is not added again."""
    cursor.execute(
        """
        SELECT t.name,
               COALESCE(sum(GREATEST(c.reltuples, 0)) FILTER (WHERE c.relkind <> 'p'), 0)::bigint,
               COALESCE(sum(pg_total_relation_size(c.oid)), 0)::bigint,
               COALESCE(bool_or(c.reltuples < 0 AND c.relkind <> 'p'), false)
        FROM unnest(%s::text[]) AS t(name)
        CROSS JOIN LATERAL (
            SELECT quote_ident(t.name)::regclass AS oid
            UNION ALL
            SELECT inhrelid FROM pg_inherits WHERE inhparent = quote_ident(t.name)::regclass
        ) AS member
        JOIN pg_class c ON c.oid = member.oid
        GROUP BY t.name
        """,
        [tables],
    )
    return {
        table: (int(rows), int(size), bool(unknown))
        for table, rows, size, unknown in cursor.fetchall()
    }


def _partitioned_statuses(cursor: CursorWrapper, found: list[TimeSeries]) -> list[TableStatus]:
    tables = [series.table for series in found]
    parts = partitions.partitions_of(cursor, tables)
    sizes = _estimates(cursor, tables)
    cursor.execute(
        "SELECT table_name, retention_last_run, retention_last_result FROM qvp_timeseries_table"
    )
    runs = {table: (at, result) for table, at, result in cursor.fetchall()}
    statuses = []
    for series in found:
        own, (rows, size, unanalysed) = parts[series.table], sizes[series.table]
        statuses.append(
            TableStatus(
                table=series.table,
                kind="partitioned table",
                chunk_interval=spoken(series.chunk_interval.sql()),
                chunks=len(own),
                oldest=own[0].lower if own else None,
                newest=own[-1].upper if own else None,
                row_estimate=rows,
                total_bytes=size,
                unanalysed=unanalysed,
                policies=_partition_policies(series, *runs.get(series.table, (None, None))),
            )
        )
    return statuses


def _partition_policies(
    series: TimeSeries, last_run: datetime | None, last_result: str | None
) -> list[str]:
    policies = []
    if series.retention:
        policies.append(f"retention {spoken(series.retention.sql())} (drops partitions)")
    if series.compress_after:
        policies.append(
            f"compression after {spoken(series.compress_after)}: unavailable on plain PostgreSQL"
        )
    if last_run:
        policies.append(f"retention last run {last_run:%Y-%m-%d %H:%M}: {last_result}")
    return policies


# Chunks, sizes and compression of every hypertable named, one row each, and whether a chunk
# was never analysed (its rows missing from the estimate).
HYPERTABLES_SQL = """
SELECT t.name, ch.chunks, ch.oldest, ch.newest, ch.compressed,
       approximate_row_count(quote_ident(t.name)::regclass),
       hypertable_size(quote_ident(t.name)::regclass),
       cs.before_compression_total_bytes, cs.after_compression_total_bytes,
       EXISTS (SELECT FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = quote_ident(t.name)::regclass AND c.reltuples < 0)
FROM unnest(%s::text[]) AS t(name)
LEFT JOIN LATERAL (
    SELECT count(*) AS chunks, min(range_start) AS oldest, max(range_end) AS newest,
           count(*) FILTER (WHERE is_compressed) AS compressed
    FROM timescaledb_information.chunks WHERE hypertable_name = t.name
) ch ON true
LEFT JOIN LATERAL hypertable_compression_stats(quote_ident(t.name)::regclass) cs ON true
"""

JOBS_SQL = """
SELECT t.name, j.proc_name, j.schedule_interval, j.config, s.last_run_started_at,
       s.last_run_status
FROM timescaledb_information.jobs j
CROSS JOIN LATERAL (SELECT coalesce(j.hypertable_name, j.config->>'hypertable')) AS t(name)
LEFT JOIN timescaledb_information.job_stats s USING (job_id)
WHERE t.name = ANY(%s) ORDER BY t.name, j.job_id
"""


def _timescaledb_statuses(cursor: CursorWrapper, found: list[TimeSeries]) -> list[TableStatus]:
    tables = [series.table for series in found]
    cursor.execute(HYPERTABLES_SQL, [tables])
    facts = {row[0]: row[1:] for row in cursor.fetchall()}
    cursor.execute(JOBS_SQL, [tables])
    policies: dict[str, list[str]] = {table: [] for table in tables}
    for table, proc, every, config, started, status in cursor.fetchall():
        every_text = duration_text(every) if isinstance(every, timedelta) else every
        line = f"{proc} every {every_text} {config}; last run {started or 'never'} {status or ''}"
        policies[table].append(line.strip())
    statuses = []
    for series in found:
        chunks, oldest, newest, compressed, rows, size, before, after, unanalysed = facts[
            series.table
        ]
        statuses.append(
            TableStatus(
                table=series.table,
                kind="hypertable",
                chunk_interval=spoken(series.chunk_interval.sql()),
                chunks=chunks,
                oldest=oldest,
                newest=newest,
                row_estimate=max(int(rows or 0), 0),
                total_bytes=int(size or 0),
                compressed_chunks=compressed,
                compression_ratio=before / after if before and after else None,
                policies=policies[series.table],
                unanalysed=unanalysed,
            )
        )
    return statuses


def _aggregate_lines(cursor: CursorWrapper, tables: list[str]) -> dict[str, list[str]]:
    cursor.execute(
        "SELECT source_table, view_name, bucket_width, refreshed_at, refreshed_from,"
        " refreshed_to FROM qvp_timeseries_aggregate WHERE source_table = ANY(%s)"
        " ORDER BY source_table, view_name",
        [tables],
    )
    lines: dict[str, list[str]] = {}
    for table, name, width, at, lo, hi in cursor.fetchall():
        refreshed = (
            f"refreshed {at:%Y-%m-%d %H:%M} for {lo:%Y-%m-%d} .. {hi:%Y-%m-%d}"
            if at
            else "never refreshed"
        )
        lines.setdefault(table, []).append(f"{name} by {spoken(width)}; {refreshed}")
    return lines
