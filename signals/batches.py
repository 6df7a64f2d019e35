"""Signals recorded in batches (the API's ``POST /api/v1/signals/``), checked and written by
the database: the batch is sent as one JSON parameter and staged, typed and checked by one
statement, then written by one INSERT ... SELECT, whatever its size. A signal recorded already
(same agent, symbol and time) is left as it was; nothing is written from a batch with a bad
item.

The staging statement types each item's fields where they have the form a client (or DRF's own
answers) writes them: a JSON string for the agent, the symbol, the time (ISO 8601) and the
horizon (``"1 00:00:00"``, ``"P1D"``), JSON numbers for the direction, strength and
confidence, an object for the explanation. An item in that form that keeps every rule is
*typed*: its values are exactly those the API's serializer would make of it (the same trimmed
names, instant, float and interval), so it needs no serializer. Then its agent is looked up by
name and its symbol on the signal's (UTC) date by the security master, and a repeat of an
earlier item's agent, symbol and time is found, for every typed item at once.

Anything else (a number sent as text, a date without a time, a value out of range, a field
missing...) is *untyped*: the API's serializer reads those items alone, as it always has, for
its messages naming each field, or for the values it makes of them (``canonical``), which the
batch is then staged again with. A batch of well-formed signals never meets the serializer.
"""

from __future__ import annotations

import itertools
import json
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone
from django.utils.duration import duration_string

from qvp_site.api.fields import EARLIEST, LATEST
from qvp_site.db import partitions
from signals.models import Signal

# Each batch's staging table has a name of its own (a second batch in one transaction, a
# test's, finds no table in its way), and goes at the end of the transaction (ON COMMIT DROP).
_BATCHES = itertools.count(1)
TABLE = Signal._meta.db_table
MAX_HORIZON = timedelta(days=366)

