"""Regime signatures from the risk app's estimators, k-means labels, similar regimes."""

from __future__ import annotations

import numpy as np
import pytest

from risk.estimators import OHLC, PERIODS_PER_YEAR, parkinson, yang_zhang
from vectors import bars, regimes, search
from vectors.models import VolatilityRegime


def test_signatures_are_the_estimators_over_daily_and_minute_windows(months_of_bars):
    created = regimes.build(months_of_bars.values())
    # 80 sessions: the first day every daily window covers is the 65th.
    assert created == {"SPY": 80 - regimes.FIRST_DAY, "NVDA": 80 - regimes.FIRST_DAY}
    spy = months_of_bars["SPY"]
    daily, minute = bars.load(spy.id, daily=True), bars.load(spy.id)
    regime = VolatilityRegime.objects.filter(instrument=spy).order_by("period_end")[3]
    day = regimes.FIRST_DAY + 3
    assert regime.period_start.date() == daily.ts[day].astype("M8[D]").item()
    yz = yang_zhang(OHLC(daily.open, daily.high, daily.low, daily.close), 21, 252)
    assert regime.statistics["yang_zhang_21d"] == pytest.approx(np.log(yz[day]), abs=1e-6)
    # The day's last 60 minute bars give its 60-minute Parkinson estimate.
    last = int(
        np.flatnonzero(minute.closes_at() == np.datetime64(regime.period_end.replace(tzinfo=None)))[
            0
        ]
    )
    window = slice(last - 59, last + 1)
    ohlc = OHLC(minute.open[window], minute.high[window], minute.low[window], minute.close[window])
    expected = parkinson(ohlc, 60, PERIODS_PER_YEAR["1m"])[-1]
    assert regime.statistics["parkinson_60m"] == pytest.approx(np.log(expected), abs=1e-6)
    assert len(regime.signature) == 64
    assert len(regime.statistics) == 64


def test_regimes_are_labelled_calmest_first_and_builds_are_incremental(months_of_bars):
    regimes.build(months_of_bars.values(), clusters=3)
    rows = list(
        VolatilityRegime.objects.values_list("label", "cluster", "statistics__yang_zhang_21d")
    )
    assert {label for label, _, _ in rows} <= {"calm", "normal", "elevated"}
    assert all(label and cluster is not None for label, cluster, _ in rows)
    level = {c: np.median([v for _, k, v in rows if k == c]) for c in {k for _, k, _ in rows}}
    assert [level[c] for c in sorted(level)] == sorted(level.values())
    assert regimes.build(months_of_bars.values()) == {"SPY": 0, "NVDA": 0}


def test_similar_regimes_to_the_current_one(months_of_bars):
    regimes.build(months_of_bars.values())
    current = search.current_regime(months_of_bars["NVDA"])
    assert (
        current
        == VolatilityRegime.objects.filter(instrument=months_of_bars["NVDA"])
        .order_by("-period_end")
        .first()
    )
    matches = search.similar_regimes(current, 5)
    assert len(matches) == 5
    assert current.id not in [m.regime.id for m in matches]
    distances = [m.distance for m in matches]
    assert distances == sorted(distances)
    signature = np.array(current.signature)
    others = VolatilityRegime.objects.exclude(id=current.id)
    exact = sorted(
        1 - np.dot(signature, r.signature) / np.linalg.norm(signature) / np.linalg.norm(r.signature)
        for r in others
    )
    assert distances == pytest.approx(exact[:5], abs=1e-5)


def test_similar_regimes_ending_by_a_time_are_the_nearest_of_those(months_of_bars):
    """The filter is in the search, not after it: k rows still come back, the nearest of the
    periods that ended by then, though newer ones lie nearer."""
    regimes.build(months_of_bars.values())
    current = search.current_regime(months_of_bars["NVDA"])
    ends = sorted(VolatilityRegime.objects.values_list("period_end", flat=True))
    cutoff = ends[len(ends) // 2]  # half the periods ended by then
    matches = search.similar_regimes(current, 5, ended_by=cutoff)
    signature = np.array(current.signature)
    older = VolatilityRegime.objects.filter(period_end__lte=cutoff).exclude(id=current.id)
    assert older.count() > 5
    exact = sorted(
        1 - np.dot(signature, r.signature) / np.linalg.norm(signature) / np.linalg.norm(r.signature)
        for r in older
    )
    assert [m.distance for m in matches] == pytest.approx(exact[:5], abs=1e-5)
    assert all(m.regime.period_end <= cutoff for m in matches)


def _series(count: int, *, daily: bool) -> bars.Series:
    """``count`` bars one period apart from 2024-01-02, prices drifting up."""
    period = bars.DAY if daily else bars.MINUTE
    ts = np.datetime64("2024-01-02T00:00", "us") + np.arange(count) * period
    close = 100 + np.arange(count, dtype=float)
    return bars.Series(ts, close, close + 1, close - 1, close, np.ones(count), period)


@pytest.mark.parametrize(
    ("daily", "minute", "reason"),
    [
        (300, 0, "no minute bars"),  # a Yahoo download alone
        (0, 3000, "no daily bars"),  # an FX feed of minutes alone
        (0, 0, "no daily bars"),  # an instrument without bars
        (1, 1, "1 daily bar(s), a signature needs 65"),
    ],
)
def test_bars_of_one_kind_or_too_few_give_no_signature_and_say_why(daily, minute, reason):
    found = regimes.signatures(_series(daily, daily=True), _series(minute, daily=False))
    assert found.raw.shape == (0, 64)
    assert regimes.skip_reason(_series(daily, daily=True), _series(minute, daily=False)) == reason


def test_no_minute_bars_resample_to_none():
    assert len(bars.resample(_series(0, daily=False), 30)) == 0
