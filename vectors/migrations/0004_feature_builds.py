"""A feature build records the knowledge time it read the bars at, the code that ran and the
windows it embedded (vectors/embeddings.py), so that it can be repeated and compared."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("vectors", "0003_raw_features_as_doubles"),
    ]

    operations = [
        migrations.CreateModel(
            name="FeatureBuild",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "known_at",
                    models.DateTimeField(help_text="the knowledge time the bars were read at"),
                ),
                ("code_version", models.CharField(blank=True, max_length=100)),
                (
                    "started_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("windows", models.JSONField(blank=True, default=dict)),
                (
                    "feature_set",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="builds",
                        to="vectors.featureset",
                    ),
                ),
            ],
            options={
                "ordering": ["-started_at", "-id"],
            },
        ),
    ]
