"""Bucketed OHLCV of one instrument: from the hourly or daily aggregate where it serves the
request, else from the bars themselves.

An aggregate serves a request when
- its width divides the requested one: 1h or 1d as asked, or a multiple (4h, 1w, ...), or
  whole months from the daily aggregate. Both engines bucket fixed widths from the same origin
  (Monday 2000-01-03) and months from January 2000, so every hour or day lies inside exactly
  one requested bucket and re-bucketing the aggregate's rows groups the same bars;
- start and end fall on its bucket boundaries, so it holds no bar outside [start, end);
- it covers the bars of the range: no bar lies before its first bucket or after its last one.
  Loads refresh the aggregates of the range they touch right after they commit; this check
  catches the moment in between at the edges, where new bars arrive, and costs two index
  probes. A bar changed in the middle of the range without a refresh is not detected.
Then both sources give identical rows: open and close are the first and last bar's, high and
low the extremes, volume and bar count sums (exact for whole-number volumes below 2**53,
as share counts are; fractional volumes may differ in the last bit, summed in another order).

A request ``known_at`` a moment reads the bars as the system knew them then
(``<table>_known_at``, through ``known_at`` on the querysets), never an aggregate. An aggregate
holds the present: it equals the bars as known at t only when nothing of the range was learnt
after t, no revision with known_until > t and no current row with known_from > t. The first is
an index probe of the revisions; the second is not: a row inserted after t carries its
known_from alone (no revision), and the only index that reaches it is (instrument, ts), a scan
of the whole range. The Ingest records cannot stand in for it (they hold no time range, and the
application's role may insert bars without one), so the bars are read whenever known_at is
given.

A request adjusted for corporate actions (``adjustment`` "split" or "total_return") is computed
from the adjusted bars (``BarQuerySet.adjusted``), never from an aggregate: the aggregates hold
prices as traded, and a bucket spanning an ex-date is not its aggregate times a factor (the
bars before the ex-date take one factor, those on and after it another; its open is the first
adjusted bar's, its high the highest adjusted bar's, wherever it lies).

Each read is one SELECT (``statement``: its SQL, parameters and source), which ``bucketed``
runs for the API's JSON and the bulk formats stream (``marketdata.api``), so that both give the
same rows: ``bucket`` and ``COLUMNS`` in time order, of the Django fields ``FIELDS``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from django.db import connection, models

# Django 5.1+; django-stubs does not list it yet.
from django.db.backends.postgresql.base import ServerBindingCursor  # type: ignore[attr-defined]
from django.db.models import Count
from psycopg import pq

from marketdata.models import DailyBar, MinuteBar
from qvp_site.db import engine
from qvp_site.db.buckets import bucket_sql, bucket_starts, edge_sql
from qvp_site.db.intervals import Interval, parse_interval
from qvp_site.db.quoting import ident

DAY = parse_interval("1 day")
# The aggregates of marketdata's migration 0002, coarsest first: the fewest rows to re-bucket.
AGGREGATES = (
    ("marketdata_minutebar_1d", DAY),
    ("marketdata_minutebar_1h", parse_interval("1 hour")),
)
COLUMNS = ("open", "high", "low", "close", "volume", "bar_count")
# The Django field of each column a statement gives (the bulk formats type their columns by
# them): NULL prices and volume in an empty bucket, whose bar_count is 0.
FIELDS: dict[str, models.Field[Any, Any]] = {
    "bucket": models.DateTimeField(),
    **{name: models.FloatField(null=True) for name in COLUMNS[:-1]},
    "bar_count": models.BigIntegerField(),
}
TIMEFRAMES = {"1m": MinuteBar, "1d": DailyBar}
Source = Literal["auto", "bars", "aggregate"]


@dataclass(frozen=True)
class BucketRequest:
    """OHLCV of ``instrument_id`` in buckets of ``width`` over [start, end)."""

    instrument_id: int
    width: Interval
    start: datetime
    end: datetime
    timeframe: str = "1m"  # which bars: "1m" (MinuteBar) or "1d" (DailyBar)
    known_at: datetime | None = None  # the bars as known then; None: the present
    adjustment: str = "raw"  # for corporate actions: "raw" (as traded), "split", "total_return"


@dataclass(frozen=True)
class Buckets:
    rows: list[dict]
    source: str  # the table the rows came from: a bar table or an aggregate


@dataclass(frozen=True)
class Statement:
    """The SELECT of a request's buckets: ``sql`` with its ``params`` (``%s`` placeholders),
    giving ``bucket`` and ``COLUMNS`` in time order, and the table it reads (``source``)."""

    sql: str
    params: list[Any]
    source: str


def bucket_count(width: Interval, start: datetime, end: datetime) -> int:
    """How many buckets of ``width`` [start, end) touches."""
    first, last = width.floor(start), width.floor(end - timedelta(microseconds=1))
    if width.is_calendar:
        return ((last.year - first.year) * 12 + last.month - first.month) // width.months + 1
    return (last - first) // width.fixed + 1


def bucketed(request: BucketRequest, *, fill: bool = False, source: Source = "auto") -> Buckets:
    """The buckets of ``request`` in time order; ``fill`` adds an empty row (NULL prices,
    no bars) for each bucket without bars. ``source`` "bars" or "aggregate" forces one
    (the latter only where it serves the request: see the module's docstring)."""
    found = statement(request, fill=fill, source=source)
    return Buckets(fetch(found.sql, found.params), found.source)


def statement(request: BucketRequest, *, fill: bool = False, source: Source = "auto") -> Statement:
    """The SELECT ``bucketed`` runs (the source chosen as it says), unrun: the bulk formats
    stream it on a connection of their own. Choosing an aggregate may probe the bars
    (``covers``) on Django's connection."""
    name = serving_aggregate(request) if source != "bars" else None
    if source == "aggregate" and name is None:
        raise ValueError(f"no aggregate serves {request}")
    if name is not None and (source == "aggregate" or covers(name, request)):
        return Statement(*aggregate_statement(name, request, fill), name)
    return Statement(*bars_statement(request, fill), bars_source(request))


def bars_source(request: BucketRequest) -> str:
    """What ``from_bars`` reads: the bar table, its function as known at a moment, or its
    adjusted function (which reads as known at a moment too)."""
    table = TIMEFRAMES[request.timeframe]._meta.db_table
    if request.adjustment != "raw":
        return f"{table}_adjusted"
    return table if request.known_at is None else f"{table}_known_at"


def serving_aggregate(request: BucketRequest) -> str | None:
    """The coarsest aggregate whose buckets tile the request's, aligned with its range; none
    for a request known at a moment (the aggregates hold the present) or adjusted (they hold
    prices as traded): see the docstring."""
    if request.timeframe != "1m" or request.known_at is not None or request.adjustment != "raw":
        return None
    for name, width in AGGREGATES:
        if divides(width, request.width) and all(
            width.floor(ts) == ts for ts in (request.start, request.end)
        ):
            return name
    return None


def divides(small: Interval, large: Interval) -> bool:
    """Whether buckets of ``small`` (a fixed width) never straddle two of ``large``."""
    if small.is_calendar:
        return False
    if large.is_calendar:  # a month is whole days: widths that divide a day divide it too
        return DAY.fixed % small.fixed == timedelta(0)
    return large.fixed % small.fixed == timedelta(0)


def covers(name: str, request: BucketRequest) -> bool:
    """Whether aggregate ``name`` holds a bucket for every bar of the range: no bar lies
    before its first bucket or after its last (each an index probe of a few partitions)."""
    width = dict(AGGREGATES)[name]
    key: list[Any] = [request.instrument_id, request.start, request.end]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT min(bucket), max(bucket) FROM {ident(name)}"
            " WHERE instrument_id = %s AND bucket >= %s AND bucket < %s",
            key,
        )
        first, last = cursor.fetchone()
        outside = (
            [(request.start, first), (width.add(last), request.end)]
            if first is not None
            else [(request.start, request.end)]
        )
        return not any(_bars_exist(cursor, request.instrument_id, lo, hi) for lo, hi in outside)


