"""A load's record is audited and cannot be rewritten: every change of marketdata_ingest goes
into the audit log, from a snapshot of the loads as they are (the functions of qvp_site 0010),
and its rules (marketdata/sql/ingests/0010.sql) keep what identifies a load, make a finished
load final and refuse deleting one, whichever role writes."""

from django.db import migrations

from qvp_site.db.audit import audit_triggers_sql, drop_audit_triggers_sql
from qvp_site.db.sqlfiles import read_sql

TABLE = "marketdata_ingest"

DROP_RULES = [
    f"DROP TRIGGER IF EXISTS marketdata_ingest_kept ON {TABLE}",
    f"DROP TRIGGER IF EXISTS marketdata_ingest_started ON {TABLE}",
    f"DROP TRIGGER IF EXISTS marketdata_ingest_user_gone ON {TABLE}",
    "DROP FUNCTION IF EXISTS marketdata_ingest_kept(), marketdata_ingest_started(),"
    " marketdata_ingest_user_gone()",
]


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0009_revisions"),
        ("qvp_site", "0010_audit_sealed"),
    ]

    operations = [
        migrations.RunSQL(
            audit_triggers_sql(TABLE)
            + [f"SELECT qvp_audit_snapshot('{TABLE}'::regclass, ARRAY[]::text[])"],
            drop_audit_triggers_sql(TABLE),
        ),
        migrations.RunSQL(read_sql("marketdata", "ingests", "0010"), DROP_RULES),
    ]
