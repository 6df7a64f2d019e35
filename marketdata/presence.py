"""Which instruments have bars: one statement for any number of instruments, each a probe of
the (instrument, ts) key.

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

_FROM_IDS = "SELECT i.id FROM unnest(%s::bigint[]) AS i(id) WHERE true"
_FROM_KEYS = "SELECT i.id FROM marketdata_instrument_key AS i WHERE i.id = ANY(%s::bigint[])"


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
    start = _FROM_KEYS if engine.distributes_market_data(connection) else _FROM_IDS
    probe = f"SELECT 1 FROM {bars[0]} AS b WHERE b.instrument_id = i.id"
    params: list[Any] = [ids, *bars[1]]
    if until is not None:
        probe += " AND b.ts <= %s"
        params.append(until)
    with connection.cursor() as cursor:
        cursor.execute(f"{start} AND EXISTS ({probe})", params)
        return {row[0] for row in cursor.fetchall()}
