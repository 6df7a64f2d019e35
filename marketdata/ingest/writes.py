"""Writing the checked rows into their table from the staging table.

A range the table holds nothing of takes a straight INSERT ... SELECT. Otherwise bars are
merged on (instrument, ts) by ``marketdata_merge_bars`` (marketdata/sql/loads/0007.sql), a
function that runs as the owner: the application's role may insert market data but never
UPDATE or DELETE it, so the one rewrite of a stored bar is that function's. It rewrites a row
only when a value differs, so that re-ingesting a file rewrites nothing, sets only the roles
the file has (a file without volume leaves volume alone) and counts inserts and updates.
Ticks are never rewritten: their key (instrument, ts, sequence) is the tick, ON CONFLICT DO
NOTHING, which takes no more than INSERT.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from marketdata.ingest.checks import rows_sql
from marketdata.ingest.targets import BAR_ROLES, ROLE_TYPES, Target
from qvp_site.db.quoting import ident
from qvp_site.loading.layout import Layout

# The position among rows of the same time, for ticks whose file has no trade id.
_POSITION_SQL = "row_number() OVER (PARTITION BY ts ORDER BY line) - 1"

# Lines of a file per call of marketdata_merge_bars: a million bars make arrays of 8 MB each.
MERGE_SLICE = 1_000_000


@dataclass(frozen=True)
class Written:
    inserted: int
    updated: int


def holds_rows(cursor, target: Target, instrument_id: int, start: datetime, end: datetime) -> bool:
    """Whether the table has any row of the instrument in [start, end]."""
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {ident(target.table)}"
        " WHERE instrument_id = %s AND ts BETWEEN %s AND %s)",
        [instrument_id, start, end],
    )
    return cursor.fetchone()[0]


def write(
    cursor,
    layout: Layout,
    target: Target,
    tz: str,
    instrument_id: int,
    *,
    upsert: bool,
) -> Written:
    if target.is_bars:
        return _write_bars(cursor, layout, target, tz, instrument_id, upsert)
    return _write_ticks(cursor, layout, target, tz, instrument_id, upsert)


def _write_bars(cursor, layout, target, tz, instrument_id, upsert) -> Written:
    if upsert:
        return _merge_bars(cursor, layout, target, tz, instrument_id)
    values = [role for role in target.roles if role in layout.roles]
    cursor.execute(
        f"INSERT INTO {ident(target.table)} (instrument_id, ts, {', '.join(values)})"
        f" SELECT %s, ts, {', '.join(values)} FROM ({rows_sql(layout, target, tz)}) AS s",
        [instrument_id],
    )
    return Written(inserted=cursor.rowcount, updated=0)


def _merge_bars(cursor, layout: Layout, target: Target, tz: str, instrument_id: int) -> Written:
    """Hand the rows to ``marketdata_merge_bars`` as one array per role (NULL for a role the
    file lacks), in slices of at most MERGE_SLICE lines so that no array nears PostgreSQL's
    1 GB limit on a value; the slices share the caller's transaction."""
    rows = rows_sql(layout, target, tz)
    cursor.execute(f"SELECT min(line), max(line) FROM ({rows}) AS s")
    first, last = cursor.fetchone()
    arrays = ", ".join(
        f"array_agg({role})" if role in layout.roles else f"NULL::{ROLE_TYPES[role]}[]"
        for role in BAR_ROLES
    )
    merge = (
        f"SELECT m.inserted, m.updated FROM (SELECT array_agg(ts), {arrays} FROM ({rows}) AS s"
        " WHERE line BETWEEN %s AND %s) AS a (ts, " + ", ".join(BAR_ROLES) + "),"
        " LATERAL marketdata_merge_bars(%s::regclass, %s, a.ts, "
        + ", ".join(f"a.{role}" for role in BAR_ROLES)
        + ") AS m"
    )
    inserted = updated = 0
    for low in range(first, last + 1, MERGE_SLICE) if first is not None else ():
        cursor.execute(merge, [low, low + MERGE_SLICE - 1, target.table, instrument_id])
        slice_inserted, slice_updated = cursor.fetchone()
        inserted, updated = inserted + slice_inserted, updated + slice_updated
    return Written(inserted=inserted, updated=updated)


def _write_ticks(cursor, layout, target, tz, instrument_id, upsert) -> Written:
    sequence = "sequence" if "sequence" in layout.roles else _POSITION_SQL
    cursor.execute(
        f"INSERT INTO {ident(target.table)} (instrument_id, ts, sequence, kind, price, size,"
        " bid, ask, bid_size, ask_size, side)"
        f" SELECT %s, ts, {sequence}, CASE WHEN price IS NULL THEN 'quote' ELSE 'trade' END,"
        " price, size, bid, ask, bid_size, ask_size, side"
        f" FROM ({rows_sql(layout, target, tz)}) AS s"
        + (" ON CONFLICT (instrument_id, ts, sequence) DO NOTHING" if upsert else ""),
        [instrument_id],
    )
    return Written(inserted=cursor.rowcount, updated=0)
