"""An instrument's volatility estimates over time, one line per estimator."""

from __future__ import annotations

from datetime import timedelta

from django.utils import timezone

from dashboard import charts
from marketdata.models import Instrument
from risk.models import VolatilityEstimate

HISTORY = timedelta(days=370)


def volatility_chart(instrument: Instrument, timeframe: str = "1d") -> tuple[dict, int | None]:
    """The chart of the estimates over the window most recently computed, and that window."""
    estimates = VolatilityEstimate.objects.filter(
        instrument=instrument, timeframe=timeframe, ts__gte=timezone.now() - HISTORY
    )
    window = estimates.order_by("-ts").values_list("window", flat=True).first()
    if window is None:
        return charts.chart(), None
    rows = (
        estimates.filter(window=window)
        .order_by("estimator", "ts")
        .values_list("estimator", "ts", "value")
    )
    return charts.chart(*charts.lines(charts.curves(rows))), window
