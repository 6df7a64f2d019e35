"""Bars, ticks and option quotes check their instrument once per statement (EnforceReference,
with the functions of marketdata/sql/references/0005.sql) instead of by a row-by-row foreign
key."""

import django.db.models.deletion
from django.db import migrations, models

from qvp_site.db.references import EnforceReference
from qvp_site.db.sqlfiles import read_sql

DROP_FUNCTIONS = "DROP FUNCTION IF EXISTS qvp_check_reference(), qvp_protect_referenced();"


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0004_finite_values"),
    ]

    operations = [
        migrations.AlterField(
            model_name="dailybar",
            name="instrument",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                to="marketdata.instrument",
            ),
        ),
        migrations.AlterField(
            model_name="minutebar",
            name="instrument",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                to="marketdata.instrument",
            ),
        ),
        migrations.AlterField(
            model_name="optionquote",
            name="underlying",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                to="marketdata.instrument",
            ),
        ),
        migrations.AlterField(
            model_name="tick",
            name="instrument",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                to="marketdata.instrument",
            ),
        ),
        migrations.RunSQL(read_sql("marketdata", "references", "0005"), DROP_FUNCTIONS),
        EnforceReference("MinuteBar", "instrument"),
        EnforceReference("DailyBar", "instrument"),
        EnforceReference("Tick", "instrument"),
        EnforceReference("OptionQuote", "underlying"),
    ]
