"""Market-data anomalies in SQL (issue 28): ``detect_market_data_anomalies(symbol, hours)``, the
design documents' call, and ``risk_market_anomalies(instrument, start, end, threshold)`` behind
it and behind ``manage.py detect_anomalies`` (risk/sql/anomalies/0008.sql). The exchanges'
trading sessions, which the calendar library computes in Python, are copied by the command into
``TradingPeriod`` (over the range ``TradingCalendar`` records), where the function reads them
for gaps. Unapplied, the functions go before the tables they read."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS detect_market_data_anomalies(text, double precision, timestamptz,
                                                     double precision);
DROP FUNCTION IF EXISTS risk_market_anomalies(bigint, timestamptz, timestamptz, double precision);
DROP FUNCTION IF EXISTS risk_require_market_data(text);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0007_finite_values"),
    ]

    operations = [
        migrations.CreateModel(
            name="TradingCalendar",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("name", models.CharField(max_length=32, unique=True)),
                ("sessions_from", models.DateTimeField()),
                ("sessions_to", models.DateTimeField()),
                (
                    "loaded_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "ordering": ["name"],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("sessions_to__gt", models.F("sessions_from"))),
                        name="trading_calendar_range",
                    )
                ],
            },
        ),  # fmt: skip
        migrations.CreateModel(
            name="TradingPeriod",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("opens_at", models.DateTimeField()),
                ("closes_at", models.DateTimeField()),
                (
                    "calendar",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="periods",
                        to="risk.tradingcalendar",
                    ),
                ),
            ],
            options={
                "ordering": ["calendar", "opens_at"],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("calendar", "opens_at"), name="trading_period_once"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("closes_at__gt", models.F("opens_at"))),
                        name="trading_period_range",
                    ),
                ],
            },
        ),  # fmt: skip
        migrations.RunSQL(read_sql("risk", "anomalies", "0008"), DROP_FUNCTIONS),
    ]
