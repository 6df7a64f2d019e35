"""The monitoring views, system_health and the views behind it (qvp_site/sql/monitoring/0004.sql),
granted to the roles create_db_roles made before this migration ran."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

VIEWS = (
    "system_health",
    "system_slow_statements",
    "system_replication",
    "system_connections",
    "system_index_usage",
    "system_table_sizes",
)
FUNCTIONS = (
    "qvp_index_usage()",
    "qvp_connections()",
    "qvp_replication()",
    "qvp_slow_statements(integer)",
)
UNINSTALL = "".join(f"DROP VIEW IF EXISTS {v};" for v in VIEWS) + "".join(
    f"DROP FUNCTION IF EXISTS {f};" for f in FUNCTIONS
)


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0003_pending_refresh")]

    operations = [
        migrations.RunSQL(read_sql("qvp_site", "monitoring", "0004"), UNINSTALL),
    ]
