"""Inserts into audited tables are recorded by statement (qvp_site/sql/audit/0011.sql): one
INSERT of the entries from the statement's transition table, instead of a trigger call per
row; updates and deletes stay row by row. The entries are those the row trigger wrote, in the
same order. The no-op statement trigger of releases before 0010 (qvp_audit_lock) goes, with
its function. Undone, every table is back on its 0010 triggers."""

from django.db import migrations

from qvp_site.db.audit import audit_triggers_sql
from qvp_site.db.sqlfiles import read_sql

# Every table audited by the migrations before this one, and what its entries leave out
# (qvp_site 0010, trading 0003, 0008 and 0013, marketdata 0010 to 0012, risk 0002).
AUDITED = {
    "auth_user": ("password", "last_login"),
    "auth_group": (),
    "auth_permission": (),
    "django_content_type": (),
    "auth_user_groups": (),
    "auth_user_user_permissions": (),
    "auth_group_permissions": (),
    "qvp_site_apitoken": ("digest", "last_used_at"),
    "trading_account": (),
    "trading_account_groups": (),
    "trading_order": (),
    "trading_execution": (),
    "trading_position": (),
    "trading_cashentry": (),
    "trading_actionentry": (),
    "marketdata_ingest": (),
    "marketdata_listing": (),
    "marketdata_corporateaction": (),
    "risk_risklimit": (),
}


def _by_statement(table: str, left_out: tuple[str, ...]) -> migrations.RunSQL:
    columns = "ARRAY[" + ", ".join(f"'{c}'" for c in left_out) + "]::text[]"
    return migrations.RunSQL(
        [f"SELECT qvp_audit_install('{table}'::regclass, {columns})"],
        [
            f"DROP TRIGGER IF EXISTS qvp_audit_insert ON {table}",
            *audit_triggers_sql(table, left_out),
        ],
    )


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0010_audit_sealed"),
        ("trading", "0013_corporate_actions"),
        ("marketdata", "0012_corporate_actions"),
        ("risk", "0002_timeseries_security"),
    ]

    operations = [
        migrations.RunSQL(
            read_sql("qvp_site", "audit", "0011"),
            "DROP FUNCTION IF EXISTS qvp_audit_install(regclass, text[]),"
            " qvp_audit_by_statement(regclass), qvp_audit_insert()",
        ),
        *(_by_statement(table, left_out) for table, left_out in AUDITED.items()),
        # Undone, version 0010 first: its qvp_audit_lock_head, for the triggers put back.
        migrations.RunSQL(
            "DROP FUNCTION qvp_audit_lock_head()", read_sql("qvp_site", "audit", "0010")
        ),
    ]
