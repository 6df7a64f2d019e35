from django.db import migrations, models

import qvp_site.db.operations


class Migration(migrations.Migration):
    initial = True

    dependencies = []

    operations = [
        qvp_site.db.operations.InstallTimeSeriesSupport(),
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
