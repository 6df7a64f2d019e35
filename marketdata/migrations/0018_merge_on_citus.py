"""A merge of market data that Citus can plan (issue 30): marketdata/sql/revisions/0018.sql.

On Citus, the rows a merge inserts are found against the range's stored keys read once into a
CTE, not by a correlated subquery into the distributed table, which Citus refuses beside a CTE.
On TimescaleDB and plain PostgreSQL the merge's statement is 0011's, word for word.

Unapplied: 0011's merge again."""

from django.db import migrations

from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0017_distributed_on_citus"),
    ]

    operations = [
        migrations.RunSQL(
            read_sql("marketdata", "revisions", "0018"),
            read_sql("marketdata", "revisions", "0011"),
        ),
    ]
