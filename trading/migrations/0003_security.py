"""Row-level security on the account-scoped tables (trading/sql/security/0003.sql: who sees and
writes which accounts, and the policies), and the audit trail on the books."""

from django.db import migrations

from qvp_site.db.audit import AuditChanges
from qvp_site.db.sqlfiles import read_sql

SCOPED = [
    "trading_account",
    "trading_order",
    "trading_execution",
    "trading_position",
    "trading_cashentry",
    "trading_portfoliosnapshot",
]

DROP_SECURITY = (
    "".join(
        f'DROP POLICY IF EXISTS account_{name} ON "{table}";'
        for table in SCOPED
        for name in ("read", "insert", "update", "delete")
    )
    + "".join(f'ALTER TABLE "{table}" DISABLE ROW LEVEL SECURITY;' for table in SCOPED)
    + "DROP FUNCTION IF EXISTS trading_sees_all(boolean, name),"
    " trading_group_accounts(boolean), trading_is_auditor(bigint);"
)


class Migration(migrations.Migration):
    dependencies = [("trading", "0002_books")]

    operations = [
        migrations.RunSQL(read_sql("trading", "security", "0003"), DROP_SECURITY),
        AuditChanges("Account"),
        AuditChanges("Order"),
        AuditChanges("Execution"),
        AuditChanges("Position"),
        AuditChanges("CashEntry"),
    ]
