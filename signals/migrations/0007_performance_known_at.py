"""Signal performance read as known at a moment (signals/sql/performance/0007.sql): the functions
take ``known_at`` (NULL: the present) and read the bars through marketdata's ``_known_at``
functions; each stored measure records the knowledge time it read and the code that ran it, so
that it can be repeated exactly. Unapplied, the functions go back to version 0005."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS calculate_signal_performance(text, integer, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS signals_signal_outcomes(text, integer, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS signals_price_at(bigint, timestamptz, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0006_compress_and_close"),
        ("marketdata", "0009_revisions"),
    ]

    operations = [
        migrations.AddField(
            model_name="signalperformance",
            name="known_at",
            field=models.DateTimeField(
                blank=True,
                null=True,
                help_text="the knowledge time the measure read market data at (null: unrecorded)",
            ),
        ),
        migrations.AddField(
            model_name="signalperformance",
            name="code_version",
            field=models.CharField(
                blank=True, max_length=100, help_text="the code that computed the measure"
            ),
        ),
        migrations.RunSQL(
            read_sql("signals", "performance", "0007"),
            DROP_FUNCTIONS + read_sql("signals", "performance", "0005"),
        ),
    ]
