"""qvp_create_partition makes only the partitions qvp makes: aligned bounds one chunk interval
wide, under the name qvp gives them (qvp_site/sql/partitions/0008.sql); backwards reinstalls
version 0002."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [("qvp_site", "0007_close_chunks")]

    operations = [
        migrations.RunSQL(
            read_sql("qvp_site", "partitions", "0008"), read_sql("qvp_site", "partitions", "0002")
        ),
    ]
