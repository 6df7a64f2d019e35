"""signals_price_at, signals_signal_outcomes and calculate_signal_performance
(signals/sql/performance/0003.sql)."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

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

    operations = [migrations.RunSQL(read_sql("signals", "performance", "0003"), DROP)]
