"""Synthetic market data for demos and benchmarks: realistic one-minute bars, made fast.

Prices follow geometric Brownian motion whose variance clusters the way real markets do: a
GARCH(1,1) recursion on the minute returns (fat-tailed shocks) times a GARCH regime per day,
shaped by an intraday profile (busy open and close for equities, the London/New York overlap
for FX). Volume follows its own intraday profile and rises with volatility. Everything is
vectorised with numpy and drawn from a generator seeded by (seed, symbol), so the same seed
gives the same bars for a symbol whichever other symbols are generated with it.

Sessions (``marketdata.sessions``): equities trade their exchange's sessions (New York's
holidays and early closes, 9:30 to 16:00 New York whatever the daylight saving), FX from
Sunday 17:00 to Friday 17:00 New York, crypto every minute of every day. A demo's period is
the last ``days`` New York sessions: each symbol trades its own sessions over those dates.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, fields
from datetime import UTC, date, datetime

import numpy as np

from marketdata import sessions
from qvp_site.db import partitions
from qvp_site.db.quoting import ident

EQUITY, FX, CRYPTO = sessions.EQUITY, sessions.FX, sessions.CRYPTO
TRADING_DAYS_PER_YEAR = 252
# Per asset class, the minutes of a full session and the sessions of a year: a minute's share
# of the year's variance and of a session's volume (an early close has less of both).
SESSION_MINUTES = {EQUITY: 390, FX: 24 * 60, CRYPTO: 24 * 60}
SESSIONS_PER_YEAR = {EQUITY: TRADING_DAYS_PER_YEAR, FX: TRADING_DAYS_PER_YEAR, CRYPTO: 365}
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
    daily_volume: float  # shares (equities), ticks (FX) or coins (crypto) on an average day
    trade_size: float  # average size of one trade, for the trade count


DEMO_SYMBOLS = {
    s.symbol: s
    for s in (
        DemoSymbol("AAPL", EQUITY, "XNAS", "USD", 0.01, 190.0, 0.27, 0.08, 55e6, 120),
        DemoSymbol("MSFT", EQUITY, "XNAS", "USD", 0.01, 410.0, 0.24, 0.08, 22e6, 90),
        DemoSymbol("SPY", EQUITY, "ARCX", "USD", 0.01, 520.0, 0.15, 0.07, 70e6, 150),
        DemoSymbol("NVDA", EQUITY, "XNAS", "USD", 0.01, 120.0, 0.50, 0.20, 250e6, 200),
        DemoSymbol("EURUSD", FX, "", "USD", 0.00001, 1.08, 0.07, 0.0, 250_000, 1),
        DemoSymbol("BTCUSD", CRYPTO, "", "USD", 0.01, 60_000.0, 0.55, 0.10, 20_000, 0.05),
    )
}
# What seed_demo loads unless told: crypto on request (``--symbols ...,BTCUSD``), as its
# year of minutes around the clock would add half to the seed's time (its embeddings most).
DEFAULT_SYMBOLS = ("AAPL", "MSFT", "SPY", "NVDA", "EURUSD")


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
    # Minute bars: the date of each one's session (FX's Monday begins on Sunday evening UTC),
    # which names its daily bar. None: the bar's UTC date.
    session: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ts)

    def columns(self) -> dict[str, np.ndarray]:
        """The bar columns (``session`` is about the bars, not one of their values)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "session"}


def last_completed_weekday(now: datetime | None = None) -> date:
    """The weekday before today (UTC): its sessions are over wherever it is traded."""
    today = np.datetime64((now or datetime.now(UTC)).astimezone(UTC).date(), "D")
    return np.busday_offset(today, -1, roll="forward").astype(date)


def period(end: date, days: int) -> tuple[date, date]:
    """The demo's dates: from the first of the ``days`` New York sessions ending with ``end``
    (or the last session before it) to ``end``."""
    found = sessions.last_sessions(sessions.DEFAULT_CALENDAR, end, days)
    return found.label[0].astype(date), end


def demo_sessions(spec: DemoSymbol, end: date, days: int) -> sessions.Sessions:
    """The sessions ``spec`` trades over the period of ``days`` New York sessions to ``end``."""
    first, last = period(end, days)
    return sessions.sessions_for(spec.asset_class, spec.exchange, first, last)


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


def session_profile(length: int) -> tuple[np.ndarray, np.ndarray]:
    """An equity session's variance and volume multipliers (mean 1) by minute: busy open,
    quieter lunch, busy close (an early close's session is the same shape, shorter)."""
    x = (np.arange(length) + 0.5) / length
    var = 0.6 + 2.0 * np.exp(-x / 0.05) + 0.8 * np.exp(-(1 - x) / 0.05)
    vol = 0.55 + 2.5 * np.exp(-x / 0.04) + 1.8 * np.exp(-(1 - x) / 0.03)
    return var / var.mean(), vol / vol.mean()


