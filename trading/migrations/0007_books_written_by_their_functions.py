"""Books no role can forge, and exec ids unique per account.

The books' SQL goes to version 0007 (trading/sql/books/0007.sql): the triggers tell the books'
own writes by the role that runs them (the tables' owner, inside a function of the books)
rather than by pg_trigger_depth(), and the application cancels orders and adds cash through the
owner's functions trading_cancel_order and trading_add_cash. The application's role loses
UPDATE on orders and INSERT on cash entries here, on a database whose roles exist already
(``create_db_roles`` does the same from trading/apps.py). An execution's exec id becomes unique
within its account. Unapplied: version 0005 of the books, the role's former privileges, and
exec ids unique across accounts again (which fails if two accounts share one by then).
"""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# Back to version 0005: its functions replace these, and what 0005 did not have goes.
DROP_0007_ONLY = """
DROP FUNCTION IF EXISTS trading_cancel_order(bigint, text);
DROP FUNCTION IF EXISTS trading_add_cash(bigint, text, numeric, text, timestamptz, text);
DROP FUNCTION IF EXISTS trading_may_trade(bigint);
DROP FUNCTION IF EXISTS trading_books_writing(oid);
"""
BOOKS_0005 = read_sql("trading", "books", "0005") + DROP_0007_ONLY

# Made by 0001 with the column (UNIQUE, and the index Django adds for LIKE on a unique text).
DROP_GLOBAL_UNIQUE = """
ALTER TABLE trading_execution DROP CONSTRAINT trading_execution_exec_id_key;
DROP INDEX trading_execution_exec_id_dd376060_like;
"""
RESTORE_GLOBAL_UNIQUE = """
ALTER TABLE trading_execution ADD CONSTRAINT trading_execution_exec_id_key UNIQUE (exec_id);
CREATE INDEX trading_execution_exec_id_dd376060_like ON trading_execution
    (exec_id varchar_pattern_ops);
"""

# The application's role, where it exists, writes orders and cash only through the functions.
NARROW_APP_ROLE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_app') THEN
        REVOKE UPDATE ON trading_order FROM trading_app;
        REVOKE INSERT ON trading_cashentry FROM trading_app;
    END IF;
END $$;
"""
WIDEN_APP_ROLE = """
DO $$
BEGIN
    IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'trading_app') THEN
        GRANT UPDATE (status, status_reason, updated_at) ON trading_order TO trading_app;
        GRANT INSERT ON trading_cashentry TO trading_app;
    END IF;
END $$;
"""


class Migration(migrations.Migration):
    dependencies = [("trading", "0006_trading_metrics")]

    operations = [
        migrations.AddConstraint(
            model_name="execution",
            constraint=models.UniqueConstraint(
                fields=("exec_id", "account"), name="execution_exec_id_unique_per_account"
            ),
        ),
        # The unique constraint on exec_id alone goes by its name: Django's AlterField would
        # look it up in the catalog, and sqlmigrate would show nothing once it is gone.
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(DROP_GLOBAL_UNIQUE, RESTORE_GLOBAL_UNIQUE)],
            state_operations=[
                migrations.AlterField(
                    model_name="execution",
                    name="exec_id",
                    field=models.CharField(max_length=64),
                )
            ],
        ),
        migrations.RunSQL(read_sql("trading", "books", "0007"), BOOKS_0005),
        migrations.RunSQL(NARROW_APP_ROLE, WIDEN_APP_ROLE),
    ]
