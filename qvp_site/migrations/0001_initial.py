"""The extensions, and the time-series catalog with the plain engine's functions
(qvp_site/sql/timeseries/0001.sql)."""

from django.db import migrations, models

from qvp_site.db.extensions import InstallExtensions
from qvp_site.db.sqlfiles import read_sql

UNINSTALL_TIMESERIES = """
DROP FUNCTION IF EXISTS qvp_refuse_unpartitioned_row();
DROP FUNCTION IF EXISTS qvp_bucket_floor(interval, timestamptz);
DROP TABLE IF EXISTS qvp_timeseries_aggregate, qvp_timeseries_table;
"""


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        InstallExtensions(),
        migrations.RunSQL(read_sql("qvp_site", "timeseries", "0001"), UNINSTALL_TIMESERIES),
        migrations.CreateModel(
            name="JobRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("job", models.CharField(max_length=100)),
                (
                    "status",
                    models.CharField(
                        choices=[
                            ("running", "running"),
                            ("succeeded", "succeeded"),
                            ("failed", "failed"),
                            ("skipped", "skipped (running elsewhere)"),
                        ],
                        default="running",
                        max_length=10,
                    ),
                ),
                ("started_at", models.DateTimeField()),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("host", models.CharField(blank=True, max_length=255)),
                ("pid", models.IntegerField(blank=True, null=True)),
                ("output", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-started_at"],
                "indexes": [
                    models.Index(fields=["job", "-started_at"], name="jobrun_latest_per_job_idx")
                ],
            },
        ),
        migrations.CreateModel(
            name="TimeSeriesAggregate",
            fields=[
                ("view_name", models.TextField(primary_key=True, serialize=False)),
                ("source_table", models.TextField()),
                ("bucket_width", models.TextField()),
                ("refresh_window", models.TextField()),
                ("refreshed_at", models.DateTimeField(null=True)),
                ("refreshed_from", models.DateTimeField(null=True)),
                ("refreshed_to", models.DateTimeField(null=True)),
            ],
            options={
                "db_table": "qvp_timeseries_aggregate",
                "ordering": ["view_name"],
                "managed": False,
            },
        ),
        migrations.CreateModel(
            name="TimeSeriesTable",
            fields=[
                ("table_name", models.TextField(primary_key=True, serialize=False)),
                ("time_column", models.TextField()),
                ("chunk_interval", models.TextField()),
                ("retention_default", models.TextField(null=True)),
                ("compress_after", models.TextField(null=True)),
                ("retention_last_run", models.DateTimeField(null=True)),
                ("retention_last_result", models.TextField(null=True)),
            ],
            options={
                "db_table": "qvp_timeseries_table",
                "ordering": ["table_name"],
                "managed": False,
            },
        ),
    ]
