"""Transaction cost analysis: the time-series table of what each execution cost
(``ExecutionCost``, 30-day chunks by ``executed_at``, row-level security as on the executions,
not compressed for that reason), and the functions that refresh it, measure each order's
implementation shortfall and aggregate the costs (trading/sql/tca/0015.sql). Unapplied, the
functions go, then the table."""

import django.db.models.deletion
from django.db import migrations, models

from qvp_site.db.operations import CreateHypertable
from qvp_site.db.sqlfiles import read_sql

DROP_TCA = """
DROP POLICY IF EXISTS account_read ON trading_executioncost;
DROP POLICY IF EXISTS account_insert ON trading_executioncost;
DROP POLICY IF EXISTS account_update ON trading_executioncost;
DROP POLICY IF EXISTS account_delete ON trading_executioncost;
ALTER TABLE trading_executioncost DISABLE ROW LEVEL SECURITY;
DROP FUNCTION IF EXISTS trading_tca_summary(text, timestamptz, timestamptz, bigint);
DROP FUNCTION IF EXISTS trading_tca_shortfall(timestamptz, timestamptz, bigint, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_refresh(timestamptz, timestamptz, bigint, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_check(text, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_live_executions(timestamptz, timestamptz, bigint);
DROP FUNCTION IF EXISTS trading_tca_price(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_bar(bigint, timestamptz, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_trade(bigint, timestamptz, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS trading_tca_quote(bigint, timestamptz, timestamptz, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0015_asof"),
        ("trading", "0014_actions_at_their_ex_moment"),
    ]

    operations = [
        migrations.CreateModel(
            name="ExecutionCost",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                (
                    "side",
                    models.CharField(choices=[("buy", "buy"), ("sell", "sell")], max_length=4),
                ),
                ("quantity", models.DecimalField(decimal_places=8, max_digits=20)),
                ("price", models.DecimalField(decimal_places=8, max_digits=20)),
                (
                    "notional",
                    models.DecimalField(
                        decimal_places=8, help_text="|quantity| x price", max_digits=24
                    ),
                ),
                ("liquidity", models.CharField(blank=True, max_length=8)),
                ("executed_at", models.DateTimeField()),
                (
                    "arrival_at",
                    models.DateTimeField(
                        help_text="the order's creation (its first fill if later)"
                    ),
                ),
                ("arrival_price", models.FloatField(blank=True, null=True)),
                (
                    "arrival_source",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("quote_mid", "quote mid"),
                            ("trade", "last trade"),
                            ("bar_close", "minute bar close"),
                            ("", "no market data"),
                        ],
                        max_length=9,
                    ),
                ),
                ("slippage_bps", models.FloatField(blank=True, null=True)),
                ("mid_at_fill", models.FloatField(blank=True, null=True)),
                ("spread_paid_bps", models.FloatField(blank=True, null=True)),
                ("markout_1s_bps", models.FloatField(blank=True, null=True)),
                ("markout_10s_bps", models.FloatField(blank=True, null=True)),
                ("markout_1m_bps", models.FloatField(blank=True, null=True)),
                ("markout_5m_bps", models.FloatField(blank=True, null=True)),
                ("markout_30m_bps", models.FloatField(blank=True, null=True)),
                ("markout_1d_bps", models.FloatField(blank=True, null=True)),
                (
                    "markout_source",
                    models.CharField(
                        blank=True,
                        choices=[
                            ("ticks", "quote ticks"),
                            ("minute_bars", "minute bars"),
                            ("", "no market data"),
                        ],
                        max_length=11,
                    ),
                ),
                ("computed_at", models.DateTimeField()),
                (
                    "known_at",
                    models.DateTimeField(help_text="the knowledge time market data was read at"),
                ),
                (
                    "account",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="trading.account",
                    ),
                ),
                (
                    "execution",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="trading.execution",
                    ),
                ),
                (
                    "instrument",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "order",
                    models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="trading.order",
                    ),
                ),
            ],
            options={
                "ordering": ["-executed_at", "-execution"],
                "indexes": [
                    models.Index(
                        fields=["account", "executed_at"], name="executioncost_by_account"
                    ),
                    models.Index(
                        fields=["instrument", "executed_at"], name="executioncost_by_instrument"
                    ),
                ],
                "constraints": [
                    models.UniqueConstraint(
                        fields=("execution", "executed_at"), name="executioncost_per_execution"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("arrival_source__in", ["quote_mid", "trade", "bar_close", ""])
                        ),
                        name="executioncost_arrival_source_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("markout_source__in", ["ticks", "minute_bars", ""])),
                        name="executioncost_markout_source_known",
                    ),
                ],
            },
        ),
        # Before the policies: the plain engine rebuilds the table as partitioned.
        CreateHypertable("ExecutionCost", "executed_at", "30 days"),
        migrations.RunSQL(read_sql("trading", "tca", "0015"), DROP_TCA),
    ]
