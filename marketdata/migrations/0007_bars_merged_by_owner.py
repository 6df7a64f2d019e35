"""A stored bar is rewritten only by ``marketdata_merge_bars`` (marketdata/sql/loads/0007.sql),
which runs as the owner: the application's role keeps SELECT and INSERT on the market-data
tables and loses UPDATE, DELETE and TRUNCATE (marketdata/apps.py; ``create_db_roles`` applies
it and grants the function). Unapplied, the function goes."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

DROP_FUNCTION = (
    "DROP FUNCTION IF EXISTS marketdata_merge_bars(regclass, bigint, timestamptz[],"
    " double precision[], double precision[], double precision[], double precision[],"
    " double precision[], double precision[], integer[]);"
)


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0006_operators_group"),
    ]

    operations = [
        migrations.RunSQL(read_sql("marketdata", "loads", "0007"), DROP_FUNCTION),
    ]
