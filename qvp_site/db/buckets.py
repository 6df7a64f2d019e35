"""Time buckets that give the same answer on both engines.

TimescaleDB renders ``time_bucket``; plain PostgreSQL renders ``date_bin`` from the same
origin (Monday 2000-01-03, so weeks start on Monday), and calendar truncation for months and
years, which ``date_bin`` refuses. ``Bucket`` is the queryset expression; ``bucket_sql`` is the
same thing for SQL written by hand (aggregates).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.db import connections, models
from timescale.db.models.expressions import TimeBucket

from qvp_site.db import engine
from qvp_site.db.intervals import Interval, parse_interval

if TYPE_CHECKING:
    from django.db.backends.base.base import BaseDatabaseWrapper
    from django.db.models.expressions import Combinable
    from django.db.models.sql.compiler import SQLCompiler, _AsSqlType

FIXED_ORIGIN_SQL = "TIMESTAMPTZ '2000-01-03 00:00:00+00'"


def bucket_sql(width: Interval, column_sql: str, *, timescaledb: bool) -> str:
    """SQL for the start of the bucket of ``width`` holding ``column_sql``."""
    literal = f"INTERVAL '{width.sql()}'"
    if timescaledb:
        return f"time_bucket({literal}, {column_sql})"
    if width.is_calendar:
        return f"qvp_bucket_floor({literal}, {column_sql})"
    return f"date_bin({literal}, {column_sql}, {FIXED_ORIGIN_SQL})"


class Bucket(models.Func):
    """``Bucket("ts", "1h")``: the start of each row's bucket, on whichever engine is in use."""

    output_field = models.DateTimeField()

    def __init__(self, expression: str | Combinable, width: str | Interval, **extra: Any) -> None:
        self.width = parse_interval(width)
        super().__init__(expression, **extra)

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _AsSqlType:
        if engine.is_timescaledb(connection):
            # django-timescaledb's expression where it fits: fixed widths and whole months.
            ts_expr = TimeBucket(self.source_expressions[0], self.width.sql())
            return compiler.compile(ts_expr)
        column_sql, params = compiler.compile(self.source_expressions[0])
        return bucket_sql(self.width, column_sql, timescaledb=False), params


def bucket_starts(width: str | Interval, start: datetime, end: datetime) -> list[datetime]:
    """Every bucket start from the bucket of ``start`` to that of ``end`` (for gap filling)."""
    width = parse_interval(width)
    current, last = width.floor(start), width.floor(end)
    starts = []
    while current <= last:
        starts.append(current)
        current = width.add(current)
    return starts


def gapfill(
    queryset: models.QuerySet[Any, dict[str, Any]],
    width: str | Interval,
    start: datetime,
    end: datetime,
    *,
    bucket: str = "bucket",
) -> list[dict[str, Any]]:
    """The rows of a bucketed ``values()`` queryset with one row of NULLs per missing bucket,
    from the bucket of ``start`` to that of ``end``, in time order (set-based, in SQL)."""
    inner, params = queryset.order_by().query.sql_with_params()
    return gapfill_sql(inner, params, width, start, end, bucket=bucket, using=queryset.db)


def gapfill_sql(
    inner: str,
    params: Sequence[Any],
    width: str | Interval,
    start: datetime,
    end: datetime,
    *,
    bucket: str = "bucket",
    using: str = "default",
) -> list[dict[str, Any]]:
    """``gapfill`` for a SELECT written by hand that has a ``bucket`` column."""
    starts = bucket_starts(width, start, end)
    with connections[using].cursor() as cursor:
        cursor.execute(
            f"SELECT s.b, q.* FROM unnest(%s::timestamptz[]) AS s(b)"
            f" LEFT JOIN ({inner}) AS q ON q.{bucket} = s.b ORDER BY s.b",
            [starts, *params],
        )
        names = [col.name for col in cursor.description]
        return [
            {
                bucket: row[0],
                **{n: v for n, v in zip(names[1:], row[1:], strict=True) if n != bucket},
            }
            for row in cursor.fetchall()
        ]


def edge_sql(function: str, value_sql: str, by_sql: str, *, timescaledb: bool) -> str:
    """SQL for the ``first`` or ``last`` value of a group in the order of ``by_sql``.

    TimescaleDB has first()/last(). On plain PostgreSQL both read an array of the group's
    values in ascending order: with one direction for all of them, the planner (PostgreSQL
    16+) sorts the input once by group and time and no aggregate sorts its group again; first
    takes element 1, last element count(*) (array_agg keeps NULLs, so the array holds every
    row). Against one array_agg in each direction, hourly buckets of a year of minute bars
    take about a quarter less time.
    """
    if function not in ("first", "last"):
        raise ValueError(f"edge_sql: {function!r} is neither first nor last")
    if timescaledb:
        return f"{function}({value_sql}, {by_sql})"
    element = "1" if function == "first" else "count(*)"
    return f"(array_agg({value_sql} ORDER BY {by_sql} ASC))[{element}]"


class _ValueAtEdge(models.Aggregate):
    """The value of the first or last row of a group in the order of ``by`` (a time column)."""

    output_field = models.FloatField()
    edge: str

    def __init__(self, expression: str | Combinable, by: str = "ts", **extra: Any) -> None:
        super().__init__(expression, models.F(by), **extra)

    def as_sql(
        self,
        compiler: SQLCompiler,
        connection: BaseDatabaseWrapper,
        function: str | None = None,
        template: str | None = None,
        arg_joiner: str | None = None,
        **extra_context: Any,
    ) -> _AsSqlType:
        value_sql, value_params = compiler.compile(self.source_expressions[0])
        by_sql, by_params = compiler.compile(self.source_expressions[1])
        timescaledb = engine.is_timescaledb(connection)
        sql = edge_sql(self.edge, value_sql, by_sql, timescaledb=timescaledb)
        return sql, (*value_params, *by_params)


class First(_ValueAtEdge):
    """``first(value, ts)``, on either engine (see ``edge_sql``)."""

    name = "First"
    edge = "first"


class Last(_ValueAtEdge):
    """``last(value, ts)``, on either engine (see ``edge_sql``)."""

    name = "Last"
    edge = "last"