def _bars_exist(cursor, instrument_id: int, lower: datetime, upper: datetime) -> bool:
    if lower >= upper:
        return False
    cursor.execute(
        "SELECT EXISTS (SELECT 1 FROM marketdata_minutebar"
        " WHERE instrument_id = %s AND ts >= %s AND ts < %s)",
        [instrument_id, lower, upper],
    )
    return cursor.fetchone()[0]


def from_bars(request: BucketRequest, fill: bool = False) -> list[dict]:
    """The buckets computed from the bars (as known at ``request.known_at``, adjusted as
    ``request.adjustment`` says), through ``BarQuerySet.bucketed``."""
    return fetch(*bars_statement(request, fill))


def bars_statement(request: BucketRequest, fill: bool = False) -> tuple[str, list[Any]]:
    """``from_bars``'s SELECT and its parameters."""
    model = TIMEFRAMES[request.timeframe]
    queryset = (
        model.objects.known_at(request.known_at)
        .adjusted(request.adjustment)
        .filter(instrument_id=request.instrument_id)
        .between(request.start, request.end)
        .bucketed(request.width)
        .annotate(bar_count=Count("*"))
        .order_by()  # ordered by the SELECT around it
    )
    inner, params = queryset.query.sql_with_params()
    if fill:
        return _filled(inner, list(params), request)
    selected = ", ".join(f"q.{name}" for name in ("bucket", *COLUMNS))
    # The bucket and its columns only: the grouping also selects the instrument.
    return f"SELECT {selected} FROM ({inner}) AS q ORDER BY q.bucket", list(params)


