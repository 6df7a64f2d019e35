"""The audit log, its hash chain and protection; the app role's way to make partitions."""

from django.db import migrations, models

from qvp_site.db import audit, functions


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0001_initial"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("table_name", models.CharField(max_length=63)),
                ("row_key", models.CharField(max_length=100)),
                (
                    "operation",
                    models.CharField(
                        choices=[("INSERT", "insert"), ("UPDATE", "update"), ("DELETE", "delete")],
                        max_length=6,
                    ),
                ),
                ("old_row", models.JSONField(null=True)),
                ("new_row", models.JSONField(null=True)),
                ("actor", models.CharField(max_length=150)),
                ("db_role", models.CharField(max_length=63)),
                ("at", models.DateTimeField()),
                ("prev_hash", models.CharField(max_length=64)),
                ("hash", models.CharField(max_length=64)),
            ],
            options={
                "verbose_name_plural": "audit entries",
                "ordering": ["-id"],
                "default_permissions": ("view",),
                "indexes": [
                    models.Index(
                        fields=["table_name", "row_key", "id"], name="audit_history_of_row_idx"
                    ),
                    models.Index(fields=["actor", "-at"], name="audit_by_actor_idx"),
                    models.Index(fields=["-at"], name="audit_recent_idx"),
                ],
            },
        ),
        audit.InstallAuditLog(),
        migrations.RunSQL(functions.CREATE_PARTITION_SQL, functions.DROP_CREATE_PARTITION_SQL),
    ]
