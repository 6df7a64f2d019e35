"""calculate_signal_performance's cumulative_return compounds non-overlapping holding periods
(signals/sql/performance/0008.sql): capital split equally among the instruments signalled, each
share taking the instrument's signals one at a time over their horizons, the shares' compounded
returns averaged. 0007's compounded every signal's return in time order, overlapping horizons
and all instruments together. signals_signal_outcomes also returns each signal's horizon (a
changed result type: dropped and created again). Unapplied, the functions go back to 0007's."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# 0007's file creates signals_signal_outcomes with CREATE OR REPLACE, which cannot change the
# result type back: the function goes first.
DROP_OUTCOMES = """
DROP FUNCTION IF EXISTS signals_signal_outcomes(text, integer, timestamptz, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [("signals", "0007_performance_known_at")]

    operations = [
        migrations.AlterField(
            model_name="signalperformance",
            name="cumulative_return",
            field=models.FloatField(
                blank=True,
                null=True,
                help_text="the return of following the signals without overlap: the capital"
                " split equally among the instruments signalled, each share taking one signal at"
                " a time over its horizon (the next one given at or after its end), compounded;"
                " the shares' returns averaged",
            ),
        ),
        migrations.RunSQL(
            read_sql("signals", "performance", "0008"),
            DROP_OUTCOMES + read_sql("signals", "performance", "0007"),
        ),
    ]
