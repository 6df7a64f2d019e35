"""The database keeps the books (trading/sql/books/0002.sql); portfolio snapshots are a time series.

Snapshots are not compressed: they carry row-level security, which TimescaleDB's compression
does not allow. Nothing in trading has a retention policy: regulators set minimums, not maximums.
"""

from django.db import migrations

from qvp_site.db.operations import CreateHypertable
from qvp_site.db.sqlfiles import read_sql

DROP_BOOKS = """
DROP TRIGGER IF EXISTS trading_cash_from_executions ON trading_cashentry;
DROP TRIGGER IF EXISTS trading_cash_never_edited ON trading_cashentry;
DROP TRIGGER IF EXISTS trading_position_kept_by_executions ON trading_position;
DROP TRIGGER IF EXISTS trading_execution_never_edited ON trading_execution;
DROP TRIGGER IF EXISTS trading_execution_books ON trading_execution;
DROP TRIGGER IF EXISTS trading_order_lifecycle ON trading_order;
DROP FUNCTION IF EXISTS trading_cash_from_executions(), trading_execution_books(),
    trading_book_cash(trading_execution, text, numeric),
    trading_replay_position(trading_position, bigint, trading_execution, numeric),
    trading_position_for_update(bigint, bigint), trading_execution_sane(trading_execution),
    trading_refuse_edit(), trading_refuse_direct_write(), trading_order_lifecycle(),
    trading_refuse(text, text), trading_position_step(numeric, numeric, numeric, numeric, numeric);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0001_initial"),
        ("qvp_site", "0002_audit_log"),
    ]

    operations = [
        migrations.RunSQL(read_sql("trading", "books", "0002"), DROP_BOOKS),
        CreateHypertable("PortfolioSnapshot", "ts", "90 days"),
    ]
