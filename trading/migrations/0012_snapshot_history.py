"""Portfolio snapshots keep their history: a snapshot taken again with other numbers, or
deleted, keeps the row it replaces in ``PortfolioSnapshotRevision``, written by a trigger on
the snapshots (trading/sql/snapshots/0012.sql), and ``trading_portfoliosnapshot_known_at(t)``
reads them as stored at t. Snapshots stored before this migration are known from the knowledge
time they were computed at, else from their own time. Unapplied, the trigger and functions go
with the table."""

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# When the snapshots already stored were stored is not recorded: known from the knowledge time
# they were computed at (recorded since trading 0010), else from their own time, never later
# than now. A risk run recorded before this migration then reads them as it did.
STORED_BEFORE = """
UPDATE trading_portfoliosnapshot SET known_from = least(coalesce(known_at, ts), now())
"""

DROP = """
DROP TRIGGER IF EXISTS trading_snapshot_keep_revision ON trading_portfoliosnapshot;
DROP FUNCTION IF EXISTS trading_snapshot_keep_revision();
DROP TRIGGER IF EXISTS trading_snapshot_revision_append_only ON trading_portfoliosnapshotrevision;
DROP FUNCTION IF EXISTS trading_snapshot_revision_refuse_change();
DROP FUNCTION IF EXISTS trading_portfoliosnapshot_known_at(timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0011_booked_now"),
        ("marketdata", "0009_revisions"),  # marketdata_actor()
    ]

    operations = [
        migrations.AddField(
            model_name="portfoliosnapshot",
            name="known_from",
            field=models.DateTimeField(
                db_default=django.db.models.functions.datetime.Now(),
                help_text="when the system stored these numbers",
            ),
        ),
        migrations.CreateModel(
            name="PortfolioSnapshotRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ts", models.DateTimeField()),
                ("currency", models.CharField(max_length=3)),
                ("cash", models.DecimalField(decimal_places=8, max_digits=24)),
                ("market_value", models.DecimalField(decimal_places=8, max_digits=24)),
                ("nav", models.DecimalField(decimal_places=8, max_digits=24)),
                ("gross_exposure", models.DecimalField(decimal_places=8, max_digits=24)),
                ("net_exposure", models.DecimalField(decimal_places=8, max_digits=24)),
                ("daily_pnl", models.DecimalField(decimal_places=8, max_digits=24, null=True)),
                ("unpriced", models.JSONField(blank=True, default=list)),
                (
                    "known_at",
                    models.DateTimeField(
                        blank=True,
                        help_text="the knowledge time it was computed at (null: unrecorded)",
                        null=True,
                    ),
                ),
                (
                    "code_version",
                    models.CharField(
                        blank=True, help_text="the code that computed it", max_length=100
                    ),
                ),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=django.db.models.functions.datetime.Now(),
                        help_text="when the system stored these numbers",
                    ),
                ),
                ("row_id", models.BigIntegerField(help_text="the id of the snapshot as it stood")),
                ("known_until", models.DateTimeField(help_text="when it was replaced")),
                (
                    "change",
                    models.CharField(
                        choices=[("revised", "revised"), ("deleted", "deleted")], max_length=7
                    ),
                ),
                ("actor", models.CharField(blank=True, max_length=150)),
                (
                    "db_role",
                    models.CharField(blank=True, max_length=63, verbose_name="database role"),
                ),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="trading.account",
                    ),
                ),
            ],
            options={
                "ordering": ["account", "ts", "known_until"],
                "indexes": [
                    models.Index(fields=["account", "ts"], name="snapshotrevision_by_time")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("change__in", ["revised", "deleted"])),
                        name="snapshotrevision_change_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("known_until__gte", models.F("known_from"))),
                        name="snapshotrevision_known_in_order",
                    ),
                ],
            },
        ),
        migrations.RunSQL(STORED_BEFORE, migrations.RunSQL.noop),
        migrations.RunSQL(read_sql("trading", "snapshots", "0012"), DROP),
    ]
