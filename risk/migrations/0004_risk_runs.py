"""Runs that can be repeated: ``RiskRun`` records each run of compute_risk (its valuation time
``as_of``, its knowledge time ``known_at``, its code version and options); metrics and factor
exposures name the run that stated them. risk/sql/functions/0004.sql holds every function again
with ``p_known_at`` (NULL: the present) on what reads market data or the books: bars read as
known then (marketdata's ``<table>_known_at``), holdings from the executions booked by then.

Unapplied, the functions of the new signatures go and version 0003 returns."""

import django.contrib.postgres.fields
import django.db.models.deletion
import django.db.models.functions.datetime
from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

# The signatures of version 0004 that 0003 does not have (its CREATE OR REPLACE would leave
# them beside its own, and a call naming fewer arguments would match both).
DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS calculate_portfolio_metrics(bigint, integer, text, float8, timestamptz,
    timestamptz);
DROP FUNCTION IF EXISTS calculate_var(float8, integer, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS calculate_var(bigint, float8, integer, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS risk_daily_returns(bigint[], timestamptz, integer, timestamptz);
DROP FUNCTION IF EXISTS risk_holdings(bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS risk_minutebars(timestamptz);
DROP FUNCTION IF EXISTS risk_dailybars(timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0003_holdings_as_of"),
        ("marketdata", "0009_revisions"),
    ]

    operations = [
        migrations.CreateModel(
            name="RiskRun",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("as_of", models.DateTimeField()),
                ("known_at", models.DateTimeField()),
                ("code_version", models.CharField(max_length=100)),
                ("confidence", models.FloatField()),
                ("lookback", models.PositiveIntegerField()),
                ("benchmark", models.CharField(max_length=32)),
                ("volatility_window", models.PositiveIntegerField()),
                (
                    "accounts",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.BigIntegerField(), blank=True, default=list, size=None
                    ),
                ),
                ("actor", models.CharField(max_length=150)),
                (
                    "started_at",
                    models.DateTimeField(db_default=django.db.models.functions.datetime.Now()),
                ),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                ("identical", models.BooleanField(blank=True, null=True)),
                (
                    "repeat_of",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="repeats",
                        to="risk.riskrun",
                    ),
                ),
            ],
            options={
                "ordering": ["-started_at", "-id"],
                "indexes": [
                    models.Index(fields=["as_of", "-started_at"], name="risk_run_by_as_of_idx")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("confidence__gt", 0), ("confidence__lt", 1)),
                        name="risk_run_confidence_range",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("lookback__gte", 2)), name="risk_run_lookback_enough"
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("volatility_window__gte", 2)),
                        name="risk_run_window_enough",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("identical__isnull", True), ("repeat_of__isnull", True)),
                            ("repeat_of__isnull", False),
                            _connector="OR",
                        ),
                        name="risk_run_verdict_of_a_repeat",
                    ),
                ],
            },
        ),
        migrations.AddField(
            model_name="factorexposure",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="exposures",
                to="risk.riskrun",
            ),
        ),
        migrations.AddField(
            model_name="riskmetric",
            name="run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="metrics",
                to="risk.riskrun",
            ),
        ),
        migrations.RunSQL(
            read_sql("risk", "functions", "0004"),
            DROP_FUNCTIONS + read_sql("risk", "functions", "0003"),
        ),
    ]
