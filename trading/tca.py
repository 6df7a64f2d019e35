"""Transaction cost analysis: what each execution cost, each order's implementation
shortfall, and aggregates with confidence intervals, computed in SQL (trading/sql/tca/0016.sql).

Definitions, with s = +1 for a buy and -1 for a sell and p the fill's price (every measure in
basis points, a cost positive):

- **arrival price** A: the price prevailing at the order's creation (at its first fill if the
  order was recorded after it): the mid of the latest quote, else the latest trade, else the
  close of the latest minute bar ended by then, each within a day before; ``arrival_source``
  names which (``quote_mid``, ``trade``, ``bar_close``; empty: none, and the measures are NULL).
- **slippage** ``s * (p - A) / A * 1e4``: a buy above the arrival price or a sell below it is a
  positive cost.
- **spread paid** ``s * (p - M) / M * 1e4``, M the mid prevailing at the fill: the effective
  half-spread, signed (negative: price improvement); NULL without a quote.
- **markout at h** (1 s, 10 s, 1 min, 5 min, 30 min, 1 day) ``s * (R_h - p) / p * 1e4``: positive
  when the price moved our way after the fill (up after a buy, down after a sell). R_h is the
  mid prevailing at fill + h where the fill has a quote (``markout_source = 'ticks'``), else the
  close of the latest minute bar that ended after the fill and by fill + h (``'minute_bars'``;
  so a 1-second markout from minute bars is NULL); NULL while fill + h is after the knowledge
  time.
- **Corporate actions**: a price read at another time than the fill (the arrival, R_h) is put in
  the fill's share basis by the split and stock-dividend factors known then
  (``marketdata_action_factors('split', known_at)``): after a 2:1 split a mid of 50 compares as
  100. A cash dividend D going ex between the fill and R_h is added back (R_h + D: who bought
  holds the ex share and the dividend), one going ex between the arrival and the fill taken off
  the arrival (A - D), D in the fill's share basis: a markout across an ex-date does not show
  the drop.
- **Dimensions**: each row carries its execution's ``venue`` and its order's ``strategy`` and
  ``agent``; ``summary`` groups by them (``'(unknown)'`` venue, ``'(none)'`` strategy or agent).
- **Implementation shortfall** measures from the order's ``decision_price`` where it records
  one (``decision_source = 'order'``), else from the arrival price (``'arrival'``).

Market data are read as known at ``known_at`` (default: the settled moment), recorded on each
row, so a refresh repeats; a row whose numbers are unchanged keeps its first ``known_at``. A
refresh takes out the rows of executions busted or corrected since, restates those a market
data revision changed, and adds the new ones.

**Restated at once**: a bust or a correction takes the superseded execution's row out in its
own transaction (a trigger on the executions, as the owner), and queues its range; a revision
of the ticks or minute bars a row may have read, or a corporate action stated or withdrawn
around it, queues (instrument, day) ranges. ``refresh_pending`` (``manage.py tca --pending``,
the job ``tca-pending`` every five minutes on weekdays) refreshes the queue and empties it in
one transaction; a market-data change known after the settled moment waits for a later run.
On Citus, where the market data's statement triggers are set aside, the pending refresh first
gathers the ticks and minute bars changed since the last one into the queue
(``gather_changes``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db import connection, transaction

from marketdata.knowledge import knowledge_time
from qvp_site.acting import acting_as
from qvp_site.db import engine, partitions

TABLE = "trading_executioncost"
ACTOR = "system:tca"
HORIZONS = ("1s", "10s", "1m", "5m", "30m", "1d")
MEASURES = ("slippage", "spread_paid", *(f"markout_{h}" for h in HORIZONS))
DIMENSIONS: tuple[str, ...] = (
    "account",
    "instrument",
    "venue",
    "strategy",
    "agent",
    "side",
    "liquidity",
    "size",
    "all",
)
DECISION_SOURCES = ("order", "arrival", "")


@dataclass(frozen=True)
class Refreshed:
    """What a refresh did: rows inserted or restated, rows taken out, the knowledge time."""

    written: int
    removed: int
    known_at: datetime

    @property
    def changed(self) -> int:
        return self.written + self.removed


def refresh(
    start: datetime,
    end: datetime,
    account: int | None = None,
    known_at: datetime | None = None,
) -> int:
    """Refresh the costs of the executions of [start, end) (of ``account``): the number of
    rows inserted, restated or taken out (0 when nothing changed)."""
    return refresh_detail(start, end, account, known_at).changed


def refresh_detail(
    start: datetime,
    end: datetime,
    account: int | None = None,
    known_at: datetime | None = None,
) -> Refreshed:
    """``refresh``, saying how many rows were written and removed and at what knowledge time.
    Outside a transaction the partitions come first in their own, then one transaction acting
    as this module's system actor; inside one, the caller has declared who acts."""
    if end <= start:
        raise ValueError(f"end ({end.isoformat()}) must be after start ({start.isoformat()})")
    known = knowledge_time(known_at)
    _prepare_partitions(start, end, account)
    with _acting(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT written, removed FROM trading_tca_refresh(%s, %s, %s, %s)",
            [start, end, account, known],
        )
        written, removed = cursor.fetchone()
    return Refreshed(written, removed, known)


