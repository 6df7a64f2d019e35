"""The security master from Python: which instrument bore a symbol on a date, the universe of a
date, and an instrument's terms stated over a range of dates. One implementation, in SQL
(marketdata/sql/listings/0011.sql): every door (ingest, API, dashboard, commands, psql) asks the
same functions, so they resolve and refuse alike.

A symbol resolves to the instrument whose version bore it on the date, as known at
``known_at`` (None: as known now); one listed or suspended then is preferred to delisted ones
(a ticker a delisted company bore last may be another's now). An unknown or ambiguous symbol
is refused with a message naming it, the date and the candidates.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

from django.db import connection

from marketdata.models import Instrument, Listing

# The resolution joined to each instrument's row: one statement however many symbols.
RESOLVE_SQL = """
SELECT r.symbol, r.problem, {columns}
FROM marketdata_resolve_symbols(%s::text[], %s::date, %s::timestamptz) r
LEFT JOIN marketdata_instrument i ON i.id = r.instrument_id
"""
SET_SQL = """
SELECT marketdata_listing_set(%s, %s::date, %s::date, %s, %s, %s, %s, %s, %s, %s, %s::jsonb)
"""
CLEAR_SQL = "SELECT marketdata_listing_clear(%s, %s::date, %s::date)"


class SymbolNotResolved(ValueError):
    """No single instrument bore a symbol on the date: the message names the symbol, the date
    and the candidates (one line per symbol)."""

    def __init__(self, problems: Sequence[str]):
        super().__init__("; ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Terms:
    """What an instrument was over a range of dates (a version of its history)."""

    symbol: str
    currency: str
    status: str = Listing.Status.LISTED
    name: str = ""
    mic: str = ""
    isin: str = ""
    figi: str = ""
    vendor_ids: dict[str, str] = field(default_factory=dict)


def today() -> date:
    """Today in UTC, the day the database's functions call today (they run in UTC)."""
    return datetime.now(UTC).date()


def resolve_many(
    symbols: Sequence[str], on: date | None = None, known_at: datetime | None = None
) -> dict[str, Instrument]:
    """Each symbol's instrument on ``on`` (default today), in one statement; refuses them all
    with every problem named when any is unknown or ambiguous."""
    wanted = list(dict.fromkeys(symbols))
    if not wanted:
        return {}
    columns = [f.attname for f in Instrument._meta.concrete_fields]
    with connection.cursor() as cursor:
        cursor.execute(
            RESOLVE_SQL.format(columns=", ".join(f"i.{c}" for c in columns)),
            [wanted, on or today(), known_at],
        )
        rows = {row[0]: row for row in cursor.fetchall()}
    problems = [rows[s][1] for s in wanted if rows[s][1] is not None]
    if problems:
        raise SymbolNotResolved(problems)
    return {s: Instrument.from_db(connection.alias, columns, rows[s][2:]) for s in wanted}


def resolve(symbol: str, on: date | None = None, known_at: datetime | None = None) -> Instrument:
    """The instrument that bore ``symbol`` on ``on`` (default today)."""
    return resolve_many([symbol], on, known_at)[symbol]


def set_terms(
    instrument_id: int, valid_from: date | None, valid_until: date | None, terms: Terms
) -> int:
    """State the instrument's terms over [valid_from, valid_until) (None: unbounded); the
    versions it replaces are kept, closed. Returns how many versions changed (0: known)."""
    params = [
        instrument_id,
        valid_from,
        valid_until,
        terms.symbol,
        terms.name,
        terms.mic,
        terms.currency,
        terms.status,
        terms.isin,
        terms.figi,
        _json(terms.vendor_ids),
    ]
    with connection.cursor() as cursor:
        cursor.execute(SET_SQL, params)
        return cursor.fetchone()[0]


def clear(instrument_id: int, valid_from: date | None, valid_until: date | None) -> int:
    """The instrument had no terms over [valid_from, valid_until) (before its first listing):
    the versions there are closed. Returns how many."""
    with connection.cursor() as cursor:
        cursor.execute(CLEAR_SQL, [instrument_id, valid_from, valid_until])
        return cursor.fetchone()[0]


def _json(value: dict[str, str]) -> str:
    return json.dumps(value, sort_keys=True)
