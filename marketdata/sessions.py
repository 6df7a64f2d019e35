"""When an instrument trades: its sessions and their minutes, as numpy arrays in UTC.

- Listed instruments (equities) trade their exchange's sessions from ``exchange_calendars``:
  no session on its holidays, the early closes as published (13:00 New York the day after
  Thanksgiving and on Christmas Eve), the hours in the exchange's zone whatever its daylight
  saving (New York opens at 13:30 UTC in summer, 14:30 UTC in winter).
- FX trades from Sunday 17:00 New York to Friday 17:00: a session a weekday, named by the
  day it ends on (the market's value-date roll), that began at 17:00 New York the day before.
- Crypto trades around the clock: a session a calendar day, midnight to midnight UTC.

A session is named by its date (``label``); the daily bar of a session is stamped with it.
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date

import exchange_calendars as xcals
import numpy as np
import pandas as pd
from pandas.errors import Pandas4Warning

EQUITY, FX, CRYPTO = "equity", "fx", "crypto"
# The calendar of an exchange exchange_calendars does not know, and what sets a demo's period.
DEFAULT_CALENDAR = "XNYS"
NEW_YORK = "America/New_York"
FX_ROLL = pd.Timedelta(hours=17)  # 17:00 New York: FX's day ends, the next one begins
MINUTE = np.timedelta64(1, "m")


@dataclass(frozen=True)
class Sessions:
    """Sessions in time order: the date each is named by, its first minute and its end."""

    label: np.ndarray  # datetime64[D]
    open: np.ndarray  # datetime64[us], UTC
    close: np.ndarray  # datetime64[us], UTC: the end of the last minute

    def __len__(self) -> int:
        return len(self.label)

    def lengths(self) -> np.ndarray:
        """Minutes in each session."""
        lengths: np.ndarray = ((self.close - self.open) // MINUTE).astype(np.int64)
        return lengths


@dataclass(frozen=True)
class Minutes:
    """The start of every trading minute of some sessions, with where each sits."""

    ts: np.ndarray  # datetime64[us], UTC
    session: np.ndarray  # datetime64[D]: the label of the minute's session
    position: np.ndarray  # int: minutes since its session's open
    length: np.ndarray  # int: minutes in its session


@contextlib.contextmanager
def calendar_library() -> Iterator[None]:
    # exchange_calendars 4.13 makes pandas calls that pandas 3.1 deprecates: the warnings are
    # the library's to fix, and say nothing about our data.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Pandas4Warning)
        yield


@functools.lru_cache(maxsize=16)
def calendar(name: str) -> xcals.ExchangeCalendar:
    with calendar_library():
        return xcals.get_calendar(name)


def calendar_for(exchange: str) -> str:
    """The calendar of ``exchange`` (a MIC or an alias: XNAS and ARCX trade New York's
    sessions), New York's where exchange_calendars has none."""
    names = set(xcals.get_calendar_names(include_aliases=True))
    return exchange if exchange in names else DEFAULT_CALENDAR


def exchange_sessions(name: str, first: date, last: date) -> Sessions:
    """The sessions of calendar ``name`` dated ``first`` to ``last``, early closes included.
    ValueError naming the calendar's range when the dates leave it."""
    cal = calendar(name)
    lo, hi = cal.first_session.date(), cal.last_session.date()
    if first < lo or last > hi:
        raise ValueError(f"the {name} calendar covers {lo} to {hi}, not {first} to {last}")
    with calendar_library():
        labels = cal.sessions_in_range(pd.Timestamp(first), pd.Timestamp(last))
        opens, closes = cal.opens.loc[labels], cal.closes.loc[labels]
    return Sessions(
        label=labels.to_numpy().astype("datetime64[D]"),
        open=_utc(opens),
        close=_utc(closes),
    )


def last_sessions(name: str, end: date, count: int) -> Sessions:
    """The ``count`` sessions of calendar ``name`` ending with ``end`` or the last before it."""
    cal = calendar(name)
    lo, hi = cal.first_session.date(), cal.last_session.date()
    if not lo <= end <= hi:
        raise ValueError(f"the {name} calendar covers {lo} to {hi}, not {end}")
    with calendar_library():
        last = cal.date_to_session(pd.Timestamp(end), "previous")
        before = cal.sessions_distance(cal.first_session, last)
        if count > before:
            raise ValueError(f"the {name} calendar has {before} sessions to {end}, not {count}")
        first = cal.sessions_window(last, -count)[0]
    return exchange_sessions(name, first.date(), last.date())


def fx_sessions(first: date, last: date) -> Sessions:
    """The weekdays from ``first`` to ``last``, each from 17:00 New York the day before to
    17:00 New York (Monday's from Sunday's 17:00)."""
    labels = _days(first, last)
    labels = labels[np.is_busday(labels)]
    ends = pd.DatetimeIndex(labels.astype("datetime64[ns]")) + FX_ROLL
    closes = ends.tz_localize(NEW_YORK).tz_convert("UTC")
    opens = (ends - pd.Timedelta(days=1)).tz_localize(NEW_YORK).tz_convert("UTC")
    return Sessions(label=labels, open=_utc(opens), close=_utc(closes))


def crypto_sessions(first: date, last: date) -> Sessions:
    """Every day from ``first`` to ``last``, midnight to midnight UTC."""
    labels = _days(first, last)
    opens = labels.astype("datetime64[us]")
    return Sessions(label=labels, open=opens, close=opens + np.timedelta64(1, "D"))


def sessions_for(asset_class: str, exchange: str, first: date, last: date) -> Sessions:
    """The sessions dated ``first`` to ``last`` of an instrument of ``asset_class`` listed
    on ``exchange``."""
    if asset_class == FX:
        return fx_sessions(first, last)
    if asset_class == CRYPTO:
        return crypto_sessions(first, last)
    return exchange_sessions(calendar_for(exchange), first, last)


def minutes(sessions: Sessions) -> Minutes:
    """Every minute of ``sessions``, built at once: each minute is its session's open plus
    its position, the positions counted from each session's first minute."""
    lengths = sessions.lengths()
    starts = np.cumsum(lengths) - lengths  # index of each session's first minute
    position = np.arange(lengths.sum()) - np.repeat(starts, lengths)
    return Minutes(
        ts=np.repeat(sessions.open, lengths) + position * MINUTE,
        session=np.repeat(sessions.label, lengths),
        position=position,
        length=np.repeat(lengths, lengths),
    )


def _days(first: date, last: date) -> np.ndarray:
    return np.arange(np.datetime64(first, "D"), np.datetime64(last, "D") + 1)


def _utc(times: pd.Series | pd.DatetimeIndex) -> np.ndarray:
    """Aware pandas times as naive datetime64[us] in UTC."""
    index = pd.DatetimeIndex(times)
    naive: np.ndarray = index.tz_convert("UTC").tz_localize(None).to_numpy()
    return naive.astype("datetime64[us]")
