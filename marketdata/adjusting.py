"""Bars adjusted for corporate actions where the engine cannot call ``<table>_adjusted``.

On one node a read of adjusted bars calls ``<table>_adjusted(adjustment, known_at, from)``
(marketdata/sql/actions/0013.sql), a SQL function PostgreSQL inlines: the factors of the
actions are computed in the same plan as the read of the bars. Citus refuses that function
inside a query over its distributed bars ("parameterized queries for SQL functions
referencing distributed tables are not supported"), and the actions live on the coordinator
while the bars live on the workers. There the factors are computed apart, in a statement of
their own (``marketdata_action_factors``, Citus's version marketdata/sql/factors_on_citus),
and given to the read of the bars as parameters: a list Citus sends with the query to the
shards, so a read of one instrument stays on its one shard. The body of the read is the
function's, written out: each price times its instrument's factor at its time
(``marketdata_factor_at``), the volume times the volume factor, the rest as stored.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from django.db.backends.base.base import BaseDatabaseWrapper

from qvp_site.db import engine

# The columns of a bar a factor multiplies; the rest are read as stored.
PRICE_COLUMNS = frozenset({"open", "high", "low", "close", "vwap"})
VOLUME_COLUMNS = frozenset({"volume"})

# The bounds as microseconds since the epoch: text of numbers, which no session's DateStyle
# reads otherwise; the factors' text is exact (PostgreSQL writes the shortest exact digits).
_FACTORS_SQL = (
    "SELECT instrument_id,"
    " ARRAY(SELECT (extract(epoch FROM b) * 1000000)::bigint"
    " FROM unnest(bounds) WITH ORDINALITY AS u(b, n) ORDER BY n)::text,"
    " price_factors::text, volume_factors::text"
    " FROM marketdata_action_factors(%s::text, %s::timestamptz, %s::timestamptz)"
)

# The factors given, one row per instrument; the arrays travel as text, since a list of
# arrays of different lengths is no array PostgreSQL has.
_GIVEN_FACTORS_SQL = (
    "(SELECT g.instrument_id,"
    " ARRAY(SELECT timestamptz 'epoch' + us * interval '1 microsecond'"
    " FROM unnest(g.bounds::bigint[]) WITH ORDINALITY AS u(us, n) ORDER BY n) AS bounds,"
    " g.price_factors::double precision[] AS price_factors,"
    " g.volume_factors::double precision[] AS volume_factors"
    " FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[])"
    " AS g(instrument_id, bounds, price_factors, volume_factors))"
)


def factors_apart(connection: BaseDatabaseWrapper) -> bool:
    """Whether adjusted reads take their factors in a statement of their own (Citus)."""
    return engine.distributes_market_data(connection)


def known_at_sql(table: str, moment: datetime, quote: Any) -> tuple[str, list[Any]]:
    """The body of ``<table>_known_at(moment)`` (marketdata/sql/revisions/0018.sql), written
    out as a subquery: the versions of the rows, ``<table>_history``, current at the moment.
    What PostgreSQL inlines the function into (the same plan), and what Citus can plan, which
    refuses SQL functions over distributed tables whatever their arguments."""
    history = quote(f"{table}_history")
    return (
        f"(SELECT * FROM {history} WHERE known_from <= %s::timestamptz"
        " AND (known_until IS NULL OR known_until > %s::timestamptz))",
        [moment, moment],
    )


def revised_at_sql(
    table: str, columns: Sequence[str], moment: datetime, quote: Any
) -> tuple[str, list[Any]]:
    """The revisions of ``table``'s rows current at ``moment``, under the table's ``columns``
    (``id`` the revised row's): the second branch of ``<table>_history`` as known then. With
    the table's rows known then (``known_from <= moment``), the rows ``known_at_sql`` reads,
    for a lookup Citus must run on the shards, where it cannot run the view's UNION."""
    selected = ", ".join(f"row_id AS {quote(c)}" if c == "id" else quote(c) for c in columns)
    return (
        f"(SELECT {selected} FROM {quote(f'{table}revision')}"
        " WHERE known_from <= %s::timestamptz AND known_until > %s::timestamptz)",
        [moment, moment],
    )


def raw_bars_sql(
    connection: BaseDatabaseWrapper, table: str, known_at: datetime | None
) -> tuple[str, list[Any]]:
    """The bars of ``table`` as traded, as known at ``known_at``: the table itself (None: as
    known now), or the body of its ``_known_at`` written out, and the parameters."""
    quote = connection.ops.quote_name
    return (quote(table), []) if known_at is None else known_at_sql(table, known_at, quote)


def adjusted_bars_sql(
    connection: BaseDatabaseWrapper,
    columns: Sequence[str],
    bars: tuple[str, list[Any]],
    adjustment: str,
    known_at: datetime | None,
    start: datetime | None = None,
    instruments: Sequence[int] | None = None,
) -> tuple[str, list[Any]]:
    """A subquery of the bars ``bars`` (a table, or a subquery and its parameters) with
    ``columns`` adjusted by ``adjustment`` for the actions known at ``known_at``, the factors
    computed now, for the bars at or after ``start`` (None: all) of ``instruments`` (None:
    every instrument with actions)."""
    factors = _factors(connection, adjustment, known_at, start, instruments)
    quote = connection.ops.quote_name
    selected = ", ".join(_adjusted_column(column, quote) for column in columns)
    source, params = bars
    sql = (
        f"(SELECT {selected} FROM {source} AS b LEFT JOIN {_GIVEN_FACTORS_SQL} AS f"
        " ON f.instrument_id = b.instrument_id)"
    )
    return sql, [*params, *factors]


def _adjusted_column(column: str, quote: Any) -> str:
    name = quote(column)
    if column in PRICE_COLUMNS:
        return f"b.{name} * marketdata_factor_at(b.ts, f.bounds, f.price_factors) AS {name}"
    if column in VOLUME_COLUMNS:
        return f"b.{name} * marketdata_factor_at(b.ts, f.bounds, f.volume_factors) AS {name}"
    return f"b.{name}"


def _factors(
    connection: BaseDatabaseWrapper,
    adjustment: str,
    known_at: datetime | None,
    start: datetime | None,
    instruments: Sequence[int] | None,
) -> list[list[Any]]:
    """The four parameters of ``_GIVEN_FACTORS_SQL``: the instruments and, as text, their
    bounds and factors."""
    sql = _FACTORS_SQL
    params: list[Any] = [adjustment, known_at, start]
    if instruments is not None:
        sql += " WHERE instrument_id = ANY(%s::bigint[])"
        params.append(list(instruments))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [[row[i] for row in rows] for i in range(4)]
