"""Transaction cost analysis by venue, strategy and agent, with the decision price, dividends
and restatement at once: an execution's venue (``Execution.venue``), an order's strategy, agent
and decision price (``Order.strategy``, ``Order.agent``, ``Order.decision_price``), copied onto
its costs (``ExecutionCost.venue/strategy/agent``); and the functions of
trading/sql/tca/0016.sql. Unapplied, the functions of trading/sql/tca/0015.sql come back and
what 0016.sql added goes."""

import django.db.models.deletion
from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# The shortfall's answer changes shape (decision_source): dropped before 0015.sql makes it again.
UNDO_TCA = """
DROP TRIGGER IF EXISTS trading_tca_action_closed ON marketdata_corporateaction;
DROP TRIGGER IF EXISTS trading_tca_action_stated ON marketdata_corporateaction;
DROP TRIGGER IF EXISTS trading_tca_minutebar_added ON marketdata_minutebar;
DROP TRIGGER IF EXISTS trading_tca_tick_added ON marketdata_tick;
DROP TRIGGER IF EXISTS trading_tca_minutebar_revised ON marketdata_minutebarrevision;
DROP TRIGGER IF EXISTS trading_tca_tick_revised ON marketdata_tickrevision;
DROP TRIGGER IF EXISTS trading_tca_superseded ON trading_execution;
DROP FUNCTION IF EXISTS trading_tca_summary_of(text, timestamptz, timestamptz, bigint[]);
DROP FUNCTION IF EXISTS trading_tca_action_changed();
DROP FUNCTION IF EXISTS trading_tca_market_revised();
DROP FUNCTION IF EXISTS trading_tca_market_added();
DROP FUNCTION IF EXISTS trading_tca_queue_days(bigint[], timestamptz[], timestamptz[], text);
DROP FUNCTION IF EXISTS trading_tca_superseded();
DROP FUNCTION IF EXISTS trading_tca_refresh_pending(timestamptz);
DROP FUNCTION IF EXISTS trading_tca_restate(timestamptz[], timestamptz[], bigint[], bigint[],
    timestamptz);
DROP FUNCTION IF EXISTS trading_tca_dividends(timestamptz, timestamptz, timestamptz,
    timestamptz[], double precision[], timestamptz[], double precision[]);
DROP FUNCTION IF EXISTS trading_tca_scoped_executions(timestamptz[], timestamptz[], bigint[],
    bigint[]);
DROP FUNCTION IF EXISTS trading_tca_shortfall(timestamptz, timestamptz, bigint, timestamptz);
DROP TABLE IF EXISTS trading_tcapending;
""" + read_sql("trading", "tca", "0015")


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0015_asof"),
        ("signals", "0007_performance_known_at"),
        ("trading", "0015_execution_costs"),
    ]

    operations = [
        # Database defaults: the books' SQL inserts that name their columns (a bust, a
        # correction, trading/sql/books) keep working without naming these.
        migrations.AddField(
            model_name="execution",
            name="venue",
            field=models.CharField(
                blank=True, db_default="", help_text="the venue's MIC or name", max_length=16
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="strategy",
            field=models.CharField(
                blank=True,
                db_default="",
                help_text="the strategy that decided it",
                max_length=100,
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="agent",
            field=models.ForeignKey(
                blank=True,
                help_text="the agent that decided it",
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="signals.agent",
            ),
        ),
        migrations.AddField(
            model_name="order",
            name="decision_price",
            field=models.DecimalField(
                blank=True,
                decimal_places=8,
                help_text="the price when the decision was taken (implementation shortfall;"
                " empty: the arrival price)",
                max_digits=20,
                null=True,
            ),
        ),
        migrations.AddConstraint(
            model_name="order",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("decision_price__isnull", True), ("decision_price__gt", 0), _connector="OR"
                ),
                name="order_decision_price_positive",
            ),
        ),
        migrations.AddField(
            model_name="executioncost",
            name="venue",
            field=models.CharField(blank=True, db_default="", max_length=16),
        ),
        migrations.AddField(
            model_name="executioncost",
            name="strategy",
            field=models.CharField(blank=True, db_default="", max_length=100),
        ),
        migrations.AddField(
            model_name="executioncost",
            name="agent",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="signals.agent",
            ),
        ),
        migrations.RunSQL(read_sql("trading", "tca", "0016"), UNDO_TCA),
    ]
