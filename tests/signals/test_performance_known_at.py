"""A stored performance measure repeats exactly, whatever corrections came after it: it records
the knowledge time it read market data at, and the functions read the bars as known then."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from signals import performance
from signals.models import SignalPerformance
from tests.signals.test_performance import AS_OF, HOUR, T, history  # noqa: F401 (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

FIELDS = ("signal_count", "hit_rate", "information_coefficient", "average_return")


def _correct(tmp_path, ts, close: float) -> str:
    """A vendor's corrected minute bar, loaded as any file is (so its revision is real)."""
    path = tmp_path / "fix.csv"
    path.write_text(f"timestamp,open,high,low,close\n{ts:%Y-%m-%d %H:%M:%S},{close},{close},"
                    f"{close},{close}\n")  # fmt: skip
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", "AAPL", "--timeframe", "1m", stdout=out)
    return out.getvalue()


def _measure(p) -> tuple:
    return (*(getattr(p, name) for name in FIELDS), p.cumulative_return)


def test_a_stored_measure_repeats_exactly_after_a_correction(history, tmp_path):  # noqa: F811
    call_command(
        "signal_performance", "--agent", "momentum_agent", "--as-of", AS_OF.isoformat(),
        stdout=StringIO(),
    )  # fmt: skip
    stored = SignalPerformance.objects.get(agent__name="momentum_agent", window_days=30)
    assert stored.known_at is not None
    assert stored.code_version
    # The close the first signal's exit was measured at (its minute ends at T + 1h) is
    # corrected from 102 to 103 after the measure.
    assert "1 revised" in _correct(tmp_path, T + HOUR - timedelta(minutes=1), 103.0)

    present = performance.calculate("momentum_agent", 30, AS_OF)
    assert present.cumulative_return != stored.cumulative_return  # the correction shows now
    again = performance.calculate("momentum_agent", 30, AS_OF, known_at=stored.known_at)
    assert _measure(again) == _measure(stored)  # to the last digit
    with connection.cursor() as cursor:  # the same in psql
        cursor.execute(
            "SELECT cumulative_return FROM calculate_signal_performance(%s, %s, %s, %s)",
            ["momentum_agent", 30, AS_OF, stored.known_at],
        )
        assert cursor.fetchone()[0] == stored.cumulative_return


def test_the_command_repeats_a_measure_at_its_knowledge_time(history, tmp_path):  # noqa: F811
    first = performance.refresh([30], ["momentum_agent"], AS_OF)[0]
    known_at = SignalPerformance.objects.get(window_days=30).known_at
    _correct(tmp_path, T + HOUR - timedelta(minutes=1), 103.0)
    out = StringIO()
    call_command(
        "signal_performance", "--agent", "momentum_agent", "--as-of", AS_OF.isoformat(),
        "--known-at", known_at.isoformat(), stdout=out,
    )  # fmt: skip
    again = SignalPerformance.objects.get(window_days=30)
    assert again.known_at == known_at
    assert _measure(again) == _measure(first)
