"""signals_price_at, signals_signal_outcomes and calculate_signal_performance (sql/performance.sql)."""

from pathlib import Path

from django.db import migrations

SQL = (Path(__file__).resolve().parent.parent / "sql" / "performance.sql").read_text()

DROP = """
DROP FUNCTION IF EXISTS calculate_signal_performance(text, integer, timestamptz);
DROP FUNCTION IF EXISTS signals_signal_outcomes(text, integer, timestamptz);
DROP FUNCTION IF EXISTS signals_price_at(bigint, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0002_timeseries"),
        ("marketdata", "0002_timeseries"),
    ]

    operations = [migrations.RunSQL(SQL, DROP)]
