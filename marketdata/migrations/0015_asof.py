"""As-of reads of market data (issue 26): the partial index of the quotes that a lookup of the
latest quote reads instead of wading through the trades, and the psql functions
``marketdata_quote_asof(instrument, at, ...)`` and their kin (marketdata/sql/asof/0015.sql; the
queryset side is qvp_site/db/asof.py).

The index is the model's (``Tick.Meta.indexes``): created on the table, PostgreSQL makes it on
every partition and on those made later, TimescaleDB on every chunk and those made later (a
compressed chunk reads its own segment index). Unapplied, the functions and the index go."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

DROP = """
DROP FUNCTION IF EXISTS
    marketdata_quote_asof(bigint, timestamptz, interval, boolean),
    marketdata_quote_after(bigint, timestamptz, interval, boolean),
    marketdata_trade_asof(bigint, timestamptz, interval, boolean),
    marketdata_trade_after(bigint, timestamptz, interval, boolean),
    marketdata_tick_asof(bigint, timestamptz, interval, boolean),
    marketdata_tick_after(bigint, timestamptz, interval, boolean),
    marketdata_minutebar_asof(bigint, timestamptz, interval, boolean),
    marketdata_minutebar_after(bigint, timestamptz, interval, boolean),
    marketdata_dailybar_asof(bigint, timestamptz, interval, boolean),
    marketdata_dailybar_after(bigint, timestamptz, interval, boolean),
    marketdata_asof_check(text, interval, boolean);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0014_indexes_by_time"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="tick",
            index=models.Index(
                condition=models.Q(("kind", "quote")),
                fields=["instrument", "ts", "sequence"],
                name="tick_quote_by_time",
            ),
        ),
        migrations.RunSQL(read_sql("marketdata", "asof", "0015"), DROP),
    ]