def day_profile(asset_class: str) -> tuple[np.ndarray, np.ndarray]:
    """Variance and volume multipliers (mean 1) by minute of the UTC day: FX's London
    morning and London/New York overlap; crypto's milder, busiest in New York's hours."""
    hour = (np.arange(24 * 60) + 0.5) / 60
    london, overlap = np.exp(-(((hour - 8.5) / 2) ** 2)), np.exp(-(((hour - 14.5) / 2.5) ** 2))
    if asset_class == FX:
        var = 0.5 + 0.5 * london + overlap
        vol = 0.3 + 0.8 * london + 1.4 * np.exp(-(((hour - 14.5) / 3) ** 2))
    else:
        var = 0.8 + 0.2 * london + 0.4 * overlap
        vol = 0.6 + 0.3 * london + 0.8 * np.exp(-(((hour - 15.5) / 4) ** 2))
    return var / var.mean(), vol / vol.mean()


def intraday_profiles(asset_class: str, when: sessions.Minutes) -> tuple[np.ndarray, np.ndarray]:
    """Variance and volume multipliers of each minute of ``when``: by its place in its
    session for equities, by its time of day for FX and crypto."""
    if asset_class != EQUITY:
        var, vol = day_profile(asset_class)
        of_day = (when.ts - when.ts.astype("datetime64[D]")) // np.timedelta64(1, "m")
        return var[of_day], vol[of_day]
    var, vol = np.empty(len(when.ts)), np.empty(len(when.ts))
    for length in np.unique(when.length):  # a full session's length, an early close's
        shaped = when.length == length
        var_of, vol_of = session_profile(int(length))
        var[shaped], vol[shaped] = var_of[when.position[shaped]], vol_of[when.position[shaped]]
    return var, vol


def rng_for(seed: int, symbol: str) -> np.random.Generator:
    """A generator of its own per symbol, so adding a symbol changes no other's bars."""
    return np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(symbol.encode())]))


def generate(spec: DemoSymbol, end: date, days: int, seed: int) -> Bars:
    """One-minute bars of ``spec`` over the sessions it trades in the period of ``days`` New
    York sessions ending with ``end`` (``period``)."""
    rng = rng_for(seed, spec.symbol)
    traded = demo_sessions(spec, end, days)
    when = sessions.minutes(traded)
    n, count, lengths = len(when.ts), len(traded), traded.lengths()
    length, per_year = SESSION_MINUTES[spec.asset_class], SESSIONS_PER_YEAR[spec.asset_class]
    var_profile, volume_profile = intraday_profiles(spec.asset_class, when)

    # Session regimes times minute clusters; Student-t shocks (df 5) scaled to unit variance.
    daily = np.repeat(garch_variance(rng.standard_normal(count), 0.10, 0.85), lengths)
    shocks = rng.standard_t(5, n) / np.sqrt(5 / 3)
    clusters = garch_variance(shocks, 0.05, 0.94)
    minute_var = clusters * daily * var_profile
    # Equities leave a fifth of the daily variance to the overnight gap.
    overnight = 0.2 if spec.asset_class == EQUITY else 0.0
    sigma = spec.annual_vol * np.sqrt((1 - overnight) * minute_var / (per_year * length))
    gaps = np.zeros(n)
    if overnight:
        opens = np.flatnonzero(when.position == 0)
        day_sigma = spec.annual_vol * np.sqrt(overnight * daily[opens] / per_year)
        gaps[opens[1:]] = (rng.standard_normal(count) * day_sigma)[1:]
    drift = spec.annual_drift / (per_year * length) - sigma**2 / 2
    prices = _ohlc(spec, rng, gaps, drift + sigma * shocks, sigma)

    # Volume follows its profile and rises with volatility, with noise of its own.
    volume = np.round(
        spec.daily_volume
        / length
        * volume_profile
        * np.sqrt(daily * clusters)
        * rng.lognormal(-0.06, 0.35, n)
    )
    typical = (prices["high"] + prices["low"] + prices["close"]) / 3
    return Bars(
        ts=when.ts,
        **prices,
        volume=volume,
        vwap=_round(typical, spec.tick_size / 100),
        trade_count=np.maximum(1, np.round(volume / spec.trade_size)).astype(np.int32),
        session=when.session,
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
    """Daily bars aggregated from one-minute bars in time order, one a session, stamped at
    midnight UTC of the session's date (of the bar's UTC date where ``session`` is None)."""
    days = bars.ts.astype("datetime64[D]") if bars.session is None else bars.session
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
