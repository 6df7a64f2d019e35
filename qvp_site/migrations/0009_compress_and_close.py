"""Compression that closes what it makes in the same transaction (qvp_site/sql/compression/
0009.sql): the job that replaces TimescaleDB's compression policies (each app's migration that
follows, ``ReplaceCompressionPolicy``), and the function ``maintain`` compresses with."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

UNINSTALL = (
    "DROP PROCEDURE IF EXISTS qvp_compress_job(integer, jsonb);"
    " DROP FUNCTION IF EXISTS qvp_compress_chunks(regclass, interval);"
    " DROP FUNCTION IF EXISTS qvp_close_timescaledb_chunks();"
)


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0008_partitions_as_qvp_makes_them")]

    operations = [
        migrations.RunSQL(read_sql("qvp_site", "compression", "0009"), UNINSTALL),
    ]
