"""The demo agents' signals, news and sentiment, checked against the rules recomputed with
pandas from the same bars."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
from django.db import connection

from marketdata import demo as bars_demo
from marketdata.models import Instrument
from signals import demo
from signals.models import Agent, FusedSignal, NewsArticle, Signal, SignalPerformance

END = date(2024, 5, 17)


@pytest.fixture
def bars(db):
    spec = bars_demo.DEMO_SYMBOLS["AAPL"]
    minute = bars_demo.generate(spec, END, 60, seed=7)
    daily = bars_demo.daily_from_minutes(minute)
    instrument = Instrument.objects.create(symbol="AAPL", asset_class="equity")
    bars_demo.prepare_partitions(connection, minute, daily)
    bars_demo.load(connection, instrument.id, minute, daily)
    return {spec: (minute, daily)}


def test_signals_follow_the_rules_computed_from_the_bars(bars):
    lines = []
    demo.seed(bars, 7, lines.append)
    assert lines[0].startswith("Signals demo: 2 agents,")
    (daily,) = [d for _m, d in bars.values()]
    closes = pd.Series(daily.close, index=pd.to_datetime(daily.ts, utc=True))
    vol = np.log(closes).diff().rolling(20).std()
    z = np.log(closes / closes.shift(20)) / (vol * np.sqrt(20))
    momentum = {s.ts: s for s in Signal.objects.filter(agent__name="momentum_agent").order_by("ts")}
    assert len(momentum) == len(daily) - 20
    for day, expected in z.dropna().items():
        signal = momentum[day.to_pydatetime() + timedelta(days=1)]
        assert signal.strength == pytest.approx(np.tanh(expected))
        assert signal.confidence == pytest.approx(1 - np.exp(-abs(expected)))
        assert signal.direction == np.sign(expected)
        assert signal.horizon == timedelta(days=5)
    last = momentum[max(momentum)]
    assert set(last.explanation["features"]) == {"return_20d", "volatility_20d"}
    assert "sd from flat" in last.explanation["reason"]
    mean = closes.rolling(10).mean()
    reversion_z = (closes - mean) / closes.rolling(10).std()
    reversion = Signal.objects.filter(agent__name="mean_reversion_agent").order_by("ts")
    assert [s.strength for s in reversion] == pytest.approx(
        (-np.tanh(reversion_z.dropna() / 2)).tolist()
    )
    assert SignalPerformance.objects.filter(signal_count__gt=0).count() == 4
    fused = FusedSignal.objects.filter(instrument__symbol="AAPL").order_by("ts")
    # Each of the last sessions is fused once a signal runs: the first wait for the warm-up.
    first = Signal.objects.order_by("ts").values_list("ts", flat=True).first()
    sessions = closes.index[-demo.FUSED_SESSIONS :] + pd.Timedelta(days=1)
    expected = [ts.to_pydatetime() for ts in sessions if ts >= first]
    assert len(expected) > 30
    assert [f.ts for f in fused] == expected


def test_news_follow_the_big_moves_and_a_second_seed_adds_nothing(bars):
    demo.seed(bars, 7, lambda line: None)
    (daily,) = [d for _m, d in bars.values()]
    returns = pd.Series(daily.close).pct_change()
    z = returns / returns.rolling(20).std().shift(1)
    big = z[z.abs() > 2]
    news = list(NewsArticle.objects.order_by("ts"))
    assert len(news) == len(big)
    for article, (index, move) in zip(news, big.items(), strict=True):
        day = daily.ts[index].astype(datetime).replace(tzinfo=UTC)
        assert article.ts == day + timedelta(hours=22)
        assert article.symbols == ["AAPL"]
        assert ("jumps" if returns[index] > 0 else "falls") in article.headline
        assert article.sentiment == pytest.approx(np.tanh(move / 3))
    lines = []
    demo.seed(bars, 7, lines.append)
    assert lines == ["Demo agents exist already: no demo signals added."]
    assert Agent.objects.count() == 2
