"""A portfolio snapshot records the knowledge time it read the books and bars at, and the code
that computed it (trading/snapshots.py), so that taking it again gives the same numbers."""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0009_backtest_known_at"),
    ]

    operations = [
        migrations.AddField(
            model_name="portfoliosnapshot",
            name="code_version",
            field=models.CharField(
                blank=True, help_text="the code that computed it", max_length=100
            ),
        ),
        migrations.AddField(
            model_name="portfoliosnapshot",
            name="known_at",
            field=models.DateTimeField(
                blank=True,
                help_text="the knowledge time it was computed at (null: unrecorded)",
                null=True,
            ),
        ),
    ]
