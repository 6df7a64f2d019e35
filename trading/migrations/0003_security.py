"""Row-level security on the account-scoped tables, and the audit trail on the books."""

from django.db import migrations

from qvp_site.db.audit import AuditChanges
from trading.security import CREATE_ACCOUNTS, drop_policies_sql, policies_sql
from trading.sqlfiles import read

SCOPED = {
    "trading_account": "id",
    "trading_order": "account_id",
    "trading_execution": "account_id",
    "trading_position": "account_id",
    "trading_cashentry": "account_id",
    "trading_portfoliosnapshot": "account_id",
}

INSERT_CHECKS = {"trading_account": CREATE_ACCOUNTS}


class Migration(migrations.Migration):
    dependencies = [("trading", "0002_books")]

    operations = [
        migrations.RunSQL(
            read("security.sql"),
            "DROP FUNCTION IF EXISTS trading_sees_all(boolean, name),"
            " trading_group_accounts(boolean), trading_is_auditor(bigint);",
        ),
        *[
            migrations.RunSQL(
                policies_sql(table, column, INSERT_CHECKS.get(table)), drop_policies_sql(table)
            )
            for table, column in SCOPED.items()
        ],
        AuditChanges("Account"),
        AuditChanges("Order"),
        AuditChanges("Execution"),
        AuditChanges("Position"),
        AuditChanges("CashEntry"),
    ]
