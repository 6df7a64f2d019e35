"""Ranges the application's role loaded but may not refresh (TimescaleDB lets only the owner
refresh a continuous aggregate): kept here until the next `maintain` refreshes them."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0002_audit_log")]

    operations = [
        migrations.RunSQL(
            "ALTER TABLE qvp_timeseries_aggregate ADD COLUMN IF NOT EXISTS pending_from"
            " timestamptz, ADD COLUMN IF NOT EXISTS pending_to timestamptz",
            "ALTER TABLE qvp_timeseries_aggregate DROP COLUMN IF EXISTS pending_from,"
            " DROP COLUMN IF EXISTS pending_to",
        )
    ]
