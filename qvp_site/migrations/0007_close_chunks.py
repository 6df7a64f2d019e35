"""The trigger function that takes the grants TimescaleDB copies to a new chunk off it, and
the function it and create_db_roles close relations with (qvp_site/sql/chunks/0007.sql);
create_db_roles puts the trigger on each hypertable."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql

# CASCADE: the triggers create_db_roles put on the hypertables go with their function.
UNINSTALL = (
    "DROP FUNCTION IF EXISTS qvp_close_chunks() CASCADE;"
    " DROP FUNCTION IF EXISTS qvp_close_relations(regclass[]);"
)


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0006_archive")]

    operations = [
        migrations.RunSQL(read_sql("qvp_site", "chunks", "0007"), UNINSTALL),
    ]
