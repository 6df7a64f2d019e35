"""As-of reads made faster (issue 26): a covering partial index of the quotes, and the psql
functions ``marketdata_*_asof`` / ``marketdata_*_after`` looking within an hour, then a day,
then beyond, in one statement (marketdata/sql/asof/0016.sql; the queryset side is
qvp_site/db/asof.py).

``tick_quote_asof``: the quotes by (instrument_id, ts, sequence), carrying id, bid and ask,
so that a join asking for those (the TCA's mid and spread, a DataFrame of quotes as of each
fill) reads the index alone: an index-only scan, three buffers a lookup instead of four
(``VACUUM`` keeps the visibility map that lets it skip the table). Made on the table as
0015's ``tick_quote_by_time``: PostgreSQL makes it on every partition and on those made
later, TimescaleDB on every chunk and those made later. Not one of the model's indexes (SQL
of the migration's own, as the functions): the model's ``tick_quote_by_time`` has the same
key and stays until the model names this one instead.

Unapplied: the index goes and the functions are 0015's again."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

INDEX = """
CREATE INDEX tick_quote_asof ON marketdata_tick (instrument_id, ts, sequence)
    INCLUDE (id, bid, ask) WHERE kind = 'quote';
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0015_asof"),
    ]

    operations = [
        migrations.RunSQL(INDEX, "DROP INDEX tick_quote_asof;"),
        migrations.RunSQL(
            read_sql("marketdata", "asof", "0016"), read_sql("marketdata", "asof", "0015")
        ),
    ]
