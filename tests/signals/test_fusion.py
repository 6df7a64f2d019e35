"""Fusion on hand-made signals and performance, with answers worked out by hand."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command

from signals import fusion
from signals.models import Agent, FusedSignal, Signal, SignalPerformance
from tests.signals.conftest import START

AS_OF = START + timedelta(hours=15)
DAY = timedelta(days=1)


def emit(agent, instrument, ago, strength, confidence, horizon=DAY):
    direction = (strength > 0) - (strength < 0)
    Signal.objects.create(
        agent=agent,
        instrument=instrument,
        ts=AS_OF - ago,
        direction=direction,
        strength=strength,
        confidence=confidence,
        horizon=horizon,
    )


def skill(agent, ic, count=50):
    SignalPerformance.objects.create(
        agent=agent,
        window_days=fusion.PERFORMANCE_WINDOW_DAYS,
        window_start=AS_OF - timedelta(days=30),
        window_end=AS_OF,
        signal_count=count,
        information_coefficient=ic,
    )


@pytest.fixture
def book(partitioned, aapl, msft, momentum, reversion):
    sentiment = Agent.objects.create(name="sentiment_agent", kind="sentiment")
    retired = Agent.objects.create(name="retired_agent", kind="other", active=False)
    skill(momentum, 0.3)
    skill(reversion, -0.2)  # ranks returns the wrong way: no say
    skill(sentiment, 0.9, count=5)  # too few signals measured: the prior instead
    emit(momentum, aapl, timedelta(hours=2), -1.0, 1.0)  # superseded by the next
    emit(momentum, aapl, timedelta(hours=1), 0.8, 0.5)  # weight 0.5 * 0.3 = 0.15
    emit(reversion, aapl, timedelta(hours=1), -0.6, 0.9)  # weight 0
    emit(sentiment, aapl, timedelta(minutes=5), -0.4, 1.0)  # weight 1.0 * 0.05
    emit(retired, aapl, timedelta(minutes=5), 1.0, 1.0)  # inactive agent
    emit(momentum, msft, 2 * DAY, 1.0, 1.0)  # its horizon is over
    emit(reversion, msft, timedelta(hours=3), 0.7, 0.8)  # the only running one: weight 0
    emit(momentum, aapl, -timedelta(minutes=1), 1.0, 1.0)  # after the fusion's time
    return {"sentiment": sentiment}


def test_confidence_and_performance_weighted_average(book, aapl, msft):
    result = fusion.fuse(AS_OF)
    by_symbol = {f.instrument.symbol: f for f in result.fused}
    apple = by_symbol["AAPL"]
    # (0.15 * 0.8 + 0 * -0.6 + 0.05 * -0.4) / 0.2 and (0.15 * 0.5 + 0 + 0.05 * 1.0) / 0.2
    assert apple.target_weight == pytest.approx(0.5)
    assert apple.confidence == pytest.approx(0.625)
    assert apple.method == "confidence_performance_weighted"
    assert apple.input_count == 3
    inputs = {i["agent"]: i for i in apple.inputs}
    assert set(inputs) == {"momentum_agent", "reversion_agent", "sentiment_agent"}
    assert inputs["momentum_agent"]["weight"] == pytest.approx(0.15)
    assert inputs["momentum_agent"]["strength"] == 0.8
    assert inputs["reversion_agent"]["weight"] == 0
    assert inputs["sentiment_agent"]["skill"] == pytest.approx(fusion.PRIOR_SKILL)
    # No skilled agent speaks about MSFT: no position, and it says so.
    assert by_symbol["MSFT"].target_weight == 0
    assert by_symbol["MSFT"].confidence == 0
    assert by_symbol["MSFT"].input_count == 1


def test_a_second_run_replaces_the_first_and_instruments_can_be_chosen(book, aapl, msft):
    fusion.fuse(AS_OF)
    SignalPerformance.objects.filter(agent__name="reversion_agent").update(
        information_coefficient=0.5
    )
    result = fusion.fuse(AS_OF, [msft.id])
    assert [f.instrument.symbol for f in result.fused] == ["MSFT"]
    assert result.fused[0].target_weight == pytest.approx(0.7)
    assert FusedSignal.objects.filter(instrument=msft).count() == 1
    assert FusedSignal.objects.count() == 2


def test_command(book):
    out = StringIO()
    call_command("fuse_signals", "--as-of", AS_OF.isoformat(), "--symbols", "AAPL", stdout=out)
    assert "AAPL: target weight +0.5000, confidence 0.625 from 3 signal(s)" in out.getvalue()
