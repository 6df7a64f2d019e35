"""Which instruments have bars, and their latest: one statement for any number of
instruments, each a probe of the (instrument, ts) key.

On one node the probes start from the list of ids. Where the market data is distributed
(Citus), they start from the instruments' keys, distributed beside the bars
(qvp_site/db/distribution.py): Citus runs each probe on the shard of its key and bars, and
refuses one from a list of values or from the coordinator's instruments ("direct joins between
distributed and local tables are not supported").
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from django.db import connection

from marketdata import adjusting
from qvp_site.db import engine

# Where the probes start, and what picks the instruments there: the list's one parameter.
_FROM_IDS = ("unnest(%s::bigint[]) AS i(id)", "true")
_FROM_KEYS = ("marketdata_instrument_key AS i", "i.id = ANY(%s::bigint[])")

# The latest minute and daily bar's time of each instrument: a backward probe of each key.
_LATEST_SQL = """
SELECT i.id, m.ts, d.ts FROM {instruments}
LEFT JOIN LATERAL (SELECT ts FROM marketdata_minutebar WHERE instrument_id = i.id
                   ORDER BY ts DESC LIMIT 1) m ON true
LEFT JOIN LATERAL (SELECT ts FROM marketdata_dailybar WHERE instrument_id = i.id
                   ORDER BY ts DESC LIMIT 1) d ON true
WHERE {where}
"""


def keyed(column: str) -> tuple[str, str]:
    """For a statement whose probes into the bars start from ``column``, a list's instrument
    ids: what to join it to, and the instrument for the probes to name. On one node nothing
    and the column; on Citus its keys, and theirs, so that each probe runs on the key's shard
    (a join drops an id with no instrument there)."""
    if engine.distributes_market_data(connection):
        return f"JOIN marketdata_instrument_key AS k ON k.id = {column}", "k.id"
    return "", column


def _start() -> tuple[str, str]:
    return _FROM_KEYS if engine.distributes_market_data(connection) else _FROM_IDS


def instruments_with_bars(
    table: str,
    instrument_ids: Iterable[int],
    *,
    until: datetime | None = None,
    known_at: datetime | None = None,
) -> set[int]:
    """The ids of ``instrument_ids`` with a bar in ``table`` (at or before ``until``, when
    given), the bars as known at ``known_at`` (None: as known now)."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return set()
    bars = adjusting.raw_bars_sql(connection, table, known_at)
    probe = f"SELECT 1 FROM {bars[0]} AS b WHERE b.instrument_id = i.id"
    params: list[Any] = [ids, *bars[1]]
    if until is not None:
        probe += " AND b.ts <= %s"
        params.append(until)
    with connection.cursor() as cursor:
        instruments, picked = _start()
        cursor.execute(
            f"SELECT i.id FROM {instruments} WHERE {picked} AND EXISTS ({probe})", params
        )
        return {row[0] for row in cursor.fetchall()}


def latest_bar_times(
    instrument_ids: Iterable[int],
) -> dict[int, tuple[datetime | None, datetime | None]]:
    """Each of ``instrument_ids`` -> the time of its latest minute bar and daily bar (None
    where it has none)."""
    ids = sorted(set(instrument_ids))
    if not ids:
        return {}
    instruments, picked = _start()
    with connection.cursor() as cursor:
        cursor.execute(_LATEST_SQL.format(instruments=instruments, where=picked), [ids])
        return {id_: (minute, daily) for id_, minute, daily in cursor.fetchall()}
