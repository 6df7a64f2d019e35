"""Bars and ticks compressed by the job that closes what it compresses, not by TimescaleDB's
policy, whose compressed chunks kept the application role's INSERT until ``maintain`` ran."""

from django.db import migrations

from qvp_site.db.operations import ReplaceCompressionPolicy


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0007_bars_merged_by_owner"),
        ("qvp_site", "0009_compress_and_close"),
    ]

    operations = [
        ReplaceCompressionPolicy("MinuteBar"),
        ReplaceCompressionPolicy("Tick"),
    ]
