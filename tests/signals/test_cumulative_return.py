"""cumulative_return compounds non-overlapping holding periods (signals 0008): capital split
equally among the instruments signalled, each share taking the instrument's signals one at a
time (the next one given at or after the held one's horizon ends), the shares' compounded
returns averaged. Checked against figures worked out by hand from the bars below."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from signals import performance
from signals.models import SignalPerformance
from tests.signals.conftest import START, bar
from tests.signals.test_performance import signal

HOUR = timedelta(hours=1)
T = START + timedelta(hours=14, minutes=30)
AS_OF = START + timedelta(days=1)


def closes(instrument, prices: list[float]) -> None:
    """The close known at T + k hours is prices[k] (its minute bar ends then)."""
    for k, price in enumerate(prices):
        bar(instrument, T + k * HOUR - timedelta(minutes=1), price)


@pytest.fixture
def overlapping(partitioned, aapl, msft, momentum):
    """AAPL: a signal every hour, each held 2 hours; MSFT: 1-hour signals around a 3-hour
    direction-0 one. Each signal: (k, direction, horizon in hours), given at T + k hours."""
    closes(aapl, [100.0, 104.0, 110.0, 99.0, 88.0, 90.0, 92.4])
    closes(msft, [50.0, 55.0, 44.0, 44.0, 46.2, 41.58])
    for instrument, given in (
        (aapl, [(0, 1, 2), (1, 1, 2), (2, -1, 2), (3, 1, 2), (4, 1, 2)]),
        (msft, [(0, 1, 1), (1, 0, 3), (2, 1, 1), (4, -1, 1)]),
    ):
        for k, direction, hours in given:
            signal(momentum, instrument, T + k * HOUR, direction, 0.5 * direction,
                   horizon=hours * HOUR)  # fmt: skip


def test_overlapping_signals_are_passed_over_and_instruments_share_the_capital(overlapping):
    # AAPL's share: k0 long 100 -> 110 (+10%), held to k2; k1 is passed over (given while k0
    # is held); k2 short 110 -> 88 (+20%), held to k4; k3 passed over; k4 long 88 -> 92.4
    # (+5%), given as k2 ends: taken.
    aapl = 1.10 * 1.20 * 1.05 - 1  # 0.386
    # MSFT's share: k0 long 50 -> 55 (+10%), held to k1; k1 no view (flat, earns 0) held to
    # k4, so k2 is passed over; k4 short 46.2 -> 41.58 (+10%), given as k1's horizon ends.
    msft = 1.10 * 1.00 * 1.10 - 1  # 0.21
    result = performance.calculate("momentum_agent", 30, AS_OF)
    assert result.signal_count == 9  # every signal is still measured one by one
    assert result.cumulative_return == pytest.approx((aapl + msft) / 2)  # 0.298
    assert result.cumulative_return == pytest.approx(0.298)
    # What 0007 reported: all nine returns compounded in time order, overlaps and all.
    every = (1.10 * (99 / 104) * 1.20 * (90 / 99) * 1.05) * (1.10 * 1.0 * 1.0 * 1.10)
    assert result.cumulative_return != pytest.approx(every - 1)


def test_the_command_and_the_sql_function_give_the_same_figure(overlapping):
    out = StringIO()
    call_command(
        "signal_performance", "--agent", "momentum_agent", "--as-of", AS_OF.isoformat(),
        stdout=out,
    )  # fmt: skip
    stored = SignalPerformance.objects.get(agent__name="momentum_agent", window_days=30)
    assert stored.cumulative_return == pytest.approx(0.298)
    assert "cumulative return +29.80% (non-overlapping holdings)" in out.getvalue()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT cumulative_return FROM calculate_signal_performance(%s, %s, %s, %s)",
            ["momentum_agent", 30, AS_OF, stored.known_at],
        )
        assert cursor.fetchone()[0] == stored.cumulative_return


def test_a_share_that_lost_everything_counts_as_minus_one(partitioned, aapl, msft, momentum):
    # (0007 failed here: "cannot take logarithm of a negative number".)
    closes(aapl, [50.0, 110.0, 120.0])  # a short from 50 to 110 loses 120% of its capital
    closes(msft, [100.0, 110.0, 121.0])
    signal(momentum, aapl, T, -1, -1.0, horizon=HOUR)
    signal(momentum, aapl, T + HOUR, 1, 1.0, horizon=HOUR)  # too late for AAPL's share
    signal(momentum, msft, T, 1, 1.0, horizon=HOUR)
    signal(momentum, msft, T + HOUR, 1, 1.0, horizon=HOUR)
    result = performance.calculate("momentum_agent", 30, AS_OF)
    assert result.cumulative_return == pytest.approx((-1 + (1.10 * 1.10 - 1)) / 2)


def test_the_application_role_runs_the_function(overlapping, as_app_role):
    # signals_signal_outcomes is dropped and created again by signals 0008: still callable.
    assert performance.calculate("momentum_agent", 30, AS_OF).cumulative_return == pytest.approx(
        0.298
    )
