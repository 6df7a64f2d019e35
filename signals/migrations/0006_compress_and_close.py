"""Signals and system logs compressed by the job that closes what it compresses, not by
TimescaleDB's policy, whose compressed chunks kept the application role's grants until
``maintain`` ran."""

from django.db import migrations

from qvp_site.db.operations import ReplaceCompressionPolicy


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0005_recent_prices_only"),
        ("qvp_site", "0009_compress_and_close"),
    ]

    operations = [
        ReplaceCompressionPolicy("Signal"),
        ReplaceCompressionPolicy("SystemLog"),
    ]