# What str.strip() removes (DRF trims names so): every character Python calls whitespace.
WHITESPACE = (
    "\t\n\x0b\x0c\r\x1c\x1d\x1e\x1f \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# Times as ISO 8601 writes them, with an offset (or, where the API reads times in UTC,
# without), in forms that Python's datetime.fromisoformat and PostgreSQL read alike: no leap
# second, no hour 24, at most microseconds.
_CLOCK = r"([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]{1,6})?"
TS_WITH_OFFSET = (
    rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T{_CLOCK}(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$"
)
TS_NAIVE = rf"^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}T{_CLOCK}$"
# Horizons as DRF writes them ("[D ]HH:MM:SS[.ffffff]") and whole days in ISO 8601 ("P1D").
HORIZON_CLOCK = rf"^([0-9]{{1,3}} )?{_CLOCK}$"
HORIZON_DAYS = r"^P[0-9]{1,3}D$"

# Which items are typed, their values, their agent and instrument, and the first item with
# their agent, symbol and time. ``%(items)s``: the batch, a JSON array.
STAGE_SQL = """
WITH items AS (  -- each item's fields as JSON (none for an item that is not an object)
    SELECT (e.n - 1)::int AS idx, jsonb_typeof(e.d) = 'object' AS is_object, f.*,
           -- Absent, not null (which jsonb_to_record reads as absent): the serializer's
           -- default.
           e.d -> 'direction' IS NULL AS no_direction,
           e.d -> 'explanation' IS NULL AS no_explanation
    FROM jsonb_array_elements(%(items)s::jsonb) WITH ORDINALITY AS e(d, n)
    CROSS JOIN LATERAL jsonb_to_record(
        CASE WHEN jsonb_typeof(e.d) = 'object' THEN e.d ELSE '{}'::jsonb END
    ) AS f(agent jsonb, symbol jsonb, ts jsonb, direction jsonb, strength jsonb,
           confidence jsonb, horizon jsonb, explanation jsonb)
),
raw AS (  -- each field where it has the JSON type of its typed form
    SELECT idx, is_object,
           CASE WHEN jsonb_typeof(agent) = 'string'
                THEN btrim(agent #>> '{}', %(space)s) END AS agent,
           CASE WHEN jsonb_typeof(symbol) = 'string'
                THEN btrim(symbol #>> '{}', %(space)s) END AS symbol,
           CASE WHEN jsonb_typeof(ts) = 'string' THEN ts #>> '{}' END AS ts,
           CASE WHEN no_direction THEN 'absent'
                WHEN jsonb_typeof(direction) = 'number' THEN direction #>> '{}' END AS direction,
           CASE WHEN jsonb_typeof(strength) = 'number'
                THEN strength::numeric END AS strength,
           CASE WHEN jsonb_typeof(confidence) = 'number'
                THEN confidence::numeric END AS confidence,
           CASE WHEN jsonb_typeof(horizon) = 'string' THEN horizon #>> '{}' END AS horizon,
           CASE WHEN no_explanation THEN '{}'::jsonb
                WHEN jsonb_typeof(explanation) = 'object' THEN explanation END
               AS explanation
    FROM items
),
valued AS (  -- the values, where the text is in a form both readers read alike
    SELECT idx, is_object, agent, symbol, explanation,
           CASE WHEN ts ~ %(ts_offset)s AND pg_input_is_valid(ts, 'timestamptz')
                THEN ts::timestamptz
                WHEN %(naive_utc)s AND ts ~ %(ts_naive)s AND pg_input_is_valid(ts, 'timestamp')
                THEN ts::timestamp AT TIME ZONE 'UTC' END AS ts,
           CASE WHEN direction = 'absent' THEN 'absent'
                WHEN direction::numeric IN (-1, 0, 1) THEN direction::numeric::int::text
           END AS direction,
           CASE WHEN strength BETWEEN -1e300 AND 1e300 THEN strength::float8 END AS strength,
           CASE WHEN confidence BETWEEN -1e300 AND 1e300 THEN confidence::float8 END
               AS confidence,
           -- PostgreSQL reads "D HH:MM:SS" as D days and the time, as psycopg writes a
           -- timedelta's days and seconds.
           CASE WHEN horizon ~ %(horizon_clock)s OR horizon ~ %(horizon_days)s
                THEN horizon::interval END AS horizon
    FROM raw
),
checked AS (  -- typed: every rule of the serializer and the table kept
    SELECT idx, agent, symbol, ts, strength, confidence, horizon, explanation,
           sign(strength)::smallint AS direction,
           coalesce(
               is_object
               AND char_length(agent) BETWEEN 1 AND 100 AND char_length(symbol) BETWEEN 1 AND 64
               AND ts >= %(earliest)s AND ts < %(latest)s
               AND strength BETWEEN -1 AND 1 AND confidence BETWEEN 0 AND 1
               AND direction IN ('absent', sign(strength)::smallint::text)
               AND horizon > interval '0' AND horizon <= %(max_horizon)s
               AND explanation IS NOT NULL,
               false) AS typed
    FROM valued
),
wanted AS (  -- each date's symbols
    SELECT (ts AT TIME ZONE 'UTC')::date AS day, array_agg(DISTINCT symbol COLLATE "C") AS symbols
    FROM checked WHERE typed GROUP BY 1
),
bearers AS (  -- each symbol's instrument on the date, or why there is none
    SELECT w.day, r.symbol, r.instrument_id, r.problem
    FROM wanted w CROSS JOIN LATERAL marketdata_resolve_symbols(w.symbols, w.day, NULL) AS r
),
agents AS MATERIALIZED (  -- the batch's agents, read once (the join hashes them)
    SELECT id, name, active FROM signals_agent
    WHERE name IN (SELECT agent FROM checked WHERE typed)
),
firsts AS (  -- the first typed item of each agent, symbol and time (equal texts: equal bytes)
    SELECT agent COLLATE "C" AS agent, symbol COLLATE "C" AS symbol, ts, min(idx) AS first
    FROM checked WHERE typed GROUP BY 1, 2, 3
)
SELECT c.idx, c.typed, c.agent, a.id AS agent_id, a.active AS agent_active,
       b.instrument_id, b.problem AS symbol_problem, f.first,
       c.ts, c.direction, c.strength, c.confidence, c.horizon, c.explanation
FROM checked c
LEFT JOIN agents a ON c.typed AND a.name = c.agent
LEFT JOIN bearers b ON c.typed AND b.day = (c.ts AT TIME ZONE 'UTC')::date
                       AND b.symbol = c.symbol
LEFT JOIN firsts f ON c.typed AND f.agent = c.agent COLLATE "C"
                      AND f.symbol = c.symbol COLLATE "C" AND f.ts = c.ts
"""

# An item that can be written: typed, its agent known and active, its symbol borne, and the
# first with its agent, symbol and time.
WRITABLE = "(typed AND agent_active AND instrument_id IS NOT NULL AND first = idx)"


def times_sql(stage: str) -> str:
    """The times of a batch that will be written (none where any item is bad): the
    partitions to make are theirs."""
    bad = f"SELECT 1 FROM {stage} WHERE {WRITABLE} IS NOT TRUE"
    return f"SELECT ts FROM {stage} WHERE NOT EXISTS ({bad})"


def write_sql(stage: str) -> str:
    """The batch written, or, where any item is bad, nothing written and the bad items
    returned."""
    return f"""
WITH problems AS (
    SELECT idx, typed, agent, agent_id IS NOT NULL AS agent_known, agent_active,
           symbol_problem, first
    FROM {stage} WHERE {WRITABLE} IS NOT TRUE
),
written AS (
    INSERT INTO {TABLE}
        (agent_id, instrument_id, ts, direction, strength, confidence, horizon, explanation)
    SELECT agent_id, instrument_id, ts, direction, strength, confidence, horizon, explanation
    FROM {stage} WHERE NOT EXISTS (SELECT 1 FROM problems) ORDER BY idx
    ON CONFLICT (agent_id, instrument_id, ts) DO NOTHING
    RETURNING 1
)
SELECT (SELECT count(*) FROM written),
       (SELECT json_agg(json_build_array(idx, typed, agent, agent_known, agent_active,
                                         symbol_problem, first) ORDER BY idx)
        FROM problems)
"""


@dataclass(frozen=True)
class ItemProblem:
    """A bad item: untyped (for the serializer to name its fields), or typed with its name
    problems (its agent unknown or inactive, its symbol not borne, a repeat of ``first``)."""

    index: int
    typed: bool
    agent: str | None
    agent_known: bool | None
    agent_active: bool | None
    symbol_problem: str | None
    first: int | None

    def by_field(self) -> dict[str, list[str]]:
        """A typed item's problems by field, in the words the API has always used."""
        problems: dict[str, list[str]] = {}
        if not self.agent_known:
            problems["agent"] = [f"unknown agent {self.agent!r}"]
        elif not self.agent_active:
            problems["agent"] = [f"agent {self.agent!r} is not active"]
        if self.symbol_problem is not None:
            problems["symbol"] = [self.symbol_problem]
        if self.first is not None and self.first != self.index:
            problems["ts"] = [f"repeats the agent, symbol and time of item {self.first}"]
        return problems


@dataclass(frozen=True)
class BatchWritten:
    """What a batch came to: how many signals were new, or the bad items (nothing written)."""

    created: int
    problems: list[ItemProblem]


def write(items: list[Any]) -> BatchWritten:
    """Stage the batch, check it, make the partitions it needs and write it, or write
    nothing and return its bad items. TooManyPartitions where a clean batch would make more
    new partitions than a load may."""
    params: dict[str, Any] = {
        "items": dumped(items),
        "space": WHITESPACE,
        "ts_offset": TS_WITH_OFFSET,
        "ts_naive": TS_NAIVE,
        # A time without an offset is UTC where the API reads times in UTC (the settings);
        # elsewhere the serializer reads it.
        "naive_utc": timezone.get_current_timezone_name() == "UTC",
        "horizon_clock": HORIZON_CLOCK,
        "horizon_days": HORIZON_DAYS,
        "earliest": EARLIEST,
        "latest": LATEST,
        "max_horizon": MAX_HORIZON,
    }
    name = f"qvp_signal_batch_{next(_BATCHES)}"
    stage = f"pg_temp.{name}"
    with _transaction(), connection.cursor() as cursor:
        cursor.execute(f"CREATE TEMP TABLE {name} ON COMMIT DROP AS {STAGE_SQL}", params)
        # Only where the batch's signals fall; TooManyPartitions for more new ones than a
        # load may make. None where any item is bad: nothing will be written.
        needs = partitions.rows_needs(cursor, TABLE, times_sql(stage))
        if needs is not None:
            partitions.make_needed(needs)
        cursor.execute(write_sql(stage))
        created, problems = cursor.fetchone()
    return BatchWritten(int(created), [ItemProblem(*row) for row in problems or []])


def _transaction() -> AbstractContextManager[Any]:
    """The request's transaction (the staging table lives as long); a transaction of its own
    where there is none. Never a savepoint of its own: make_needed's refusal rolls back its
    own, and leaves the request's transaction usable for the answer."""
    return nullcontext() if connection.in_atomic_block else transaction.atomic()


def dumped(items: list[Any]) -> str:
    """The batch as JSON text; an item holding a number JSON cannot carry (a float beyond
    its range, which Python's decoder reads as infinity) is sent as null: untyped."""
    try:
        return json.dumps(items, allow_nan=False)
    except ValueError:
        return "[" + ",".join(_item_json(item) for item in items) + "]"


def _item_json(item: Any) -> str:
    try:
        return json.dumps(item, allow_nan=False)
    except ValueError:
        return "null"


def canonical(valid: dict[str, Any]) -> dict[str, Any]:
    """An item as the API's serializer validated it, in the typed form the staging reads
    back to the same values: the names trimmed, the time with its offset, the horizon as
    DRF writes durations."""
    return {
        "agent": valid["agent"],
        "symbol": valid["symbol"],
        "ts": valid["ts"].isoformat(),
        "direction": valid["direction"],
        "strength": valid["strength"],
        "confidence": valid["confidence"],
        "horizon": duration_string(valid["horizon"]),
        "explanation": valid["explanation"],
    }
