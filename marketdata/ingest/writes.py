"""Writing the checked rows into their table: one INSERT ... SELECT from the staging table.

A range the table holds nothing of takes a straight INSERT. Otherwise bars are upserted on
(instrument, ts), rewriting a row only when a value differs, so that re-ingesting a file
rewrites nothing; the keys already in the table tell inserts from updates. Ticks are
never rewritten: their key (instrument, ts, sequence) is the tick, ON CONFLICT DO NOTHING.
Only the roles the file has are set on update: a file without volume leaves volume alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from marketdata.ingest.checks import rows_sql
from marketdata.ingest.targets import Target
from qvp_site.db.quoting import ident
from qvp_site.loading.layout import Layout

# The position among rows of the same time, for ticks whose file has no trade id.
_POSITION_SQL = "row_number() OVER (PARTITION BY ts ORDER BY line) - 1"


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
    span: tuple[datetime, datetime],
    *,
    upsert: bool,
) -> Written:
    if target.is_bars:
        return _write_bars(cursor, layout, target, tz, instrument_id, span, upsert)
    return _write_ticks(cursor, layout, target, tz, instrument_id, upsert)


def _write_bars(cursor, layout, target, tz, instrument_id, span, upsert) -> Written:
    values = [role for role in target.roles if role in layout.roles]
    rows = rows_sql(layout, target, tz)
    insert = (
        f"INSERT INTO {ident(target.table)} AS t (instrument_id, ts, {', '.join(values)})"
        f" SELECT %s, ts, {', '.join(values)} FROM ({rows}) AS s"
    )
    if not upsert:
        cursor.execute(insert, [instrument_id])
        return Written(inserted=cursor.rowcount, updated=0)
    # RETURNING (xmax = 0) would tell inserts from updates, but a partitioned table cannot
    # return system columns: count the keys already there instead, before writing.
    cursor.execute(
        f"SELECT count(*) FROM {ident(target.table)} WHERE instrument_id = %s"
        f" AND ts BETWEEN %s AND %s AND ts IN (SELECT ts FROM ({rows}) AS s)",
        [instrument_id, *span],
    )
    existing = cursor.fetchone()[0]
    cursor.execute(f"SELECT count(*) FROM ({rows}) AS s")
    inserted = cursor.fetchone()[0] - existing
    assignments = ", ".join(f"{v} = EXCLUDED.{v}" for v in values)
    ours = ", ".join(f"t.{v}" for v in values)
    theirs = ", ".join(f"EXCLUDED.{v}" for v in values)
    cursor.execute(
        f"WITH written AS ({insert} ON CONFLICT (instrument_id, ts) DO UPDATE SET {assignments}"
        f" WHERE ({ours}) IS DISTINCT FROM ({theirs}) RETURNING 1) SELECT count(*) FROM written",
        [instrument_id],
    )
    return Written(inserted=inserted, updated=cursor.fetchone()[0] - inserted)


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
