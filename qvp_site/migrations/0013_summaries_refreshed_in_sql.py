"""The summary tables of plain PostgreSQL refreshed in SQL (issue 28,
qvp_site/sql/maintenance/0013.sql): ``qvp_refresh_summary`` and its pending-range form behind
``daily_maintenance()``, ``manage.py maintain`` and the loads' refreshes alike, and
``qvp_maintain`` replaced so that on plain PostgreSQL it refreshes the summaries itself rather
than leaving them to the command. Backwards, 0012's functions are installed again."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

BACKWARDS = f"""
DROP FUNCTION IF EXISTS qvp_maintain(boolean, timestamptz, timestamptz, text, boolean);
DROP FUNCTION IF EXISTS qvp_lock_summaries(text);
DROP FUNCTION IF EXISTS qvp_refresh_summaries(text, boolean);
DROP FUNCTION IF EXISTS qvp_refresh_summary_pending(text);
DROP FUNCTION IF EXISTS qvp_refresh_summary(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS qvp_summary_select(text, text);
DROP FUNCTION IF EXISTS qvp_summary(text);
DROP FUNCTION IF EXISTS qvp_quoted_name(text);
{read_sql("qvp_site", "maintenance", "0012")}
"""


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0012_sql_maintenance_api")]

    operations = [migrations.RunSQL(read_sql("qvp_site", "maintenance", "0013"), BACKWARDS)]
