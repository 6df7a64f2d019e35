"""A backtest run records the knowledge time it read its market data as known at, and the code
that made it, so that it can be rerun exactly (trading/reruns.py). Runs made before have no
known_at (NULL: unknown) and are refused a rerun."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0008_account_groups_audited"),
    ]

    operations = [
        migrations.AddField(
            model_name="backtestrun",
            name="known_at",
            field=models.DateTimeField(
                blank=True,
                help_text="the knowledge time the run read its market data as known at; empty: not recorded (a run made before runs recorded it), and such a run cannot be rerun",
                null=True,
            ),
        ),
        migrations.AddField(
            model_name="backtestrun",
            name="code_version",
            field=models.CharField(
                blank=True,
                default="",
                help_text="the code that made the run (a deployment's version or a git commit)",
                max_length=100,
            ),
        ),
    ]
