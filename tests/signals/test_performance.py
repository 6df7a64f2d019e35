"""Performance against returns computed by hand from the bars that followed each signal."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import DatabaseError, connection, transaction
from scipy.stats import spearmanr

from marketdata.models import DailyBar
from signals import performance
from signals.models import Signal, SignalPerformance
from tests.signals.conftest import START, bar

HOUR = timedelta(hours=1)
T = START + timedelta(hours=14, minutes=30)  # 14:30 UTC
AS_OF = START + timedelta(days=1)


def signal(agent, instrument, ts, direction, strength, horizon=HOUR, confidence=0.5):
    return Signal.objects.create(
        agent=agent,
        instrument=instrument,
        ts=ts,
        direction=direction,
        strength=strength,
        confidence=confidence,
        horizon=horizon,
    )


@pytest.fixture
def history(partitioned, aapl, momentum, reversion):
    """Closes known on the half hour (each bar's close is known when its minute is over)."""
    closes = [100.0, 102.0, 99.96, 98.9604, 100.0]
    for k, close in enumerate(closes):
        bar(aapl, T + k * HOUR - timedelta(minutes=1), close)
    # A bar inside the minute after a signal: not known at the signal, so not its entry.
    bar(aapl, T + timedelta(seconds=30), 500.0)
    signal(momentum, aapl, T, 1, 0.5)  # 100 -> 102: +2%, right
    signal(momentum, aapl, T + HOUR, -1, -0.4)  # 102 -> 99.96: -2%, right
    signal(momentum, aapl, T + 2 * HOUR, 1, 0.9)  # 99.96 -> 98.9604: -1%, wrong
    signal(momentum, aapl, T + 3 * HOUR, 0, 0.0)  # 98.9604 -> 100: no view, counted, no hit
    signal(momentum, aapl, AS_OF - timedelta(minutes=30), 1, 0.3)  # horizon not over yet
    signal(momentum, aapl, T - timedelta(days=40), 1, 0.3)  # before the window
    signal(reversion, aapl, T, -1, -1.0)  # another agent
    return [0.02, -0.02, -0.01, 100 / 98.9604 - 1]


def test_performance_against_hand_computed_returns(history):
    result = performance.calculate("momentum_agent", 30, AS_OF)
    assert result.signal_count == 4
    assert result.hit_rate == pytest.approx(2 / 3)
    assert result.average_return == pytest.approx((0.02 + 0.02 - 0.01 + 0.0) / 4)
    assert result.cumulative_return == pytest.approx(1.02 * 1.02 * 0.99 - 1)
    # Ranks of strength [3, 1, 4, 2] and of the returns [4, 1, 2, 3]: 1 - 6*6/(4*15).
    assert result.information_coefficient == pytest.approx(0.4)
    assert result.information_coefficient == pytest.approx(
        spearmanr([0.5, -0.4, 0.9, 0.0], history).statistic
    )
    assert result.window_end == AS_OF
    assert result.window_start == AS_OF - timedelta(days=30)


def test_the_sql_function_of_the_design_documents(history):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT signal_count, hit_rate FROM calculate_signal_performance(%s, %s, %s)",
            ["momentum_agent", 30, AS_OF],
        )
        assert cursor.fetchone() == (4, pytest.approx(2 / 3))
    # An unknown agent is named, rather than answered with an empty window.
    with (
        pytest.raises(DatabaseError, match="no agent named nobody"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute("SELECT * FROM calculate_signal_performance('nobody', 30)")


def test_unknown_agent_and_bad_window_are_refused(history):
    with pytest.raises(CommandError, match="no agent named nobody"):
        call_command("signal_performance", "--agent", "nobody", stdout=StringIO())
    with pytest.raises(CommandError, match="--days must be at least 1"):
        call_command("signal_performance", "--all", "--days", "0", stdout=StringIO())


def test_a_window_without_outcomes_has_a_count_of_zero(history):
    result = performance.calculate("reversion_agent", 1, T + timedelta(minutes=30))
    assert result.signal_count == 0
    assert result.hit_rate is None
    assert result.cumulative_return is None


def test_command_stores_and_updates_one_row_per_agent_and_window(history):
    out = StringIO()
    args = ["--agent", "momentum_agent", "--days", "30", "--days", "7", "--as-of"]
    call_command("signal_performance", *args, AS_OF.isoformat(), stdout=out)
    assert "momentum_agent 30d" in out.getvalue()
    assert "4 signals" in out.getvalue()
    assert "hit rate 66.7%" in out.getvalue()
    stored = {p.window_days: p for p in SignalPerformance.objects.all()}
    assert set(stored) == {7, 30}
    assert stored[30].signal_count == 4
    assert stored[30].cumulative_return == pytest.approx(1.02 * 1.02 * 0.99 - 1)
    # The next run replaces the row: a window further on sees fewer signals.
    later = (AS_OF + timedelta(days=29, hours=15)).isoformat()
    call_command("signal_performance", "--all", "--days", "30", "--as-of", later, stdout=out)
    stored = {(p.agent.name, p.window_days): p for p in SignalPerformance.objects.all()}
    # From 15:00 on: the 15:30, 16:30 and 17:30 signals. The 23:30 one has matured, but no
    # price came after the one it was given (18:30), so it has no outcome.
    assert stored["momentum_agent", 30].signal_count == 3
    assert stored["reversion_agent", 30].signal_count == 0


def test_daily_closes_count_once_their_day_is_over(partitioned, aapl, momentum):
    day = START
    for k, close in enumerate([50.0, 55.0, 44.0]):
        DailyBar.objects.create(
            instrument=aapl,
            ts=day + timedelta(days=k),
            open=close,
            high=close,
            low=close,
            close=close,
        )
    # At noon on day 1 the newest known close is day 0's (50), not day 1's (55).
    signal(momentum, aapl, day + timedelta(days=1, hours=12), 1, 1.0, horizon=timedelta(days=1))
    outcomes = performance.calculate("momentum_agent", 30, day + timedelta(days=5))
    assert outcomes.signal_count == 1
    assert outcomes.average_return == pytest.approx(55 / 50 - 1)


def test_the_scheduler_keeps_performance_current_and_fuses(history):
    from qvp_site.scheduler import discover

    jobs = discover()
    out = StringIO()
    jobs["signal-performance"].run(out)
    stored = {(p.agent.name, p.window_days) for p in SignalPerformance.objects.all()}
    assert stored == {(a, d) for a in ("momentum_agent", "reversion_agent") for d in (7, 30)}
    assert "4 performance row(s) stored." in out.getvalue()
    jobs["fuse-signals"].run(out)
    assert "0 instrument(s) fused" in out.getvalue()  # the history's signals ran out in 2024


def test_a_close_older_than_ten_days_is_no_price(partitioned, aapl, momentum):
    bar(aapl, T - timedelta(days=11), 100.0)
    bar(aapl, T + timedelta(days=1), 110.0)
    signal(momentum, aapl, T, 1, 0.5, horizon=timedelta(days=2))
    assert performance.calculate("momentum_agent", 30, AS_OF + timedelta(days=5)).signal_count == 0
    bar(aapl, T - timedelta(days=9), 100.0)
    result = performance.calculate("momentum_agent", 30, AS_OF + timedelta(days=5))
    assert result.signal_count == 1
    assert result.average_return == pytest.approx(0.1)
