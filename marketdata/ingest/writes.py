"""Writing the checked rows into their table from the staging table.

A range the table holds nothing of takes a straight INSERT ... SELECT. Otherwise the rows are
merged by ``marketdata_merge_bars`` on (instrument, ts) or ``marketdata_merge_ticks`` on
(instrument, ts, sequence) (marketdata/sql/revisions/0009.sql), functions that run as the owner:
the application's role may insert market data but never UPDATE or DELETE it, so the one rewrite
of a stored row is theirs. They rewrite a row only when a value differs, keeping the row it
replaces as a revision, so that re-ingesting a file rewrites and keeps nothing; a bar file
sets only the roles it has (a file without volume leaves volume alone). Loads of one table and
instrument take turns (``marketdata_take_turn``), so what a load compares with stays as it saw.

A file its vendor split-adjusted through a date (``--adjusted-through``: Yahoo's Close) has
the adjustment divided out in the staging table first (``undo_vendor_splits``), so that its
prices are stored as traded and the reads adjust them once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from django.db import connection

from marketdata.ingest.checks import rows_sql
from marketdata.ingest.targets import BAR_ROLES, ROLE_TYPES, Target
from qvp_site.db import engine
from qvp_site.db.quoting import ident
from qvp_site.loading.layout import Layout
from qvp_site.loading.staging import STAGE

# The position among rows of the same time, for ticks whose file has no trade id.
_POSITION_SQL = "row_number() OVER (PARTITION BY ts ORDER BY line) - 1"

# A tick with a price is a trade, one without a quote.
_KIND_SQL = "CASE WHEN price IS NULL THEN 'quote' ELSE 'trade' END"
# The columns of a stored tick besides its instrument, in marketdata_merge_ticks's order.
TICK_COLUMNS = (
    "ts", "sequence", "kind", "price", "size", "bid", "ask", "bid_size", "ask_size", "side",
)  # fmt: skip

# Lines of a file per call of marketdata_merge_bars: a million bars make arrays of 8 MB each.
MERGE_SLICE = 1_000_000


@dataclass(frozen=True)
class Written:
    inserted: int
    updated: int  # rows revised: each one's old values kept as a revision


def take_turn(cursor, target: Target, instrument_id: int) -> None:
    """Wait for any other load of the table and instrument to end (until this transaction's)."""
    cursor.execute("SELECT marketdata_take_turn(%s::regclass, %s)", [target.table, instrument_id])


def owner_writes_alone(cursor, target: Target) -> bool:
    """Whether a load that created its instrument must leave every access to the shards to the
    owner's merge: on Citus, for a role that does not own the table. There the instrument's key
    was written by the owner's trigger (qvp_site/db/distribution.py) on the shard where its rows
    go, and Citus refuses, in one transaction, a shard's rows written by one role and then read
    or written by another: by the owner itself, not a member of it (Citus's connections are the
    current user's)."""
    if not engine.distributes_market_data(connection):
        return False
    cursor.execute(
        "SELECT relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)"
        " FROM pg_class WHERE oid = %s::regclass",
        [target.table],
    )
    return cursor.fetchone()[0]


def holds_rows(cursor, target: Target, instrument_id: int, start: datetime, end: datetime) -> bool:
    """Whether the table has any row of the instrument in [start, end]."""
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {ident(target.table)}"
        " WHERE instrument_id = %s AND ts BETWEEN %s AND %s)",
        [instrument_id, start, end],
    )
    return cursor.fetchone()[0]


# The roles a split scales: prices by the price factor, volume by the volume factor.
_PRICE_ROLES = ("open", "high", "low", "close", "vwap")
_VOLUME_ROLES = ("volume",)

# What the vendor multiplied a row's values by: the product of the factors of the splits (and
# stock dividends) with ex-dates after the row's time and on or before the date it adjusted
# through. marketdata_factor_at(t, ...) is the product over the ex-dates after t; with
# `through` the instrument's ex moment of that date (00:00 there east of UTC, else 00:00 UTC:
# marketdata_ex_moment), factor_at(through) is the product over the ex-dates after the date, and
#   vendor(ts) = factor_at(least(ts, through)) / factor_at(through)
# (1 for a row on or after `through`: every split the vendor applied was before it). The values
# as traded are the file's divided by it. The current actions (known_at NULL): what the vendor
# had applied when it wrote the file is the history known now.
_UNDO_VENDOR_SQL = """
UPDATE {stage} AS s SET {assignments}
FROM (
    SELECT r.line,
           marketdata_factor_at(t.through, f.bounds, f.price_factors)
           / marketdata_factor_at(least(r.ts, t.through), f.bounds, f.price_factors) AS price,
           marketdata_factor_at(t.through, f.bounds, f.volume_factors)
           / marketdata_factor_at(least(r.ts, t.through), f.bounds, f.volume_factors) AS volume
    FROM (SELECT line, {ts} AS ts FROM {stage}) AS r
    CROSS JOIN (SELECT marketdata_ex_moment(%s::bigint, %s::date) AS through) AS t
    CROSS JOIN (SELECT a.bounds, a.price_factors, a.volume_factors
                FROM marketdata_action_factors('split', NULL) AS a
                WHERE a.instrument_id = %s) AS f
    WHERE r.ts < t.through
) AS u
WHERE s.line = u.line AND (u.price <> 1 OR u.volume <> 1)
"""


