"""What a file can be loaded into: minute bars, daily bars or ticks, and the roles of its columns.

A *role* is what a file column means (``open``, ``size``, ``sequence``...). Layouts map file
columns to roles; checks and writes speak in roles, so they never depend on a file's header.
"""

from __future__ import annotations

from dataclasses import dataclass

from marketdata.models import DailyBar, Ingest, MinuteBar, Tick

# The type each role is parsed to in the staging table (``ts`` depends on the layout).
ROLE_TYPES = {
    "open": "double precision",
    "high": "double precision",
    "low": "double precision",
    "close": "double precision",
    "volume": "double precision",
    "vwap": "double precision",
    "trade_count": "integer",
    "price": "double precision",
    "size": "double precision",
    "bid": "double precision",
    "ask": "double precision",
    "bid_size": "double precision",
    "ask_size": "double precision",
    "side": "text",
    "sequence": "bigint",
}


@dataclass(frozen=True)
class Target:
    """A time-series table a file loads into."""

    kind: str  # an Ingest.Kind value
    table: str
    roles: tuple[str, ...]  # value roles, besides the time
    required: tuple[str, ...]  # roles a layout must find (ticks: see ``needs_one_of``)
    needs_one_of: tuple[str, ...] = ()  # at least one of these roles must be found
    description: str = ""

    @property
    def is_bars(self) -> bool:
        return self.kind != Ingest.Kind.TICKS


BAR_ROLES = ("open", "high", "low", "close", "volume", "vwap", "trade_count")
TICK_ROLES = ("price", "size", "bid", "ask", "bid_size", "ask_size", "side", "sequence")

TARGETS = {
    Ingest.Kind.BARS_1M: Target(
        Ingest.Kind.BARS_1M,
        MinuteBar._meta.db_table,
        BAR_ROLES,
        required=("open", "high", "low", "close"),
        description="1-minute bars",
    ),
    Ingest.Kind.BARS_1D: Target(
        Ingest.Kind.BARS_1D,
        DailyBar._meta.db_table,
        BAR_ROLES,
        required=("open", "high", "low", "close"),
        description="daily bars",
    ),
    Ingest.Kind.TICKS: Target(
        Ingest.Kind.TICKS,
        Tick._meta.db_table,
        TICK_ROLES,
        required=(),
        needs_one_of=("price", "bid", "ask"),
        description="ticks",
    ),
}