def from_aggregate(name: str, request: BucketRequest, fill: bool = False) -> list[dict]:
    """The buckets computed from aggregate ``name``, re-bucketed where wider than it."""
    return fetch(*aggregate_statement(name, request, fill))


def aggregate_statement(
    name: str, request: BucketRequest, fill: bool = False
) -> tuple[str, list[Any]]:
    """``from_aggregate``'s SELECT and its parameters."""
    sql = aggregate_sql(name, request.width)
    params: list[Any] = [request.instrument_id, request.start, request.end]
    return _filled(sql, params, request) if fill else (sql, params)


def _filled(inner: str, params: list[Any], request: BucketRequest) -> tuple[str, list[Any]]:
    """The rows of ``inner`` (a SELECT with a ``bucket`` column and ``COLUMNS``) with an empty
    row (NULL prices, no bars) for each bucket of the request's range it lacks, in time order
    (``qvp_site.db.buckets.gapfill_sql``'s join, as one statement that is not yet run)."""
    # The last bucket is that of the last instant before ``end``: the range is half-open.
    last = request.end - timedelta(microseconds=1)
    starts = bucket_starts(request.width, request.start, last)
    prices = ", ".join(f"q.{name}" for name in COLUMNS[:-1])
    sql = (
        f"SELECT s.b AS bucket, {prices}, coalesce(q.bar_count, 0)::bigint AS bar_count"
        f" FROM unnest(%s::timestamptz[]) AS s(b) LEFT JOIN ({inner}) AS q ON q.bucket = s.b"
        " ORDER BY s.b"
    )
    return sql, [starts, *params]


def aggregate_sql(name: str, width: Interval) -> str:
    """SELECT of the buckets of ``width`` from aggregate ``name`` for one instrument and
    [start, end) (three parameters)."""
    where = "WHERE instrument_id = %s AND bucket >= %s AND bucket < %s"
    if width == dict(AGGREGATES)[name]:
        return f"SELECT bucket, {', '.join(COLUMNS)} FROM {ident(name)} {where} ORDER BY bucket"
    timescaledb = engine.is_timescaledb(connection)
    # Grouped by position: a GROUP BY name would mean the aggregate's own bucket column.
    return (
        f"SELECT {bucket_sql(width, 'bucket', timescaledb=timescaledb)} AS bucket,"
        f" {edge_sql('first', 'open', 'bucket', timescaledb=timescaledb)} AS open,"
        " max(high) AS high, min(low) AS low,"
        f" {edge_sql('last', 'close', 'bucket', timescaledb=timescaledb)} AS close,"
        f" sum(volume) AS volume, sum(bar_count)::bigint AS bar_count"
        f" FROM {ident(name)} {where} GROUP BY 1 ORDER BY 1"
    )


def fetch(sql: str, params) -> list[dict]:
    """Rows of ``sql`` as dicts, fetched in binary.

    Django's cursors bind parameters on the client, which leaves results in text, and read
    timestamps with a loader written in Python (~6 us a value): for a year of hourly buckets,
    most of the time. A server-binding cursor on the same connection (and transaction) gets
    binary results that psycopg's C loaders turn into the same values; Django's cursor
    wrapper still runs the statement, so it is logged, counted and its errors translated.
    """
    connection.ensure_connection()
    raw = ServerBindingCursor(connection.connection)
    raw.format = pq.Format.BINARY
    wrap = connection.make_debug_cursor if connection.queries_logged else connection.make_cursor
    with wrap(raw) as cursor:
        cursor.execute(sql, params)
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