def undo_vendor_splits(
    cursor, layout: Layout, tz: str, instrument_id: int, adjusted_through: date
) -> int:
    """Divide the vendor's split adjustment through ``adjusted_through`` out of the staged rows
    of ``instrument_id`` (one UPDATE of the staging table; see _UNDO_VENDOR_SQL); how many
    rows it changed. An instrument with no split known changes none."""
    scaled = [(r, "price") for r in _PRICE_ROLES if r in layout.roles]
    scaled += [(r, "volume") for r in _VOLUME_ROLES if r in layout.roles]
    assignments = ", ".join(
        f"{ident(layout.roles[role])} = s.{ident(layout.roles[role])} * u.{factor}"
        for role, factor in scaled
    )
    sql = _UNDO_VENDOR_SQL.format(stage=STAGE, assignments=assignments, ts=layout.ts_sql(tz))
    cursor.execute(sql, [instrument_id, adjusted_through, instrument_id])
    return cursor.rowcount


def write(
    cursor,
    layout: Layout,
    target: Target,
    tz: str,
    instrument_id: int,
    *,
    upsert: bool,
    ingest_id: int,
) -> Written:
    if upsert:
        return _merge(cursor, layout, target, tz, instrument_id, ingest_id)
    if target.is_bars:
        return _insert_bars(cursor, layout, target, tz, instrument_id)
    return _insert_ticks(cursor, layout, target, tz, instrument_id)


def _insert_bars(cursor, layout, target, tz, instrument_id) -> Written:
    values = [role for role in target.roles if role in layout.roles]
    cursor.execute(
        f"INSERT INTO {ident(target.table)} (instrument_id, ts, {', '.join(values)})"
        f" SELECT %s, ts, {', '.join(values)} FROM ({rows_sql(layout, target, tz)}) AS s",
        [instrument_id],
    )
    return Written(inserted=cursor.rowcount, updated=0)


def _merge(cursor, layout: Layout, target: Target, tz: str, instrument_id: int, ingest_id: int):
    """Hand the rows to the table's merge function as one array per column (bars: NULL for a
    role the file lacks), in slices of at most MERGE_SLICE lines so that no array nears
    PostgreSQL's 1 GB limit on a value; the slices share the caller's transaction."""
    rows = _tick_rows(layout, target, tz) if not target.is_bars else rows_sql(layout, target, tz)
    cursor.execute(f"SELECT min(line), max(line) FROM ({rows}) AS s")
    first, last = cursor.fetchone()
    if target.is_bars:
        columns: tuple[str, ...] = ("ts", *BAR_ROLES)
        present = {"ts", *layout.roles}
        call = "marketdata_merge_bars(%s::regclass, %s, %s, "
        params: list = [target.table, instrument_id, ingest_id]
    else:
        columns = TICK_COLUMNS
        present = set(columns)
        call = "marketdata_merge_ticks(%s, %s, "
        params = [instrument_id, ingest_id]
    arrays = ", ".join(
        f"array_agg({c})" if c in present else f"NULL::{ROLE_TYPES[c]}[]" for c in columns
    )
    merge = (
        f"SELECT m.inserted, m.updated FROM (SELECT {arrays} FROM ({rows}) AS s"
        f" WHERE line BETWEEN %s AND %s) AS a ({', '.join(columns)}),"
        f" LATERAL {call}{', '.join(f'a.{c}' for c in columns)}) AS m"
    )
    inserted = updated = 0
    for low in range(first, last + 1, MERGE_SLICE) if first is not None else ():
        cursor.execute(merge, [low, low + MERGE_SLICE - 1, *params])
        slice_inserted, slice_updated = cursor.fetchone()
        inserted, updated = inserted + slice_inserted, updated + slice_updated
    return Written(inserted=inserted, updated=updated)


def _tick_rows(layout: Layout, target: Target, tz: str) -> str:
    """The ticks of a file as stored, with their line: the position among rows of the same
    time numbered over the whole file, before any slice."""
    sequence = "sequence" if "sequence" in layout.roles else _POSITION_SQL
    return (
        f"SELECT line, ts, {sequence} AS sequence, {_KIND_SQL} AS kind,"
        f" {', '.join(TICK_COLUMNS[3:])} FROM ({rows_sql(layout, target, tz)}) AS s"
    )


def _insert_ticks(cursor, layout, target, tz, instrument_id) -> Written:
    cursor.execute(
        f"INSERT INTO {ident(target.table)} (instrument_id, {', '.join(TICK_COLUMNS)})"
        f" SELECT %s, {', '.join(TICK_COLUMNS)} FROM ({_tick_rows(layout, target, tz)}) AS s",
        [instrument_id],
    )
    return Written(inserted=cursor.rowcount, updated=0)
