"""An action's ex moment follows its exchange's time zone (marketdata/sql/actions/0013.sql): the
exchanges' time zones (``marketdata_exchange``, filled here), ``marketdata_ex_moment(instrument,
ex_date)`` and the factors of the adjusted reads by it; the adjusted reads of bars from a moment
on (``<table>_adjusted(adjustment, known_at, from)``) look up only the actions after it.

Unapplied, version 0012's factors come back (00:00 UTC of every ex-date) and what 0013 made
goes; ``marketdata_ex_moment(date)``, 0012's, never changed."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

DROP = """
DROP FUNCTION IF EXISTS marketdata_ex_moment(bigint, date),
    marketdata_ex_moment_in(date, text), marketdata_exchange_time_zone(bigint, date),
    marketdata_dailybar_adjusted(text, timestamptz, timestamptz),
    marketdata_minutebar_adjusted(text, timestamptz, timestamptz),
    marketdata_action_factors(text, timestamptz, timestamptz);
DROP TABLE IF EXISTS marketdata_exchange;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0012_corporate_actions"),
    ]

    operations = [
        # Reversed: version 0012 of every function of the family back first (its factors name
        # none of 0013's functions), then 0013's own objects dropped.
        migrations.RunSQL(
            read_sql("marketdata", "actions", "0013"),
            read_sql("marketdata", "actions", "0012") + DROP,
        ),
    ]
