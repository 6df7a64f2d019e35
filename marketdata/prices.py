"""The one way to ask the latest price of instruments as of a time.

Trading, risk and the dashboard all value positions through here: the close of the newest
minute bar at or before ``as_of``, or of the newest daily bar when that is newer (an
instrument with daily data only). One statement for any number of instruments, each lookup a
backward scan of the (instrument, ts) key.

``known_at`` reads the bars as the system knew them then, by the rule of
``<table>_known_at(known_at)`` (marketdata/sql/revisions/0009.sql): the current rows learnt
by then, and the revisions current then. Written out here, one ORDER BY ts DESC LIMIT 1 per
table and per revisions table, rather than read through the function: PostgreSQL inlines the
function as a UNION ALL whose branches have WHERE clauses, which it cannot flatten into the
query (an append member may carry no quals), so the ordering never reaches their indexes and
each lookup sorted the instrument's whole history. Written out, each of the four is a
backward scan of its (instrument, ts) key that stops at the first bar known then
(``test_latest_prices_known_at_scan_the_keys_backward``); the answers are the function's
(``test_latest_prices_known_at_agree_with_the_known_at_functions``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection
from django.utils import timezone

from marketdata import adjusting
from qvp_site.db import engine

_LATEST_SQL = """
SELECT i.id, latest.ts, latest.close, latest.source
FROM unnest(%(ids)s::bigint[]) AS i(id)
CROSS JOIN LATERAL (
    SELECT ts, close, source FROM (
        (SELECT ts, close, 'minute' AS source FROM {minute}
         WHERE instrument_id = i.id AND ts <= %(as_of)s ORDER BY ts DESC LIMIT 1)
        UNION ALL
        (SELECT ts, close, 'daily' AS source FROM {daily}
         WHERE instrument_id = i.id AND ts <= %(as_of)s ORDER BY ts DESC LIMIT 1)
    ) AS candidates
    ORDER BY ts DESC LIMIT 1
) AS latest
"""
# The present: the tables themselves.
LATEST_PRICES_SQL = _LATEST_SQL.format(minute="marketdata_minutebar", daily="marketdata_dailybar")

# A table as known at %(known_at)s, each part ordered on its own key (see the docstring).
_KNOWN_AT = """(
            (SELECT instrument_id, ts, close FROM {table}
             WHERE instrument_id = i.id AND ts <= %(as_of)s AND known_from <= %(known_at)s
             ORDER BY ts DESC LIMIT 1)
            UNION ALL
            (SELECT instrument_id, ts, close FROM {table}revision
             WHERE instrument_id = i.id AND ts <= %(as_of)s AND known_from <= %(known_at)s
               AND known_until > %(known_at)s
             ORDER BY ts DESC LIMIT 1)
        ) AS {table}"""
# As known at %(known_at)s: the same lookup over the tables as they stood then.
LATEST_PRICES_KNOWN_AT_SQL = _LATEST_SQL.format(
    minute=_KNOWN_AT.format(table="marketdata_minutebar"),
    daily=_KNOWN_AT.format(table="marketdata_dailybar"),
)


# Where the market data is distributed (Citus), the lookups start from the instruments' keys,
# distributed beside the bars (qvp_site/db/distribution.py): Citus runs such a lateral lookup
# on the shards, each one's key and bars together, and refuses it from a list of values.
_FROM_IDS = "unnest(%(ids)s::bigint[]) AS i(id)"
_FROM_KEYS = "marketdata_instrument_key AS i"


def _from_keys(sql: str) -> str:
    if _FROM_IDS not in sql:
        raise RuntimeError(f"the latest prices' lookup no longer starts from {_FROM_IDS!r}")
    return sql.replace(_FROM_IDS, _FROM_KEYS) + "WHERE i.id = ANY(%(ids)s::bigint[])\n"


# Adjusted for corporate actions (marketdata/sql/actions/0012.sql): each price times its
# instrument's factor at its time, the factors computed for the instruments asked only.
_ADJUSTED_SQL = """
SELECT p.id, p.ts, p.close * marketdata_factor_at(p.ts, f.bounds, f.price_factors), p.source
FROM ({prices}) AS p
LEFT JOIN LATERAL (
    SELECT a.bounds, a.price_factors
    FROM marketdata_action_factors(%(adjustment)s::text, %(known_at)s::timestamptz) AS a
    WHERE a.instrument_id = p.id
) AS f ON true
"""


@dataclass(frozen=True)
class Price:
    instrument_id: int
    ts: datetime
    price: float
    source: str  # "minute" or "daily": which bars it came from


# The prices as given (looked up apart), for the adjustment where the engine plans no join of
# the lookup with the factors of the coordinator's corporate actions (Citus).
_GIVEN_SQL = (
    "SELECT * FROM unnest(%(given_ids)s::bigint[], %(given_ts)s::timestamptz[],"
    " %(given_closes)s::double precision[], %(given_sources)s::text[])"
    " AS given(id, ts, close, source)"
)
ADJUSTED_GIVEN_SQL = _ADJUSTED_SQL.format(prices=_GIVEN_SQL)


def latest_prices_sql(*, known: bool, adjustment: str = "raw") -> str:
    """The lookup ``latest_prices`` runs on this engine: as known at ``%(known_at)s`` or not,
    adjusted or not (where the adjustment is applied apart, the lookup alone)."""
    sql = LATEST_PRICES_KNOWN_AT_SQL if known else LATEST_PRICES_SQL
    if engine.distributes_market_data(connection):
        sql = _from_keys(sql)
    if adjustment == "raw" or _adjusted_apart(connection):
        return sql
    return _ADJUSTED_SQL.format(prices=sql)


def _adjusted_apart(connection: Any) -> bool:
    """The adjusted reads' road (marketdata/adjusting.py): the factors apart where the engine
    plans no join of the bars with the coordinator's corporate actions."""
    return adjusting.factors_apart(connection)


