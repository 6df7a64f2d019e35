"""Signals' horizons bounded to a year, which bounds fusion's look back for running signals."""

import datetime

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0003_performance_functions"),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name="signal",
            name="signal_horizon_positive",
        ),
        migrations.AddConstraint(
            model_name="signal",
            constraint=models.CheckConstraint(
                condition=models.Q(("horizon__gt", datetime.timedelta(0))),
                name="signal_horizon_positive",
            ),
        ),
        migrations.AddConstraint(
            model_name="signal",
            constraint=models.CheckConstraint(
                condition=models.Q(("horizon__lte", datetime.timedelta(days=366))),
                name="signal_horizon_at_most_a_year",
            ),
        ),
    ]
