"""A risk run's performance metrics read the portfolio snapshots as stored at its knowledge time
(risk/sql/functions/0005.sql; the snapshots' history is trading 0012), and the benchmark is the
instrument that bore its symbol on the valuation date (the security master). Unapplied, the
new signature of risk_snapshot_returns goes and version 0004 returns."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

# Version 0004's calls name three arguments, which the new signature's default would make
# ambiguous: it goes first.
DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS risk_snapshot_returns(bigint, timestamptz, integer, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0004_risk_runs"),
        ("trading", "0012_snapshot_history"),
        ("marketdata", "0011_security_master"),  # marketdata_resolve_symbols
    ]

    operations = [
        migrations.RunSQL(
            read_sql("risk", "functions", "0005"),
            DROP_FUNCTIONS + read_sql("risk", "functions", "0004"),
        ),
    ]
