"""Synthetic market data for demos and benchmarks: realistic one-minute bars, made fast.

Prices follow geometric Brownian motion whose variance clusters the way real markets do: a
GARCH(1,1) recursion on the minute returns (fat-tailed shocks) times a GARCH regime per day,
shaped by an intraday profile (busy open and close for equities, the London/New York overlap
for FX). Volume follows its own intraday profile and rises with volatility. Everything is
vectorised with numpy and drawn from a generator seeded by (seed, symbol), so the same seed
gives the same bars for a symbol whichever other symbols are generated with it.

Sessions: US equities trade 13:30-20:00 UTC (the New York session in daylight-saving time,
kept fixed all year for simplicity), FX 24 hours; both on weekdays, holidays ignored.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

import numpy as np

from qvp_site.db import partitions
from qvp_site.db.quoting import ident

EQUITY, FX = "equity", "fx"
# Session start (minutes after midnight UTC) and length in minutes, per asset class.
SESSIONS = {EQUITY: (13 * 60 + 30, 390), FX: (0, 24 * 60)}
TRADING_DAYS_PER_YEAR = 252
# Blocks short enough that a product of GARCH coefficients stays far from overflow.
GARCH_BLOCK = 512


@dataclass(frozen=True)
class DemoSymbol:
    symbol: str
    asset_class: str
    exchange: str
    currency: str
    tick_size: float
    start_price: float
    annual_vol: float
    annual_drift: float
    daily_volume: float  # shares (equities) or ticks (FX) on an average day
    trade_size: float  # average size of one trade, for the trade count


DEMO_SYMBOLS = {
    s.symbol: s
    for s in (
        DemoSymbol("AAPL", EQUITY, "XNAS", "USD", 0.01, 190.0, 0.27, 0.08, 55e6, 120),
        DemoSymbol("MSFT", EQUITY, "XNAS", "USD", 0.01, 410.0, 0.24, 0.08, 22e6, 90),
        DemoSymbol("SPY", EQUITY, "ARCX", "USD", 0.01, 520.0, 0.15, 0.07, 70e6, 150),
        DemoSymbol("NVDA", EQUITY, "XNAS", "USD", 0.01, 120.0, 0.50, 0.20, 250e6, 200),
        DemoSymbol("EURUSD", FX, "", "USD", 0.00001, 1.08, 0.07, 0.0, 250_000, 1),
    )
}


@dataclass
class Bars:
    """OHLCV columns as numpy arrays, one entry per bar, ``ts`` as datetime64[us] in UTC."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    vwap: np.ndarray
    trade_count: np.ndarray

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


def last_completed_weekday(now: datetime | None = None) -> date:
    """The weekday before today (UTC): its sessions are over wherever it is traded."""
    today = np.datetime64((now or datetime.now(UTC)).astimezone(UTC).date(), "D")
    return np.busday_offset(today, -1, roll="forward").astype(date)


def trading_days(end: date, days: int) -> np.ndarray:
    """The ``days`` weekdays ending with ``end`` (or the weekday before it), oldest first."""
    last = np.busday_offset(np.datetime64(end, "D"), 0, roll="backward")
    return np.busday_offset(last, -np.arange(days)[::-1])


def session_minutes(asset_class: str, days: np.ndarray) -> np.ndarray:
    """The start of every trading minute of ``days`` (datetime64[us], UTC)."""
    first, length = SESSIONS[asset_class]
    offsets = np.timedelta64(first, "m") + np.arange(length).astype("timedelta64[m]")
    return (days.astype("datetime64[m]")[:, None] + offsets[None, :]).ravel().astype("M8[us]")


