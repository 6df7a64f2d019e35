"""The books follow corporate actions: ``ActionEntry``, what an action did to a position,
written by the owner's ``trading_apply_actions`` with the position and the cash it books
(trading/sql/actions/0013.sql); the books (trading/sql/books/0013.sql) give an entry its slot
in the position's sequence, replay through it on a bust or correction, and refuse an execution
dated before an applied action's ex moment; the cash ledger's kinds grow ``dividend``,
``in_lieu`` and ``delisting``. Unapplied, the functions go and those of
trading/sql/books/0007.sql come back."""

from decimal import Decimal

import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from qvp_site.db.audit import AuditChanges
from qvp_site.db.sqlfiles import read_sql

DROP_ACTIONS = """
DROP FUNCTION IF EXISTS trading_apply_actions(date);
DROP FUNCTION IF EXISTS trading_apply_actions_of(date, integer);
DROP FUNCTION IF EXISTS trading_action_effect(text, numeric, numeric, numeric, numeric, numeric,
                                              numeric, numeric, boolean, numeric);
DROP FUNCTION IF EXISTS trading_spin_off_received(numeric, numeric, numeric, numeric, numeric,
                                                  boolean, numeric);
DROP FUNCTION IF EXISTS trading_sell_fraction(numeric, numeric, numeric, numeric);
DROP FUNCTION IF EXISTS trading_action_rank(text);
DROP FUNCTION IF EXISTS trading_traded_ex(bigint, bigint, date);
DROP FUNCTION IF EXISTS trading_held_at(bigint, timestamptz, timestamptz);
DROP TRIGGER IF EXISTS trading_actionentry_written_by_the_books ON trading_actionentry;
DROP TRIGGER IF EXISTS trading_action_applied_stays ON marketdata_corporateaction;
DROP FUNCTION IF EXISTS trading_action_applied_stays();
DROP TRIGGER IF EXISTS trading_actionentry_never_edited ON trading_actionentry;
"""
# The books' previous version back, then what only this one had.
DROP_BOOKS = read_sql("trading", "books", "0007") + (
    "DROP FUNCTION IF EXISTS trading_refuse_before_applied_action(trading_execution,"
    " trading_execution);"
)


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0012_corporate_actions"),
        ("trading", "0012_snapshot_history"),
    ]

    operations = [
        migrations.CreateModel(
            name="ActionEntry",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("position_sequence", models.BigIntegerField()),
                (
                    "ex_at",
                    models.DateTimeField(
                        help_text="00:00 UTC of the ex-date", verbose_name="ex moment"
                    ),
                ),
                ("quantity_before", models.DecimalField(decimal_places=8, max_digits=20)),
                ("quantity_after", models.DecimalField(decimal_places=8, max_digits=20)),
                ("average_cost_before", models.DecimalField(decimal_places=12, max_digits=28)),
                ("average_cost_after", models.DecimalField(decimal_places=12, max_digits=28)),
                (
                    "realized_pnl",
                    models.DecimalField(
                        decimal_places=8,
                        default=Decimal("0"),
                        help_text="on shares paid in lieu, or a delisting",
                        max_digits=24,
                    ),
                ),
                (
                    "price",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="what cash in lieu or a delisting paid a share",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "cash",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="signed, as booked",
                        max_digits=24,
                        null=True,
                    ),
                ),
                (
                    "applied_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
            ],
            options={
                "verbose_name_plural": "action entries",
                "ordering": ["-ex_at", "account", "instrument"],
            },
        ),
        migrations.RemoveConstraint(
            model_name="cashentry",
            name="cash_kind_known",
        ),
        migrations.AlterField(
            model_name="cashentry",
            name="kind",
            field=models.CharField(
                choices=[
                    ("deposit", "deposit"),
                    ("withdrawal", "withdrawal"),
                    ("adjustment", "adjustment"),
                    ("trade", "trade"),
                    ("fee", "fee"),
                    ("dividend", "dividend"),
                    ("in_lieu", "cash in lieu"),
                    ("delisting", "delisting"),
                ],
                max_length=10,
            ),
        ),
        migrations.AddConstraint(
            model_name="cashentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    (
                        "kind__in",
                        [
                            "deposit",
                            "withdrawal",
                            "adjustment",
                            "trade",
                            "fee",
                            "dividend",
                            "in_lieu",
                            "delisting",
                        ],
                    )
                ),
                name="cash_kind_known",
            ),
        ),
        migrations.AddField(
            model_name="actionentry",
            name="account",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="action_entries",
                to="trading.account",
            ),
        ),
        migrations.AddField(
            model_name="actionentry",
            name="action",
            field=models.ForeignKey(
                on_delete=django.db.models.deletion.PROTECT,
                related_name="entries",
                to="marketdata.corporateaction",
            ),
        ),
        migrations.AddField(
            model_name="actionentry",
            name="cash_entry",
            field=models.OneToOneField(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="action_entry",
                to="trading.cashentry",
            ),
        ),
        migrations.AddField(
            model_name="actionentry",
            name="instrument",
            field=models.ForeignKey(
                help_text="the position moved",
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="marketdata.instrument",
            ),
        ),
        migrations.AddIndex(
            model_name="actionentry",
            index=models.Index(
                fields=["account", "instrument", "position_sequence"],
                name="actionentry_position_idx",
            ),
        ),
        migrations.AddConstraint(
            model_name="actionentry",
            constraint=models.UniqueConstraint(
                fields=("account", "action", "instrument"), name="actionentry_once"
            ),
        ),
        migrations.AddConstraint(
            model_name="actionentry",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    models.Q(("cash__isnull", True), ("cash_entry__isnull", True)),
                    models.Q(("cash__isnull", False), ("cash_entry__isnull", False)),
                    _connector="OR",
                ),
                name="actionentry_cash_booked",
            ),
        ),
        migrations.RunSQL(read_sql("trading", "actions", "0013"), DROP_ACTIONS),
        migrations.RunSQL(read_sql("trading", "books", "0013"), DROP_BOOKS),
        AuditChanges("ActionEntry"),
    ]
