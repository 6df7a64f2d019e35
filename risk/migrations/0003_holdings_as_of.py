"""risk_holdings from the executions in force at the time, not the current positions: a VaR
(Python's or SQL's calculate_var) as of a past time measures the book of that time.

risk/sql/functions/0003.sql holds every function again (CREATE OR REPLACE); risk_holdings is the
one that changed. Unapplied, the functions go back to version 0002."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [("risk", "0002_timeseries_security"), ("trading", "0006_trading_metrics")]

    operations = [
        migrations.RunSQL(
            read_sql("risk", "functions", "0003"), read_sql("risk", "functions", "0002")
        ),
    ]
