"""The instrument page's candles for each timeframe, from the bucketed queries.

1m shows the last two sessions of minute bars as they are; 1h, 1d and 1w are buckets of the
minute bars (``marketdata.buckets.bucketed``), which the hourly and daily aggregates serve
whenever they cover the range; the window of each is sized to a few hundred candles, what a
chart shows legibly.

Candles are split-adjusted unless ``?adjustment=`` says otherwise (``raw``, ``split``,
``total_return``). The daily and weekly charts span one and two years: a split inside them
drawn as traded is a candle falling by half (or a third) that nobody traded, and every candle
before it is on another scale than the price above the chart. Back-adjusted for splits, the
chart is continuous and its last candle is the latest price, as chart sites draw them by
default. Not total return by default: dividends would move every earlier candle off the
prices that were traded then (it stays a choice). A window no action adjusts reads as traded,
so that the aggregates keep serving it (the same prices, exactly).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from django.db.models import F

from marketdata.buckets import BucketRequest, bucketed
from marketdata.models import ActionKind, CorporateAction, Instrument, MinuteBar
from marketdata.prices import Price
from marketdata.querysets import ADJUSTMENTS
from qvp_site.db.intervals import Interval, parse_interval


@dataclass(frozen=True)
class Timeframe:
    key: str  # what ?tf= says
    label: str
    width: Interval
    candles: int  # how many buckets the chart spans, ending with the latest bar's

    @property
    def intraday(self) -> bool:
        """Whether the time axis shows times of day."""
        return self.width.fixed < timedelta(days=1)


TIMEFRAMES = {
    tf.key: tf
    for tf in (
        Timeframe("1m", "1 minute", parse_interval("1 minute"), 780),
        Timeframe("1h", "1 hour", parse_interval("1 hour"), 24 * 60),
        Timeframe("1d", "1 day", parse_interval("1 day"), 366),
        Timeframe("1w", "1 week", parse_interval("7 days"), 104),
    )
}
DEFAULT = "1d"
DEFAULT_ADJUSTMENT = "split"
# The kinds of action each adjustment applies (marketdata/sql/actions/0012.sql).
ADJUSTING_KINDS = {
    "raw": (),
    "split": (ActionKind.SPLIT, ActionKind.STOCK_DIVIDEND),
    "total_return": (
        ActionKind.SPLIT,
        ActionKind.STOCK_DIVIDEND,
        ActionKind.CASH_DIVIDEND,
        ActionKind.SPIN_OFF,
    ),
}


@dataclass(frozen=True)
class Candles:
    timeframe: Timeframe
    rows: list[dict]  # bucket, open, high, low, close, volume in time order
    source: str  # the table or aggregate the rows came from


def timeframe(key: str | None) -> Timeframe:
    """The timeframe ``key`` names, the default for anything else."""
    return TIMEFRAMES.get(key or DEFAULT, TIMEFRAMES[DEFAULT])


def adjustment(key: str | None) -> str:
    """The adjustment ``key`` names, the default (split) for anything else."""
    return key if key in ADJUSTMENTS else DEFAULT_ADJUSTMENT


def adjusts(instrument: Instrument, how: str, start: datetime) -> bool:
    """Whether ``how`` changes any price of ``instrument`` from ``start`` on: whether a current
    action of a kind it applies has its ex-date after ``start`` (an ex-date adjusts the bars
    before its ex moment, never later than 00:00 UTC of its day: at worst a yes for an ex-date
    whose moment came just before ``start``). One probe of the actions' (instrument, ex_date)
    index."""
    kinds = ADJUSTING_KINDS[how]
    return bool(kinds) and (
        CorporateAction.objects.filter(
            instrument=instrument,
            kind__in=kinds,
            ex_date__gt=start.astimezone(UTC).date(),
            known_until__isnull=True,
        ).exists()
    )


def candles(
    instrument: Instrument,
    tf: Timeframe,
    latest: Price | None,
    how: str = DEFAULT_ADJUSTMENT,
) -> Candles:
    """``tf``'s candles of ``instrument`` up to its ``latest`` price's bar (none without one),
    adjusted for corporate actions as ``how`` says ("raw", "split", "total_return").
    An instrument with daily bars only has its 1d and 1w candles from those."""
    if latest is None:
        return Candles(tf, [], "")
    daily_only = latest.source == "daily"
    if daily_only and tf.intraday:
        return Candles(tf, [], "")
    if tf.key == "1m":
        return _minute_candles(instrument, tf, latest, how)
    end = tf.width.add(tf.width.floor(latest.ts))
    start = tf.width.add(end, -tf.candles)
    source = "1d" if daily_only else "1m"
    if not adjusts(instrument, how, start):
        how = "raw"  # the same prices: read as traded, which the aggregates serve
    request = BucketRequest(instrument.pk, tf.width, start, end, timeframe=source, adjustment=how)
    found = bucketed(request)
    return Candles(tf, found.rows, found.source)


def _minute_candles(instrument: Instrument, tf: Timeframe, latest: Price, how: str) -> Candles:
    """The last bars up to ``latest``'s, read again adjusted when an action adjusts them."""
    rows = _last_minute_bars(instrument, tf, latest, "raw")
    table = MinuteBar._meta.db_table
    if not rows or not adjusts(instrument, how, rows[0]["bucket"]):
        return Candles(tf, rows, table)
    return Candles(tf, _last_minute_bars(instrument, tf, latest, how), f"{table}_adjusted")


def _last_minute_bars(instrument: Instrument, tf: Timeframe, latest: Price, how: str) -> list:
    bars = (
        MinuteBar.objects.adjusted(how)
        .filter(instrument=instrument, ts__lte=latest.ts)
        .order_by("-ts")
        .values("open", "high", "low", "close", "volume", bucket=F("ts"))[: tf.candles]
    )
    return list(reversed(bars))
