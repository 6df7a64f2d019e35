"""Which groups see and trade an account goes into the audit log, from a snapshot of the
grants as they are (the functions of qvp_site 0010)."""

from django.db import migrations

from qvp_site.db.audit import audit_triggers_sql, drop_audit_triggers_sql

TABLE = "trading_account_groups"


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0007_books_written_by_their_functions"),
        ("qvp_site", "0010_audit_sealed"),
    ]

    operations = [
        migrations.RunSQL(
            audit_triggers_sql(TABLE)
            + [f"SELECT qvp_audit_snapshot('{TABLE}'::regclass, ARRAY[]::text[])"],
            drop_audit_triggers_sql(TABLE),
        ),
    ]
