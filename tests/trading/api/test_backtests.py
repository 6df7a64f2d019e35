"""/api/v1/backtests/: a run with its trades, refused whole for one bad trade."""

from __future__ import annotations

from decimal import Decimal

from tests.clients import client_of
from tests.fixtures.trading_api import backtest, post
from trading.models import BacktestRun, BacktestTrade

D = Decimal


def test_a_backtest_with_its_trades(alice, desks):
    run = post(alice, "/api/v1/backtests/", backtest())
    assert (run["created_by"], run["trade_count"], "trades" in run) == ("alice", 2, False)
    trades = alice.get(f"/api/v1/backtests/{run['id']}/trades/").json()["results"]
    assert [(t["side"], D(t["quantity"])) for t in trades] == [("buy", D(10)), ("sell", D(-10))]
    # Anyone but an auditor records runs; everyone reads them.
    audrey = client_of(desks["audrey"])
    assert [
        r["id"] for r in audrey.get("/api/v1/backtests/?strategy=momentum").json()["results"]
    ] == [run["id"]]
    assert audrey.get("/api/v1/backtests/?strategy=other").json()["results"] == []


def test_a_backtest_with_a_bad_trade_is_refused_whole(alice):
    bad = backtest()
    bad["trades"][1]["price"] = "0"
    bad["trades"].append({**bad["trades"][0], "ts": "2025-01-01T00:00:00Z"})
    body = post(alice, "/api/v1/backtests/", bad, status=400)
    assert body == {"trades": {"1": {"price": ["must be positive"]}}}
    body = post(
        alice, "/api/v1/backtests/", {**backtest(), "trades": [bad["trades"][2]]}, status=400
    )
    assert body == {"trades": {"0": {"ts": ["lies outside the run's period"]}}}
    assert (BacktestRun.objects.count(), BacktestTrade.objects.count()) == (0, 0)
