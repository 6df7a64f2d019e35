"""A single fill booked by the per-row trigger (issue 27): ``trading_book_executions`` takes
the per-row path of ``trading_execution_books`` for a batch of one execution, which costs a
fraction of the set-based path for one row, with the same rules (trading/sql/books/0018.sql).
Unapplied, 0017's function comes back (its file redefines it as it was)."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [("trading", "0017_booking_by_statement")]

    operations = [
        migrations.RunSQL(
            read_sql("trading", "books", "0018"), read_sql("trading", "books", "0017")
        )
    ]
