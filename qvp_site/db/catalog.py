"""The time-series catalog: which tables are time series, their policies and aggregates.

Kept in two tables of our own (qvp_site/sql/timeseries/0001.sql) so that both engines
answer the same questions; on TimescaleDB its own catalog holds the chunks and jobs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings

from qvp_site.db.intervals import Interval, parse_interval

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper


def retention_in_force(table: str, default: str | None) -> Interval | None:
    """The retention of ``table``: the QVP_RETENTION setting, else ``default`` (the migration's);
    None for none. A migration calls it with the default from its arguments (it must not read
    the catalog), the catalog's readers with the default recorded."""
    value = settings.QVP_RETENTION.get(table, default)
    if value is None or str(value).strip().lower() in {"", "off", "none"}:
        return None
    return parse_interval(value)


@dataclass(frozen=True)
class TimeSeries:
    table: str
    time_column: str
    chunk_interval: Interval
    retention_default: str | None
    compress_after: str | None
    segment_by: list[str] = field(default_factory=list)
    order_by: str | None = None

    @property
    def retention(self) -> Interval | None:
        """The retention in force: the QVP_RETENTION setting, else the migration's default."""
        return retention_in_force(self.table, self.retention_default)


@dataclass(frozen=True)
class Aggregate:
    name: str
    source_table: str
    time_column: str
    bucket_width: Interval
    group_by: list[str]
    columns: list[tuple[str, str, str]]
    refresh_window: Interval


def time_series(cursor: CursorWrapper, table: str | None = None) -> list[TimeSeries]:
    where, params = ("WHERE table_name = %s", [table]) if table else ("", [])
    cursor.execute(
        "SELECT table_name, time_column, chunk_interval, retention_default, compress_after,"
        f" compress_segment_by, compress_order_by FROM qvp_timeseries_table {where}"
        " ORDER BY table_name",
        params,
    )
    return [
        TimeSeries(row[0], row[1], parse_interval(row[2]), row[3], row[4], list(row[5]), row[6])
        for row in cursor.fetchall()
    ]


def aggregates(cursor: CursorWrapper, source_table: str | None = None) -> list[Aggregate]:
    where, params = ("WHERE source_table = %s", [source_table]) if source_table else ("", [])
    cursor.execute(
        "SELECT view_name, source_table, time_column, bucket_width, group_by, columns,"
        f" refresh_window FROM qvp_timeseries_aggregate {where} ORDER BY view_name",
        params,
    )
    rows = cursor.fetchall()
    return [
        Aggregate(
            name=row[0],
            source_table=row[1],
            time_column=row[2],
            bucket_width=parse_interval(row[3]),
            group_by=list(row[4]),
            columns=[
                tuple(c) for c in (row[5] if isinstance(row[5], list) else json.loads(row[5]))
            ],
            refresh_window=parse_interval(row[6]),
        )
        for row in rows
    ]
