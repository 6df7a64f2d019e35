"""The audit chain without a global queue, anchored by signed checkpoints
(qvp_site/sql/audit/0010.sql; qvp_site/db/audit.py): entries are written unlinked and linked
by the sealer, which signs the head into ``AuditCheckpoint``. Entries linked before keep their
hashes, in their order. Who may see and do what is recorded too: users (but their password
hash and the time of their last login), their groups and permissions, groups and their
permissions, permissions and content types themselves, API tokens (but their digest and last
use), each from a snapshot of its rows as they are."""

from django.db import migrations, models

from qvp_site.db.audit import audit_triggers_sql, drop_audit_triggers_sql
from qvp_site.db.sqlfiles import read_sql

# The chain so far is linear in id order (version 0002 took the head per transaction).
LINK_EXISTING = """
ALTER TABLE qvp_audit_head ADD COLUMN last_seq bigint NOT NULL DEFAULT 0;
-- The sealer's latest signature of the head, renewed while the head does not move: how
-- verify_audit tells a silent sealer (qvp_site/audit_sealer.py).
ALTER TABLE qvp_audit_head ADD COLUMN heartbeat jsonb;
DROP TRIGGER IF EXISTS qvp_audit_seal ON qvp_audit_head;
DROP FUNCTION IF EXISTS qvp_audit_seal();
ALTER TABLE qvp_site_auditentry DISABLE TRIGGER qvp_audit_append_only;
UPDATE qvp_site_auditentry e SET seq = n.seq
FROM (SELECT id, row_number() OVER (ORDER BY id) AS seq FROM qvp_site_auditentry) n
WHERE e.id = n.id;
ALTER TABLE qvp_site_auditentry ENABLE TRIGGER qvp_audit_append_only;
UPDATE qvp_audit_head SET last_seq = (SELECT count(*) FROM qvp_site_auditentry), locked_by = NULL;
"""
# Back to version 0002: every entry linked first (0002 needs a hash on each), the head as it
# kept it; the functions of 0010 go.
UNLINK = """
SELECT qvp_audit_link();
DROP TRIGGER IF EXISTS qvp_audit_checkpoint_append_only ON qvp_site_auditcheckpoint;
DROP TRIGGER IF EXISTS qvp_audit_checkpoint_truncate ON qvp_site_auditcheckpoint;
DROP FUNCTION IF EXISTS qvp_audit_link(integer), qvp_audit_snapshot(regclass, text[]),
    qvp_audit_refuse_checkpoint_change();
ALTER TABLE qvp_audit_head DROP COLUMN last_seq, DROP COLUMN heartbeat;
"""

# Django's tables, and what their entries leave out.
AUDITED = {
    "auth_user": ("password", "last_login"),
    # A group's name decides what it is (the auditors group is found by its name), and a
    # permission's codename what it grants.
    "auth_group": (),
    "auth_permission": (),
    "django_content_type": (),
    "auth_user_groups": (),
    "auth_user_user_permissions": (),
    "auth_group_permissions": (),
    "qvp_site_apitoken": ("digest", "last_used_at"),
}


def _audit(table: str, left_out: tuple[str, ...]) -> migrations.RunSQL:
    columns = "ARRAY[" + ", ".join(f"'{c}'" for c in left_out) + "]::text[]"
    return migrations.RunSQL(
        audit_triggers_sql(table, left_out)
        + [f"SELECT qvp_audit_snapshot('{table}'::regclass, {columns})"],
        drop_audit_triggers_sql(table),
    )


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0009_compress_and_close"),
        ("auth", "0012_alter_user_first_name_max_length"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditCheckpoint",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("seq", models.BigIntegerField()),
                ("hash", models.CharField(max_length=64)),
                ("signed_at", models.DateTimeField()),
                (
                    "key_id",
                    models.CharField(
                        help_text="the signing key's id (its public key's digest)", max_length=16
                    ),
                ),
                ("signature", models.CharField(max_length=128)),
            ],
            options={"ordering": ["-seq"], "default_permissions": ("view",)},
        ),
        migrations.AddIndex(
            model_name="auditcheckpoint",
            index=models.Index(fields=["-seq"], name="audit_checkpoint_seq_idx"),
        ),
        migrations.AddField(
            model_name="auditentry",
            name="seq",
            field=models.BigIntegerField(null=True, unique=True),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="hash",
            field=models.CharField(max_length=64, null=True),
        ),
        migrations.AlterField(
            model_name="auditentry",
            name="prev_hash",
            field=models.CharField(max_length=64, null=True),
        ),
        # Widened for SNAPSHOT, and left wide when unapplied: the SNAPSHOT entries stay (the log
        # is append-only), and version 0002 cares for no length.
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="auditentry",
                    name="operation",
                    field=models.CharField(
                        choices=[
                            ("INSERT", "insert"),
                            ("UPDATE", "update"),
                            ("DELETE", "delete"),
                            ("SNAPSHOT", "state when auditing began"),
                        ],
                        max_length=8,
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE qvp_site_auditentry ALTER COLUMN operation TYPE varchar(8)",
                    migrations.RunSQL.noop,
                ),
            ],
        ),
        migrations.AddIndex(
            model_name="auditentry",
            index=models.Index(
                condition=models.Q(("seq__isnull", True)), fields=["id"], name="audit_unlinked_idx"
            ),
        ),
        migrations.RunSQL(LINK_EXISTING, migrations.RunSQL.noop),
        migrations.RunSQL(
            read_sql("qvp_site", "audit", "0010"), UNLINK + read_sql("qvp_site", "audit", "0002")
        ),
        *(_audit(table, left_out) for table, left_out in AUDITED.items()),
    ]
