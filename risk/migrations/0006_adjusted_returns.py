"""Risk reads returns adjusted for corporate actions (risk/sql/functions/0006.sql): the bar
reads, the daily returns and calculate_var take an adjustment ('total_return' by default),
read through marketdata's adjusted bars (marketdata 0012); holdings are the books' with their
corporate-action entries (trading 0013), valued as traded. A risk run records the adjustment it
read (runs before it read prices as traded, which total_return equals as known then: there
were no actions), so that a repeat reads the same.
Unapplied, the new signatures go and version 0005 returns."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# Version 0005's signatures are one argument shorter: with the new ones beside them every call
# naming fewer arguments would be ambiguous, so the new ones go first.
DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS calculate_var(float8, integer, timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS calculate_var(bigint, float8, integer, timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text);
DROP FUNCTION IF EXISTS risk_minutebars(timestamptz, text);
DROP FUNCTION IF EXISTS risk_dailybars(timestamptz, text);
DROP FUNCTION IF EXISTS risk_adjustment_checked(text);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0005_snapshots_as_known"),
        ("marketdata", "0012_corporate_actions"),  # marketdata_<table>_adjusted
        ("trading", "0013_corporate_actions"),  # trading_held_at: holdings after splits
    ]

    operations = [
        migrations.AddField(
            model_name="riskrun",
            name="adjustment",
            field=models.CharField(db_default="total_return", max_length=12),
        ),
        migrations.AddConstraint(
            model_name="riskrun",
            constraint=models.CheckConstraint(
                condition=models.Q(("adjustment__in", ["raw", "split", "total_return"])),
                name="risk_run_adjustment_known",
            ),
        ),
        migrations.RunSQL(
            read_sql("risk", "functions", "0006"),
            DROP_FUNCTIONS + read_sql("risk", "functions", "0005"),
        ),
    ]
