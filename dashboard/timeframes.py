"""The instrument page's candles for each timeframe, from the bucketed queries.

1m shows the last two sessions of minute bars as they are; 1h, 1d and 1w are buckets of the
minute bars (``marketdata.buckets.bucketed``), which the hourly and daily aggregates serve
whenever they cover the range; the window of each is sized to a few hundred candles, what a
chart shows legibly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import F

from marketdata.buckets import BucketRequest, bucketed
from marketdata.models import Instrument, MinuteBar
from marketdata.prices import Price
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


@dataclass(frozen=True)
class Candles:
    timeframe: Timeframe
    rows: list[dict]  # bucket, open, high, low, close, volume in time order
    source: str  # the table or aggregate the rows came from


def timeframe(key: str | None) -> Timeframe:
    """The timeframe ``key`` names, the default for anything else."""
    return TIMEFRAMES.get(key or DEFAULT, TIMEFRAMES[DEFAULT])


def candles(instrument: Instrument, tf: Timeframe, latest: Price | None) -> Candles:
    """``tf``'s candles of ``instrument`` up to its ``latest`` price's bar (none without one).
    An instrument with daily bars only has its 1d and 1w candles from those."""
    if latest is None:
        return Candles(tf, [], "")
    daily_only = latest.source == "daily"
    if daily_only and tf.intraday:
        return Candles(tf, [], "")
    if tf.key == "1m":
        bars = (
            MinuteBar.objects.filter(instrument=instrument, ts__lte=latest.ts)
            .order_by("-ts")
            .values("open", "high", "low", "close", "volume", bucket=F("ts"))[: tf.candles]
        )
        return Candles(tf, list(reversed(bars)), MinuteBar._meta.db_table)
    end = tf.width.add(tf.width.floor(latest.ts))
    start = tf.width.add(end, -tf.candles)
    source = "1d" if daily_only else "1m"
    found = bucketed(BucketRequest(instrument.pk, tf.width, start, end, timeframe=source))
    return Candles(tf, found.rows, found.source)