def garch_variance(shocks: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    """Variance multipliers (mean 1) of a GARCH(1,1) driven by unit-variance ``shocks``:
    v[0] = 1, v[t] = (1 - alpha - beta) + (alpha * shocks[t-1]**2 + beta) * v[t-1].

    The recursion is linear in v with random coefficients, so a block of it has a closed form
    through cumulative products (taken in logs); only the hand-over between blocks loops.
    """
    omega = 1.0 - alpha - beta
    coeff = alpha * shocks[:-1] ** 2 + beta  # coeff[i] takes v[i] to v[i + 1]
    out = np.empty(len(shocks))
    out[0] = 1.0
    for lo in range(0, len(coeff), GARCH_BLOCK):
        growth = np.exp(np.cumsum(np.log(coeff[lo : lo + GARCH_BLOCK])))
        out[lo + 1 : lo + 1 + len(growth)] = growth * (out[lo] + omega * np.cumsum(1 / growth))
    return out


def intraday_profiles(asset_class: str, length: int) -> tuple[np.ndarray, np.ndarray]:
    """Variance and volume multipliers (mean 1) by minute of the session."""
    x = (np.arange(length) + 0.5) / length
    if asset_class == EQUITY:  # busy open, quieter lunch, busy close
        var = 0.6 + 2.0 * np.exp(-x / 0.05) + 0.8 * np.exp(-(1 - x) / 0.05)
        vol = 0.55 + 2.5 * np.exp(-x / 0.04) + 1.8 * np.exp(-(1 - x) / 0.03)
    else:  # FX by hour of the UTC day: London morning, London/New York overlap
        hour = x * 24
        var = 0.5 + 0.5 * np.exp(-(((hour - 8.5) / 2) ** 2)) + np.exp(-(((hour - 14.5) / 2.5) ** 2))
        vol = (
            0.3
            + 0.8 * np.exp(-(((hour - 8.5) / 2) ** 2))
            + 1.4 * np.exp(-(((hour - 14.5) / 3) ** 2))
        )
    return var / var.mean(), vol / vol.mean()


def rng_for(seed: int, symbol: str) -> np.random.Generator:
    """A generator of its own per symbol, so adding a symbol changes no other's bars."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(symbol.encode())]))


def generate(spec: DemoSymbol, end: date, days: int, seed: int) -> Bars:
    """One-minute bars of ``spec`` over ``days`` trading days ending with ``end``."""
    rng = rng_for(seed, spec.symbol)
    length = SESSIONS[spec.asset_class][1]
    n = days * length
    var_profile, volume_profile = intraday_profiles(spec.asset_class, length)

    # Daily regimes times minute clusters; Student-t shocks (df 5) scaled to unit variance.
    daily = garch_variance(rng.standard_normal(days), 0.10, 0.85)
    shocks = rng.standard_t(5, n) / np.sqrt(5 / 3)
    clusters = garch_variance(shocks, 0.05, 0.94)
    minute_var = clusters * np.repeat(daily, length) * np.tile(var_profile, days)
    # Equities leave a fifth of the daily variance to the overnight gap.
    overnight = 0.2 if spec.asset_class == EQUITY else 0.0
    sigma = spec.annual_vol * np.sqrt(
        (1 - overnight) * minute_var / (TRADING_DAYS_PER_YEAR * length)
    )
    gaps = np.zeros(n)
    if overnight:
        day_sigma = spec.annual_vol * np.sqrt(overnight * daily / TRADING_DAYS_PER_YEAR)
        gaps[length::length] = (rng.standard_normal(days) * day_sigma)[1:]
    drift = spec.annual_drift / (TRADING_DAYS_PER_YEAR * length) - sigma**2 / 2
    prices = _ohlc(spec, rng, gaps, drift + sigma * shocks, sigma)

    # Volume follows its profile and rises with volatility, with noise of its own.
    volume = np.round(
        spec.daily_volume
        / length
        * np.tile(volume_profile, days)
        * np.sqrt(np.repeat(daily, length) * clusters)
        * rng.lognormal(-0.06, 0.35, n)
    )
    typical = (prices["high"] + prices["low"] + prices["close"]) / 3
    return Bars(
        ts=session_minutes(spec.asset_class, trading_days(end, days)),
        **prices,
        volume=volume,
        vwap=_round(typical, spec.tick_size / 100),
        trade_count=np.maximum(1, np.round(volume / spec.trade_size)).astype(np.int32),
    )


def _round(values: np.ndarray, tick: float) -> np.ndarray:
    """Round to the tick grid. Dividing by the integer 1/tick gives the double nearest each
    decimal price (what float("190.23") gives), not 190.23000000000002."""
    per_unit = round(1 / tick)
    return np.round(values * per_unit) / per_unit


def _ohlc(spec: DemoSymbol, rng, gaps, moves, sigma) -> dict[str, np.ndarray]:
    """Open, high, low, close on the tick grid: each open is the previous close (after the
    overnight gap at a session's first minute); highs and lows reach beyond both."""
    tick = spec.tick_size
    close = _round(spec.start_price * np.exp(np.cumsum(gaps + moves)), tick)
    previous = np.concatenate(([spec.start_price], close[:-1]))
    open_ = np.where(gaps != 0, _round(previous * np.exp(gaps), tick), previous)
    up = np.exp(np.abs(rng.standard_normal(len(close))) * 0.6 * sigma)
    down = np.exp(-np.abs(rng.standard_normal(len(close))) * 0.6 * sigma)
    body_top, body_bottom = np.maximum(open_, close), np.minimum(open_, close)
    # Rounding is monotonic, so the bar rules hold; max/min make that plain.
    return {
        "open": open_,
        "high": np.maximum(_round(body_top * up, tick), body_top),
        "low": np.minimum(_round(body_bottom * down, tick), body_bottom),
        "close": close,
    }


def daily_from_minutes(bars: Bars) -> Bars:
    """Daily bars (ts at midnight UTC) aggregated from one-minute bars in time order."""
    days = bars.ts.astype("datetime64[D]")
    starts = np.flatnonzero(np.concatenate(([True], days[1:] != days[:-1])))
    ends = np.concatenate((starts[1:], [len(bars)])) - 1
    volume = np.add.reduceat(bars.volume, starts)
    return Bars(
        ts=days[starts].astype("M8[us]"),
        open=bars.open[starts],
        high=np.maximum.reduceat(bars.high, starts),
        low=np.minimum.reduceat(bars.low, starts),
        close=bars.close[ends],
        volume=volume,
        vwap=np.add.reduceat(bars.vwap * bars.volume, starts) / volume,
        trade_count=np.add.reduceat(bars.trade_count, starts).astype(np.int32),
    )


# --- Loading ---------------------------------------------------------------------------------
# PostgreSQL's binary COPY: a header, then per row a field count and each field as its length
# and big-endian value, then -1. Fixed-width columns make that one numpy record per row, so a
# year of bars is packed with a single tobytes() instead of a Python loop.
COPY_HEADER = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
COPY_TRAILER = (-1).to_bytes(2, "big", signed=True)
PG_EPOCH = np.datetime64("2000-01-01T00:00:00", "us")
BAR_COLUMNS = {  # column: its binary type
    "ts": ">i8",  # timestamptz: microseconds since 2000-01-01 UTC
    "open": ">f8",
    "high": ">f8",
    "low": ">f8",
    "close": ">f8",
    "volume": ">f8",
    "vwap": ">f8",
    "trade_count": ">i4",
}
COPY_CHUNK = 8 << 20
MINUTE_TABLE, DAILY_TABLE = "marketdata_minutebar", "marketdata_dailybar"


def copy_payload(instrument_id: int, bars: Bars) -> bytes:
    """The rows of ``bars`` for ``instrument_id`` in PostgreSQL's binary COPY format."""
    types = {"instrument_id": ">i8", **BAR_COLUMNS}
    layout = [("fields", ">i2")]
    for name, kind in types.items():
        layout += [(f"{name}_size", ">i4"), (name, kind)]
    rows = np.empty(len(bars), dtype=np.dtype(layout))
    rows["fields"] = len(types)
    for name, kind in types.items():
        rows[f"{name}_size"] = np.dtype(kind).itemsize
    rows["instrument_id"] = instrument_id
    rows["ts"] = (bars.ts - PG_EPOCH).astype(np.int64)
    for name in list(BAR_COLUMNS)[1:]:
        rows[name] = getattr(bars, name)
    return COPY_HEADER + rows.tobytes() + COPY_TRAILER


def copy_bars(connection, table: str, instrument_id: int, bars: Bars) -> int:
    """COPY ``bars`` into ``table`` (whose partitions must exist); returns the row count."""
    columns = ", ".join(["instrument_id", *BAR_COLUMNS])
    sql = f"COPY {ident(table)} ({columns}) FROM STDIN (FORMAT BINARY)"
    payload = memoryview(copy_payload(instrument_id, bars))
    # Django's cursor wraps psycopg's, whose copy() streams the payload.
    with connection.cursor() as wrapper, wrapper.cursor.copy(sql) as copy:
        for start in range(0, len(payload), COPY_CHUNK):
            copy.write(payload[start : start + COPY_CHUNK])
    return len(bars)


def time_range(bars: Bars) -> tuple[datetime, datetime]:
    """The first and last ``ts`` of ``bars`` as aware datetimes."""
    first, last = (bars.ts[i].astype(datetime).replace(tzinfo=UTC) for i in (0, -1))
    return first, last


def prepare_partitions(connection, minute: Bars, daily: Bars) -> None:
    """Create the partitions the bars need, each batch in its own short transaction, before
    the load's transaction begins (creating a partition locks its parent table)."""
    for table, bars in ((MINUTE_TABLE, minute), (DAILY_TABLE, daily)):
        if len(bars):
            partitions.prepare_load(table, *time_range(bars), using=connection)


def load(connection, instrument_id: int, minute: Bars, daily: Bars) -> None:
    """COPY one instrument's minute and daily bars. The caller holds the transaction, and
    refreshes the aggregates after it commits."""
    copy_bars(connection, MINUTE_TABLE, instrument_id, minute)
    copy_bars(connection, DAILY_TABLE, instrument_id, daily)
