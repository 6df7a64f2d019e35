"""Maintenance in SQL (issue 28): ``daily_maintenance()`` and ``weekly_maintenance()``, the
design documents' calls, and ``qvp_maintain`` behind them and behind ``manage.py maintain``
(qvp_site/sql/maintenance/0012.sql): partitions ahead, retention, compression where due and
ANALYZE in the function; what cannot run there (the aggregates' refresh, VACUUM) named in its
report and done by the command. The catalog records QVP_RETENTION (``retention_setting``),
which the functions cannot read from the settings. The owner's only: granted to no role."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

BACKWARDS = """
DROP FUNCTION IF EXISTS weekly_maintenance(timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS daily_maintenance(timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS qvp_maintain(boolean, timestamptz, timestamptz, text);
DROP FUNCTION IF EXISTS qvp_maintain_chunks(qvp_timeseries_table);
DROP FUNCTION IF EXISTS qvp_maintain_partitions(qvp_timeseries_table, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS qvp_drop_revisions_before(text, timestamptz);
DROP FUNCTION IF EXISTS qvp_range_partitions(regclass);
DROP FUNCTION IF EXISTS qvp_retention_in_force(text, text);
ALTER TABLE qvp_timeseries_table DROP COLUMN IF EXISTS retention_setting;
"""


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0011_audit_inserts_by_statement")]

    operations = [migrations.RunSQL(read_sql("qvp_site", "maintenance", "0012"), BACKWARDS)]
