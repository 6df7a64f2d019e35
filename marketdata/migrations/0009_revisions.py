"""Market data keeps every revision: ``known_from`` on each row, a ``<table>revision`` table
beside each market-data table, the owner's functions that change stored rows and keep what
they replace, and ``<table>_known_at(t)`` to read a table as known at t
(marketdata/sql/revisions/0009.sql). Unapplied, the functions go and 0007's merge returns.

Rows stored before this migration are known from the moment it ran: nothing says when the
system learnt them before that."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from qvp_site.db.sqlfiles import read_sql

TABLES = "ARRAY['marketdata_minutebar', 'marketdata_dailybar', 'marketdata_tick', 'marketdata_optionquote']"

# The moment of the migration as a constant, then now() for new rows: TimescaleDB refuses a
# column with a default that is not a constant on a hypertable with its columnstore on.
ADD_KNOWN_FROM = f"""
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY {TABLES} LOOP
        EXECUTE format('ALTER TABLE %I ADD COLUMN known_from timestamptz NOT NULL DEFAULT %L',
                       name, now());
        EXECUTE format('ALTER TABLE %I ALTER COLUMN known_from SET DEFAULT now()', name);
    END LOOP;
END
$$;
"""
DROP_KNOWN_FROM = f"""
DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY {TABLES} LOOP
        EXECUTE format('ALTER TABLE %I DROP COLUMN known_from', name);
    END LOOP;
END
$$;
"""

DROP_FUNCTIONS = """
DROP FUNCTION IF EXISTS marketdata_minutebar_known_at(timestamptz);
DROP FUNCTION IF EXISTS marketdata_dailybar_known_at(timestamptz);
DROP FUNCTION IF EXISTS marketdata_tick_known_at(timestamptz);
DROP FUNCTION IF EXISTS marketdata_optionquote_known_at(timestamptz);
DROP VIEW IF EXISTS marketdata_minutebar_history;
DROP VIEW IF EXISTS marketdata_dailybar_history;
DROP VIEW IF EXISTS marketdata_tick_history;
DROP VIEW IF EXISTS marketdata_optionquote_history;
DROP FUNCTION IF EXISTS marketdata_delete(regclass, bigint, timestamptz, timestamptz);
DROP FUNCTION IF EXISTS marketdata_merge_ticks(bigint, bigint, timestamptz[], bigint[], text[],
    double precision[], double precision[], double precision[], double precision[],
    double precision[], double precision[], text[]);
DROP FUNCTION IF EXISTS marketdata_merge_bars(regclass, bigint, bigint, timestamptz[],
    double precision[], double precision[], double precision[], double precision[],
    double precision[], double precision[], integer[]);
