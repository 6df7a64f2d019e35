"""Bars, ticks and option quotes become time-series tables, with their policies and aggregates.

Chunks are sized to the data: 7 days of minute bars (the design documents' figure), a year of
daily bars, a day of ticks or option quotes. Minute bars and ticks compress after 7 days where
the engine can. No market-data retention by default: research needs the history
(QVP_RETENTION sets one per table).
"""

from django.db import migrations

from qvp_site.db.operations import (
    AddCompressionPolicy,
    CreateContinuousAggregate,
    CreateHypertable,
)

BAR_COLUMNS = [
    ("open", "first", "open"),
    ("high", "max", "high"),
    ("low", "min", "low"),
    ("close", "last", "close"),
    ("volume", "sum", "volume"),
    ("bar_count", "count", "*"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0001_initial"),
        ("marketdata", "0001_initial"),
    ]

    operations = [
        CreateHypertable("MinuteBar", "ts", "7 days"),
        CreateHypertable("DailyBar", "ts", "1 year"),
        CreateHypertable("Tick", "ts", "1 day"),
        CreateHypertable("OptionQuote", "ts", "1 day"),
        AddCompressionPolicy(
            "MinuteBar", "7 days", segment_by=["instrument"], order_by="ts DESC, id"
        ),
        AddCompressionPolicy(
            "Tick", "7 days", segment_by=["instrument"], order_by="ts DESC, sequence, id"
        ),
        CreateContinuousAggregate(
            "marketdata_minutebar_1h",
            "MinuteBar",
            "ts",
            "1 hour",
            BAR_COLUMNS,
            group_by=["instrument"],
            refresh_window="3 days",
        ),
        CreateContinuousAggregate(
            "marketdata_minutebar_1d",
            "MinuteBar",
            "ts",
            "1 day",
            BAR_COLUMNS,
            group_by=["instrument"],
            refresh_window="7 days",
        ),
    ]
