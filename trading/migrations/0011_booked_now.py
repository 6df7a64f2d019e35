"""An execution's or a cash entry's ``created_at`` is set by the database on insert
(trading/sql/booked/0011.sql): reads as known at a moment take it for the booking time, so no
writer may choose it. Unapplied, the triggers and their function go."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

DROP = """
DROP TRIGGER IF EXISTS trading_execution_booked_now ON trading_execution;
DROP TRIGGER IF EXISTS trading_cashentry_booked_now ON trading_cashentry;
DROP FUNCTION IF EXISTS trading_booked_now();
"""


class Migration(migrations.Migration):
    dependencies = [("trading", "0010_snapshot_known_at")]

    operations = [migrations.RunSQL(read_sql("trading", "booked", "0011"), DROP)]
