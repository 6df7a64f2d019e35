"""Each execution carries where its order and position stand after it; the books' triggers
(trading/sql/books/0005.sql) read and write that running state, and a statement-level trigger
writes each touched order and position once. Unapplied, the books go back to version 0002."""

from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# Back to version 0002: the statement-level settlement goes, 0002's row-by-row books return.
BOOKS_0002 = """
DROP TRIGGER IF EXISTS trading_settle_executions ON trading_execution;
DROP FUNCTION IF EXISTS trading_settle_executions();
""" + read_sql("trading", "books", "0002")


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0004_finite_values"),
        ("trading", "0004_auditors_group"),
    ]

    operations = [
        migrations.AddField(
            model_name="execution",
            name="order_filled_after",
            field=models.DecimalField(decimal_places=8, editable=False, max_digits=20, null=True),
        ),
        migrations.AddField(
            model_name="execution",
            name="position_average_cost_after",
            field=models.DecimalField(decimal_places=12, editable=False, max_digits=28, null=True),
        ),
        migrations.AddField(
            model_name="execution",
            name="position_quantity_after",
            field=models.DecimalField(decimal_places=8, editable=False, max_digits=20, null=True),
        ),
        migrations.AddField(
            model_name="execution",
            name="position_realized_pnl_after",
            field=models.DecimalField(decimal_places=8, editable=False, max_digits=24, null=True),
        ),
        migrations.AddIndex(
            model_name="execution",
            index=models.Index(
                fields=["order", "position_sequence"], name="execution_order_latest_idx"
            ),
        ),
        migrations.RunSQL(read_sql("trading", "books", "0005"), BOOKS_0002),
    ]