def latest_prices(
    instrument_ids: Iterable[int],
    as_of: datetime | None = None,
    known_at: datetime | None = None,
    adjustment: str = "raw",
) -> dict[int, Price]:
    """Latest close per instrument at or before ``as_of`` (default now), from the bars as
    known at ``known_at`` (default: as known now), adjusted for corporate actions by
    ``adjustment`` ("raw": as traded; "split", "total_return": back-adjusted by the actions
    known then with later ex-dates); instruments with no bar by then are absent."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    sql = latest_prices_sql(known=known_at is not None, adjustment=adjustment)
    params: dict[str, Any] = {
        "ids": ids,
        "as_of": as_of or timezone.now(),
        "known_at": known_at,
        "adjustment": adjustment,
    }
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
        if adjustment != "raw" and _adjusted_apart(connection):
            # The prices found, then adjusted in a statement of the coordinator's own tables.
            columns = ("given_ids", "given_ts", "given_closes", "given_sources")
            params |= {column: [row[i] for row in rows] for i, column in enumerate(columns)}
            cursor.execute(ADJUSTED_GIVEN_SQL, params)
            rows = cursor.fetchall()
        return {row[0]: Price(*row) for row in rows}


def latest_prices_at(
    wanted: Iterable[tuple[int, datetime]], known_at: datetime | None = None
) -> list[tuple[int, datetime, datetime, float, str]]:
    """(instrument, as_of, ts, close, source) for each (instrument, as_of) pair of ``wanted``
    that has a bar by then, the bars as known at ``known_at``: one lookup of all the
    instruments wanted at each time. For a caller whose engine cannot look up the pairs
    inside a statement of its own (the snapshots' on Citus)."""
    by_time: dict[datetime, set[int]] = {}
    for instrument, as_of in wanted:
        by_time.setdefault(as_of, set()).add(instrument)
    found = []
    for as_of, instruments in sorted(by_time.items()):
        for price in latest_prices(instruments, as_of, known_at).values():
            found.append((price.instrument_id, as_of, price.ts, price.price, price.source))
    return found