DROP FUNCTION IF EXISTS marketdata_merge_checks(regclass, bigint, bigint, bigint, bigint[], bigint);
DROP FUNCTION IF EXISTS marketdata_merge_sql(regclass, text[], text[], text, timestamptz);
DROP FUNCTION IF EXISTS marketdata_row_columns(regclass, text);
DROP FUNCTION IF EXISTS marketdata_acting_user();
DROP FUNCTION IF EXISTS marketdata_actor();
DROP FUNCTION IF EXISTS marketdata_settled_at();
DROP FUNCTION IF EXISTS marketdata_take_turn(regclass, bigint);
DROP TABLE IF EXISTS marketdata_load_turn;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0008_compress_and_close"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[migrations.RunSQL(ADD_KNOWN_FROM, DROP_KNOWN_FROM)],
            state_operations=[
                migrations.AddField(
                    model_name="dailybar",
                    name="known_from",
                    field=models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                migrations.AddField(
                    model_name="minutebar",
                    name="known_from",
                    field=models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                migrations.AddField(
                    model_name="optionquote",
                    name="known_from",
                    field=models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                migrations.AddField(
                    model_name="tick",
                    name="known_from",
                    field=models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
            ],
        ),
        migrations.CreateModel(
            name="DailyBarRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ts", models.DateTimeField()),
                ("open", models.FloatField()),
                ("high", models.FloatField()),
                ("low", models.FloatField()),
                ("close", models.FloatField()),
                ("volume", models.FloatField(blank=True, null=True)),
                ("vwap", models.FloatField(blank=True, null=True)),
                ("trade_count", models.IntegerField(blank=True, null=True)),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                ("row_id", models.BigIntegerField(help_text="the id of the row as it stood")),
                (
                    "known_until",
                    models.DateTimeField(help_text="when the system learnt of the change"),
                ),
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
                    "ingest",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="marketdata.ingest",
                    ),
                ),
                (
                    "instrument",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["instrument", "ts", "known_until"],
                "abstract": False,
                "indexes": [
                    models.Index(fields=["instrument", "ts"], name="dailybarrevision_by_time")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("change__in", ["revised", "deleted"])),
                        name="dailybarrevision_change_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("known_until__gte", models.F("known_from"))),
                        name="dailybarrevision_known_in_order",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="MinuteBarRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ts", models.DateTimeField()),
                ("open", models.FloatField()),
                ("high", models.FloatField()),
                ("low", models.FloatField()),
                ("close", models.FloatField()),
                ("volume", models.FloatField(blank=True, null=True)),
                ("vwap", models.FloatField(blank=True, null=True)),
                ("trade_count", models.IntegerField(blank=True, null=True)),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                ("row_id", models.BigIntegerField(help_text="the id of the row as it stood")),
                (
                    "known_until",
                    models.DateTimeField(help_text="when the system learnt of the change"),
                ),
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
                    "ingest",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="marketdata.ingest",
                    ),
                ),
                (
                    "instrument",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["instrument", "ts", "known_until"],
                "abstract": False,
                "indexes": [
                    models.Index(fields=["instrument", "ts"], name="minutebarrevision_by_time")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("change__in", ["revised", "deleted"])),
                        name="minutebarrevision_change_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("known_until__gte", models.F("known_from"))),
                        name="minutebarrevision_known_in_order",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="OptionQuoteRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ts", models.DateTimeField()),
                ("expiry", models.DateField()),
                ("strike", models.FloatField()),
                ("right", models.CharField(choices=[("C", "call"), ("P", "put")], max_length=1)),
                ("bid", models.FloatField(blank=True, null=True)),
                ("ask", models.FloatField(blank=True, null=True)),
                ("last", models.FloatField(blank=True, null=True)),
                ("iv", models.FloatField(blank=True, null=True, verbose_name="implied volatility")),
                ("delta", models.FloatField(blank=True, null=True)),
                ("gamma", models.FloatField(blank=True, null=True)),
                ("theta", models.FloatField(blank=True, null=True)),
                ("vega", models.FloatField(blank=True, null=True)),
                ("rho", models.FloatField(blank=True, null=True)),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                ("row_id", models.BigIntegerField(help_text="the id of the row as it stood")),
                (
                    "known_until",
                    models.DateTimeField(help_text="when the system learnt of the change"),
                ),
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
                    "ingest",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="marketdata.ingest",
                    ),
                ),
                (
                    "underlying",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["underlying", "ts", "expiry", "strike", "right", "known_until"],
                "abstract": False,
                "indexes": [
                    models.Index(fields=["underlying", "ts"], name="optionquoterevision_by_time")
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("change__in", ["revised", "deleted"])),
                        name="optionquoterevision_change_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("known_until__gte", models.F("known_from"))),
                        name="optionquoterevision_known_in_order",
                    ),
                ],
            },
        ),
        migrations.CreateModel(
            name="TickRevision",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("ts", models.DateTimeField()),
                ("sequence", models.BigIntegerField()),
                (
                    "kind",
                    models.CharField(
                        choices=[("trade", "trade"), ("quote", "quote")],
                        default="trade",
                        max_length=5,
                    ),
                ),
                ("price", models.FloatField(blank=True, null=True)),
                ("size", models.FloatField(blank=True, null=True)),
                ("bid", models.FloatField(blank=True, null=True)),
                ("ask", models.FloatField(blank=True, null=True)),
                ("bid_size", models.FloatField(blank=True, null=True)),
                ("ask_size", models.FloatField(blank=True, null=True)),
                (
                    "side",
                    models.CharField(
                        blank=True,
                        choices=[("buy", "buy"), ("sell", "sell"), ("", "unknown")],
                        default="",
                        max_length=4,
                    ),
                ),
                (
                    "known_from",
                    models.DateTimeField(
                        db_default=models.Func(function="now", output_field=models.DateTimeField()),
                        editable=False,
                        help_text="when the system learnt these values (the start of the load that wrote them)",
                    ),
                ),
                ("row_id", models.BigIntegerField(help_text="the id of the row as it stood")),
                (
                    "known_until",
                    models.DateTimeField(help_text="when the system learnt of the change"),
                ),
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
                    "ingest",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="+",
                        to="marketdata.ingest",
                    ),
                ),
                (
                    "instrument",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.PROTECT,
                        to="marketdata.instrument",
                    ),
                ),
                (
                    "user",
                    models.ForeignKey(
                        blank=True,
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
            ],
            options={
                "ordering": ["instrument", "ts", "sequence", "known_until"],
                "abstract": False,
                "indexes": [models.Index(fields=["instrument", "ts"], name="tickrevision_by_time")],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("change__in", ["revised", "deleted"])),
                        name="tickrevision_change_known",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(("known_until__gte", models.F("known_from"))),
                        name="tickrevision_known_in_order",
                    ),
                ],
            },
        ),
        migrations.RunSQL(
            read_sql("marketdata", "revisions", "0009"),
            DROP_FUNCTIONS + read_sql("marketdata", "loads", "0007"),
        ),
    ]
