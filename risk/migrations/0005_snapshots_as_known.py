"""A risk run's performance metrics read the portfolio snapshots as stored at its knowledge time
(risk/sql/functions/0005.sql; the snapshots' history is trading 0012). Unapplied, the new
signature of risk_snapshot_returns goes and version 0004 returns."""

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
    ]

    operations = [
        migrations.RunSQL(
            read_sql("risk", "functions", "0005"),
            DROP_FUNCTIONS + read_sql("risk", "functions", "0004"),
        ),
    ]
