"""The audit log, its hash chain and protection (qvp_site/sql/audit/0002.sql); the app role's
way to make partitions (qvp_site/sql/partitions/0002.sql)."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

UNINSTALL_AUDIT = """
DROP TRIGGER IF EXISTS qvp_audit_append_only ON qvp_site_auditentry;
DROP TRIGGER IF EXISTS qvp_audit_truncate ON qvp_site_auditentry;
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
DROP FUNCTION IF EXISTS qvp_audit_guard_truncate(), qvp_audit_refuse_change(), qvp_audit_row(),
    qvp_audit_lock_head(), qvp_audit_seal();
DROP FUNCTION IF EXISTS qvp_audit_hash(text, bigint, text, text, text, jsonb, jsonb, text, text,
    timestamptz);
DROP TABLE IF EXISTS qvp_audit_head;
"""
DROP_CREATE_PARTITION = (
    "DROP FUNCTION IF EXISTS qvp_create_partition(regclass, text, timestamptz, timestamptz);"
)


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
        migrations.RunSQL(read_sql("qvp_site", "audit", "0002"), UNINSTALL_AUDIT),
        migrations.RunSQL(read_sql("qvp_site", "partitions", "0002"), DROP_CREATE_PARTITION),
    ]
