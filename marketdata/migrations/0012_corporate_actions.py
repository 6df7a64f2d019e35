"""Corporate actions (``CorporateAction``): splits, cash and stock dividends, spin-offs and
delistings, known from when the system learnt them, audited; written through the owner's
``marketdata_action_set`` and ``_withdraw`` and never edited nor deleted; the factors that
adjust prices at read and the adjusted reads of the bar tables (marketdata/sql/actions/0012.sql).

Unapplied, the actions go; the bars, stored as traded, stay as they are."""

from decimal import Decimal

import django.db.models.deletion
from django.db import migrations, models

from qvp_site.db.audit import AuditChanges
from qvp_site.db.sqlfiles import read_sql

DROP = """
DROP TRIGGER IF EXISTS marketdata_action_kept ON marketdata_corporateaction;
DROP FUNCTION IF EXISTS marketdata_action_kept(),
    marketdata_action_set(bigint, text, date, numeric, numeric, text, date, bigint, numeric,
    numeric), marketdata_action_withdraw(bigint, text, date),
    marketdata_dailybar_adjusted(text, timestamptz),
    marketdata_minutebar_adjusted(text, timestamptz),
    marketdata_shares_factor(bigint, timestamptz, timestamptz, timestamptz),
    marketdata_factor_at(timestamptz, timestamptz[], double precision[]),
    marketdata_action_factors(text, timestamptz), marketdata_ex_moment(date),
    marketdata_close_before(bigint, timestamptz, timestamptz),
    marketdata_actions_known_at(timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0011_security_master"),
    ]

    operations = [
        migrations.AddField(
            model_name="ingest",
            name="adjusted_through",
            field=models.DateField(
                blank=True,
                help_text="the file was split-adjusted by its vendor through this date",
                null=True,
            ),
        ),
        migrations.CreateModel(
            name="CorporateAction",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("split", "split"),
                            ("cash_dividend", "cash dividend"),
                            ("stock_dividend", "stock dividend"),
                            ("spin_off", "spin-off"),
                            ("delisting", "delisting"),
                        ],
                        max_length=14,
                    ),
                ),
                (
                    "ex_date",
                    models.DateField(help_text="the first day the shares trade without the action"),
                ),
                (
                    "ratio",
                    models.DecimalField(
                        blank=True,
                        decimal_places=10,
                        help_text="split: new shares for each old one; stock dividend and spin-off: new shares for each one held",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "amount",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="cash dividend a share",
                        max_digits=20,
                        null=True,
                    ),
                ),
                ("currency", models.CharField(blank=True, max_length=5)),
                ("pay_date", models.DateField(blank=True, null=True)),
                (
                    "cost_fraction",
                    models.DecimalField(
                        blank=True,
                        decimal_places=10,
                        help_text="spin-off: the fraction of the cost basis that moves to the new shares",
                        max_digits=11,
                        null=True,
                    ),
                ),
                (
                    "final_price",
                    models.DecimalField(
                        blank=True,
                        decimal_places=8,
                        help_text="delisting",
                        max_digits=20,
                        null=True,
                    ),
                ),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        help_text="when the system learnt it",
                    ),
                ),
                (
                    "known_until",
                    models.DateTimeField(
                        blank=True,
                        help_text="when a restatement replaced it (empty: current)",
                        null=True,
                    ),
                ),
                (
                    "instrument",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="corporate_actions",
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "new_instrument",
                    models.ForeignKey(
                        blank=True,
                        help_text="spin-off: the instrument whose shares holders receive",
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="spun_off_by",
                        to="marketdata.instrument",
                    ),
                ),
            ],
            options={
                "ordering": ["instrument", "ex_date", "kind"],
                "indexes": [
                    models.Index(fields=["instrument", "ex_date"], name="action_by_instrument"),
                    models.Index(fields=["ex_date"], name="action_by_ex_date"),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(
                            (
                                "kind__in",
                                [
                                    "split",
                                    "cash_dividend",
                                    "stock_dividend",
                                    "spin_off",
                                    "delisting",
                                ],
                            )
                        ),
                        name="action_kind_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                models.Q(
                                    ("kind", "split"),
                                    ("kind", "stock_dividend"),
                                    ("kind", "spin_off"),
                                    _connector="OR",
                                    _negated=True,
                                ),
                                ("ratio__gt", 0),
                                _connector="OR",
                            ),
                            models.Q(
                                ("kind", "split"),
                                ("kind", "stock_dividend"),
                                ("kind", "spin_off"),
                                ("ratio__isnull", True),
                                _connector="OR",
                            ),
                        ),
                        name="action_ratio_where_shares_change",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("ratio__isnull", True),
                            models.Q(("ratio__gte", Decimal("0.0001")), ("ratio__lte", 10000)),
                            _connector="OR",
                        ),
                        name="action_ratio_in_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("kind", "split"), _negated=True),
                            models.Q(("ratio", 1), _negated=True),
                            _connector="OR",
                        ),
                        name="action_split_not_1",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                models.Q(("kind", "cash_dividend"), _negated=True),
                                models.Q(("amount__gt", 0), ("currency__regex", "^[A-Z0-9]{3,5}$")),
                                _connector="OR",
                            ),
                            models.Q(
                                ("kind", "cash_dividend"),
                                models.Q(
                                    ("amount__isnull", True),
                                    ("currency", ""),
                                    ("pay_date__isnull", True),
                                ),
                                _connector="OR",
                            ),
                        ),
                        name="action_dividend_terms",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("pay_date__isnull", True),
                            ("pay_date__gte", models.F("ex_date")),
                            _connector="OR",
                        ),
                        name="action_paid_on_or_after_ex_date",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                models.Q(("kind", "spin_off"), _negated=True),
                                models.Q(
                                    ("cost_fraction__gt", 0),
                                    ("cost_fraction__lt", 1),
                                    ("new_instrument__isnull", False),
                                ),
                                _connector="OR",
                            ),
                            models.Q(
                                ("kind", "spin_off"),
                                models.Q(
                                    ("cost_fraction__isnull", True),
                                    ("new_instrument__isnull", True),
                                ),
                                _connector="OR",
                            ),
                        ),
                        name="action_spin_off_terms",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("new_instrument", models.F("instrument")), _negated=True
                        ),
                        name="action_spin_off_elsewhere",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(
                                models.Q(("kind", "delisting"), _negated=True),
                                ("final_price__gte", 0),
                                _connector="OR",
                            ),
                            models.Q(
                                ("kind", "delisting"),
                                ("final_price__isnull", True),
                                _connector="OR",
                            ),
                        ),
                        name="action_delisting_terms",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("known_until__isnull", True),
                            ("known_until__gte", models.F("known_from")),
                            _connector="OR",
                        ),
                        name="action_known_in_order",
                    ),
                    models.UniqueConstraint(
                        condition=models.Q(("known_until__isnull", True)),
                        fields=("instrument", "kind", "ex_date"),
                        name="action_one_of_a_kind_a_day",
                    ),
                ],
            },
        ),
        AuditChanges("CorporateAction"),
        migrations.RunSQL(read_sql("marketdata", "actions", "0012"), DROP),
    ]
