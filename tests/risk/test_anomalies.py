"""Anomaly detection on a session with planted outliers and gaps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from marketdata.models import MinuteBar
from qvp_site.db import partitions
from risk.anomalies import detect, trading_periods
from risk.models import MarketAnomaly
from tests.risk.conftest import instrument

# Monday 13 May 2024: NYSE/Nasdaq open 13:30-20:00 UTC (daylight-saving time).
OPEN = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)
CLOSE = OPEN + timedelta(minutes=390)
SPIKE = OPEN + timedelta(minutes=100)
HEAVY = OPEN + timedelta(minutes=250)
MISSING = [(OPEN + timedelta(minutes=200), 5), (OPEN + timedelta(minutes=389), 1)]


@pytest.fixture
def session(db):
    partitions.prepare_load("marketdata_minutebar", OPEN - timedelta(days=2), CLOSE)
    stock = instrument("AAPL", exchange="XNAS")
    rng = np.random.default_rng(4)
    returns = rng.normal(0, 0.0005, 390)
    returns[100] = 0.03  # a 3% jump in one minute, and back the next
    returns[101] = -0.03
    closes = 190 * np.exp(np.cumsum(returns))
    volume = rng.lognormal(np.log(10_000), 0.3, 390)
    volume[250] = 2_000_000  # two hundred times the usual
    minutes = np.arange(390)
    dropped = np.concatenate([np.arange(200, 205), [389]])
    keep = ~np.isin(minutes, dropped)
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=stock,
            ts=OPEN + timedelta(minutes=int(k)),
            open=float(c),
            high=float(c),
            low=float(c),
            close=float(c),
            volume=float(v),
        )
        for k, c, v in zip(minutes[keep], closes[keep], volume[keep], strict=True)
    )
    return stock


def test_robust_z_ignores_the_outlier_itself(db):
    """The SQL function's score by hand: volumes whose log(1 + v) are 1 2 3 4 100 have the
    median 3 and absolute deviations 2 1 0 1 97, so the MAD 1 (the outlier does not drag it)."""
    partitions.prepare_load("marketdata_minutebar", OPEN, OPEN + timedelta(minutes=5))
    stock = instrument("ZED", exchange="NOWHERE")
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=stock, ts=OPEN + timedelta(minutes=k), open=10, high=10, low=10,
                  close=10, volume=float(np.expm1(x)))
        for k, x in enumerate([1.0, 2.0, 3.0, 4.0, 100.0])
    )  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT ts, score FROM risk_market_anomalies(%s, %s, %s, 0.5)"
            " WHERE kind = 'volume' ORDER BY ts",
            [stock.pk, OPEN, OPEN + timedelta(minutes=5)],
        )
        scores = [score for _, score in cursor.fetchall()]
    assert scores == pytest.approx([-1.349, -0.6745, 0.6745, 65.4265])  # |0| is no outlier


def test_planted_outliers_and_gaps_are_found_and_stored(session):
    # The window reaches back over the weekend and the night: closed, so no gaps there.
    found = detect(session, hours=72, end=CLOSE, threshold=5)
    assert found.calendar == "XNAS"
    assert found.bars == 384
    kinds = {
        (row.kind, row.ts.to_pydatetime().replace(tzinfo=UTC))
        for row in found.outliers.itertuples()
    }
    assert ("return", SPIKE) in kinds
    assert ("return", SPIKE + timedelta(minutes=1)) in kinds
    assert ("volume", HEAVY) in kinds
    assert len(kinds) == 3
    gaps = [
        (row.ts.to_pydatetime().replace(tzinfo=UTC), int(row.value))
        for row in found.gaps.itertuples()
    ]
    assert gaps == MISSING
    stored = MarketAnomaly.objects.filter(instrument=session)
    assert stored.filter(kind="gap").count() == 2
    assert stored.get(kind="gap", ts=MISSING[0][0]).until == MISSING[0][0] + timedelta(minutes=4)
    assert stored.get(kind="volume").value == 2_000_000
    # Running again restates, adding nothing.
    detect(session, hours=72, end=CLOSE, threshold=5)
    assert stored.count() == 5


def test_a_holiday_is_not_a_gap(session):
    # 27 May 2024 was Memorial Day: the calendar has no session, so no bars is no gap.
    found = detect(session, hours=24, end=datetime(2024, 5, 28, tzinfo=UTC))
    assert (found.bars, len(found.gaps)) == (0, 0)


def test_command(session):
    out = StringIO()
    call_command(
        "detect_anomalies",
        "--symbol",
        "AAPL",
        "--hours",
        "24",
        "--as-of",
        CLOSE.isoformat(),
        stdout=out,
    )
    text = out.getvalue()
    assert "3 outlier(s), 2 gap(s)" in text
    assert "2024-05-13 16:50 gap to 16:54: 5 minute(s) missing" in text  # UTC
    with pytest.raises(CommandError, match="--symbol: unknown symbol NOPE on "):
        call_command("detect_anomalies", "--symbol", "NOPE")
    with pytest.raises(CommandError, match="--hours must be positive"):
        call_command("detect_anomalies", "--symbol", "AAPL", "--hours", "0")


def test_instrument_without_a_calendar(db):
    stock = instrument("ODD", exchange="NOWHERE")
    found = detect(stock, hours=1, end=OPEN)
    assert found.calendar is None
    assert found.gaps.empty


def test_fx_sessions_are_the_market_datas_week_not_the_librarys():
    """FX trades from Sunday 17:00 New York (21:00 UTC in May) to Friday 17:00, as the demo
    and marketdata.sessions keep it: the library's "24/5" (Monday to Friday in UTC) would
    call Sunday evening's bars out of hours and Friday evening's missing minutes gaps."""
    start = datetime(2024, 5, 24, 12, tzinfo=UTC)  # Friday
    end = datetime(2024, 5, 28, tzinfo=UTC)  # Tuesday
    lo, hi, opens, closes = trading_periods("24/5", start, end)
    assert (lo, hi) == (start, end)
    roll = [datetime(2024, 5, d, 21, tzinfo=UTC) for d in (23, 24, 26, 27, 28)]
    assert list(zip(opens, closes, strict=True)) == [
        (roll[0], roll[1]),  # Friday's session: Thursday 17:00 to Friday 17:00 New York
        (roll[2], roll[3]),  # Monday's, from Sunday 17:00
        (roll[3], roll[4]),  # Tuesday's
    ]


@pytest.mark.django_db
def test_windows_apart_leave_no_hole_in_the_loaded_sessions():
    """A window in January, then one in March: February's sessions are loaded too, since the
    calendar's range then spans it and a window there loads nothing more (a missed run of
    the scheduler leaves such a hole; its gaps would go unreported)."""
    from risk.anomalies import load_sessions
    from risk.models import TradingPeriod

    def at(month: int, day: int) -> datetime:
        return datetime(2024, month, day, tzinfo=UTC)

    assert load_sessions("XNYS", at(1, 4), at(1, 6))
    assert load_sessions("XNYS", at(3, 1), at(3, 2))
    assert not load_sessions("XNYS", at(2, 1), at(2, 2))
    february = TradingPeriod.objects.filter(opens_at__gte=at(2, 1), opens_at__lt=at(3, 1))
    assert february.count() == 20  # NYSE's sessions of February 2024 (Presidents' Day shut)
