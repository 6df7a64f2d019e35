"""AlternativeData's plural name: "alternative data", not the admin's "Alternative datas".
A model option only; no SQL."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("signals", "0008_cumulative_return_without_overlap")]

    operations = [
        migrations.AlterModelOptions(
            name="alternativedata",
            options={"ordering": ["-ts", "-id"], "verbose_name_plural": "alternative data"},
        ),
    ]