@dataclass(frozen=True)
class PendingRefresh:
    """What a pending refresh did: the queued ranges it took, and the refresh's counts."""

    ranges: int
    refreshed: Refreshed


def refresh_pending(known_at: datetime | None = None) -> PendingRefresh:
    """Refresh the ranges that busts, corrections, market-data revisions and corporate actions
    queued (trading_tcapending) and empty the queue of them, in one transaction: a failure
    leaves the queue as it was. A market-data change known after ``known_at`` (default: the
    settled moment) stays queued for a later run."""
    known = knowledge_time(known_at)
    gather_changes(known)  # first, so that the partitions below are those of every range
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(first_at), max(end_at) FROM trading_tcapending"
            " WHERE stamp IS NULL OR stamp <= %s",
            [known],
        )
        first, end = cursor.fetchone()
    if first is not None:
        _prepare_partitions(first, end, None)
    with _acting(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "SELECT ranges, written, removed FROM trading_tca_refresh_pending(%s)", [known]
        )
        ranges, written, removed = cursor.fetchone()
    return PendingRefresh(ranges, Refreshed(written, removed, known))


def pending() -> int:
    """How many ranges are queued for a pending refresh (on Citus, once the changes up to the
    settled moment are gathered)."""
    gather_changes()
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM trading_tcapending")
        return int(cursor.fetchone()[0])


def gather_changes(known_at: datetime | None = None) -> int:
    """Where the market data is distributed (Citus), queue the days whose costs the ticks and
    minute bars learnt or revised since the last gathering, up to ``known_at`` (default: the
    settled moment), make stale (trading/sql/tca_gather_on_citus/0020.sql): there the statement
    triggers that queue them as they change are set aside. How many days it queued; elsewhere
    nothing to do (0)."""
    if not engine.distributes_market_data(connection):
        return 0
    with _acting(), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT trading_tca_gather(%s)", [knowledge_time(known_at)])
        return int(cursor.fetchone()[0])


def _prepare_partitions(start: datetime, end: datetime, account: int | None) -> None:
    """The partitions the range's executions fall in (where they fall, not the whole range)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT min(executed_at), max(executed_at)"
            " FROM trading_tca_live_executions(%s, %s, %s)",
            [start, end, account],
        )
        first, last = cursor.fetchone()
    if first is not None:
        partitions.prepare_load(TABLE, first, last)


def _acting() -> contextlib.AbstractContextManager[None]:
    if connection.in_atomic_block:
        return contextlib.nullcontext()
    return acting_as(ACTOR)


def shortfall(
    start: datetime,
    end: datetime,
    account: int | None = None,
    known_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """The implementation shortfall of each order created in [start, end) (of ``account``):
    decision price (the order's ``decision_price``, else the arrival price: ``decision_source``
    says which), arrival, average fill, fees, the unfilled part valued at the close (the end
    of the order's UTC day), the shortfall in money and in bps of the decision notional
    (trading/sql/tca/0016.sql)."""
    known = knowledge_time(known_at)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM trading_tca_shortfall(%s, %s, %s, %s)", [start, end, account, known]
        )
        return _dicts(cursor)


def summary(
    dimension: str,
    start: datetime,
    end: datetime,
    account: int | Sequence[int] | None = None,
) -> list[dict[str, Any]]:
    """The stored costs of [start, end) grouped by ``dimension`` (one of ``DIMENSIONS``): per
    group and measure the executions, notional, the rows having the measure (n), its
    notional-weighted mean and a 95% confidence interval, ``mean +- 1.96 * SE`` with
    ``SE = sqrt(n / (n - 1) * sum(w_i^2 (x_i - mean)^2)) / sum(w_i)`` (NULL below two rows).
    A blank venue is the group ``'(unknown)'``, a blank strategy or no agent ``'(none)'``.
    ``account`` is one account, several (aggregated together), or None for every one."""
    if dimension not in DIMENSIONS:
        raise ValueError(f"dimension must be one of {', '.join(DIMENSIONS)}, not {dimension!r}")
    accounts = [account] if isinstance(account, int) else account
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM trading_tca_summary_of(%s, %s, %s, %s::bigint[])",
            [dimension, start, end, None if accounts is None else list(accounts)],
        )
        return _dicts(cursor)


def _dicts(cursor: Any) -> list[dict[str, Any]]:
    names = [column.name for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
