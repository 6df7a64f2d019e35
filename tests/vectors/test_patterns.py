"""Strategy patterns: backtests stored as runs and trades, outcomes from the bars, and a
recommendation on a hand-made set with a known answer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection

from marketdata.models import Instrument
from qvp_site.db.binary_copy import copy_rows
from trading.models import BacktestRun, BacktestTrade
from vectors import bars, patterns, search
from vectors.models import StrategyPattern

from .conftest import plan
from .test_search import make_set

RECOMMEND = "/api/v1/vectors/strategies/recommend/"
T0 = datetime(2024, 1, 1, tzinfo=UTC)


def test_rank_strategies_weighs_outcomes_by_similarity():
    def row(strategy, distance, ret, sharpe=1.0, drawdown=0.01):
        return {
            "strategy": strategy,
            "distance": distance,
            "forward_return": ret,
            "sharpe": sharpe,
            "max_drawdown": drawdown,
        }

    ranked = search.rank_strategies(
        [
            row("a", 0.1, 0.02),
            row("a", 0.5, -0.02),  # weights 0.9 and 0.5
            row("b", 0.2, 0.005),
            row("b", 0.2, 0.007),
            row("c", 1.5, 0.5),  # pointing away: no weight at all
        ]
    )
    assert [s.strategy for s in ranked] == ["b", "a", "c"]
    a = ranked[1]
    assert a.weight == pytest.approx(1.4)
    assert a.expected_return == pytest.approx((0.9 * 0.02 - 0.5 * 0.02) / 1.4)
    assert a.hit_rate == pytest.approx(0.9 / 1.4)
    assert ranked[2].weight == 0
    assert search.rank_strategies([]) == []


@pytest.fixture
def hand_made(db):
    """Two market states, A and B, 1,500 patterns around each: around A "alpha" earned and
    "beta" lost; around B the other way round, and "beta" earned more."""
    instrument = Instrument.objects.create(symbol="AAA", asset_class="equity")
    feature_set = make_set("hand-made-state", 256, kind="state")
    rng = np.random.default_rng(1)
    a, b = rng.standard_normal(256) * 3, rng.standard_normal(256) * 3
    runs = {
        name: BacktestRun.objects.create(
            strategy=name, period_start=T0, period_end=T0 + timedelta(days=90)
        )
        for name in ("alpha", "beta")
    }
    outcome = {
        ("A", "alpha"): 0.01,
        ("A", "beta"): -0.01,
        ("B", "alpha"): -0.01,
        ("B", "beta"): 0.02,
    }
    rows = []
    for i in range(3000):
        centre = "A" if i % 2 == 0 else "B"
        strategy = "alpha" if i % 4 < 2 else "beta"
        state = (a if centre == "A" else b) + rng.standard_normal(256) * 0.5
        rows.append(
            (
                strategy,
                runs[strategy].id,
                instrument.id,
                feature_set.id,
                T0 + timedelta(minutes=i),
                state.astype(np.float32),
                60,
                1,
                outcome[centre, strategy],
                1.0,
                0.01,
            )
        )
    copy_rows(patterns.TABLE, patterns.COLUMNS, patterns.TYPES, rows)
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {patterns.TABLE}")
    return feature_set, a, b


def test_the_recommendation_on_a_hand_made_set(hand_made):
    feature_set, a, b = hand_made
    near_a = search.recommend(a + 0.1, feature_set, T0, k=50)
    assert [s.strategy for s in near_a.ranked] == ["alpha", "beta"]
    assert near_a.ranked[0].expected_return == pytest.approx(0.01)
    assert len(near_a.neighbours) == 50
    assert sum(s.patterns for s in near_a.ranked) == 50
    near_b = search.recommend(b - 0.1, feature_set, T0, k=50)
    assert [s.strategy for s in near_b.ranked] == ["beta", "alpha"]
    assert near_b.ranked[0].expected_return == pytest.approx(0.02)
    evidence = near_b.neighbours
    assert {n["forward_return"] for n in evidence} == {0.02, -0.01}  # all from around B
    assert [n["distance"] for n in evidence] == sorted(n["distance"] for n in evidence)


def test_the_pattern_search_uses_its_hnsw_index(hand_made):
    feature_set, a, _ = hand_made
    queryset = search.patterns_queryset(a, feature_set, 50)
    assert "Index Scan using strategypattern_cosine_hnsw" in plan(*search.compiled(queryset), 50)


def test_backtests_become_runs_trades_and_patterns(months_of_bars):
    written = patterns.build(months_of_bars.values())
    assert set(written) == set(patterns.STRATEGIES)
    assert StrategyPattern.objects.count() == sum(written.values()) > 0
    runs = BacktestRun.objects.filter(parameters__made_by=patterns.MADE_BY)
    assert runs.count() == sum(
        1
        for s in patterns.STRATEGIES
        for i in months_of_bars
        if StrategyPattern.objects.filter(strategy=s, instrument=months_of_bars[i]).exists()
    )
    run = runs.filter(strategy="momentum-1h", parameters__symbol="SPY").get()
    mine = StrategyPattern.objects.filter(backtest=run).order_by("ts")
    assert BacktestTrade.objects.filter(run=run).count() == 2 * mine.count()
    returns = np.array(mine.values_list("forward_return", flat=True))
    assert run.total_return == pytest.approx(np.prod(1 + returns) - 1)
    assert run.hit_rate == pytest.approx((returns > 0).mean())
    # One pattern's outcome, from the bars: in at the decision's close, out an hour later.
    pattern = mine[10]
    minute = bars.load(months_of_bars["SPY"].id)
    i = int(np.flatnonzero(minute.closes_at() == np.datetime64(pattern.ts.replace(tzinfo=None)))[0])
    move = minute.close[i + 60] / minute.close[i] - 1
    assert pattern.forward_return == pytest.approx((1 + pattern.position * move) * 0.9999**2 - 1)
    assert pattern.horizon_minutes == 60
    path = 1 + pattern.position * (minute.close[i : i + 61] / minute.close[i] - 1)
    assert pattern.max_drawdown == pytest.approx(1 - (path / np.maximum.accumulate(path)).min())
    # The momentum rule: long after a rising hour, short after a falling one.
    assert pattern.position == np.sign(np.log(minute.close[i] / minute.close[i - 60]))
    # A second build replaces the first.
    again = patterns.build(months_of_bars.values())
    assert again == written
    assert StrategyPattern.objects.count() == sum(written.values())


def test_recommend_api(api, months_of_bars):
    response = api.get(RECOMMEND, {"symbol": "SPY"})
    assert response.status_code == 400
    assert "no strategy patterns built yet" in str(response.json()["symbol"])
    out = StringIO()
    call_command("build_patterns", "--no-progress", stdout=out)
    assert "strategy patterns written." in out.getvalue()
    response = api.get(RECOMMEND, {"symbol": "SPY", "k": 30})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["best"] == body["ranked"][0]["strategy"]
    assert body["best"] in patterns.STRATEGIES
    assert len(body["evidence"]) == 30
    assert sum(s["patterns"] for s in body["ranked"]) == 30
    assert body["as_of"].startswith("2024-05-17T20:00")
    assert api.get(RECOMMEND, {"symbol": "SPY", "k": 0}).status_code == 400
