"""Raw features as an array of doubles instead of JSON (see vectors/models.py, FeatureEmbedding).

The values are the same: JSON numbers become doubles (they were Python floats when written,
so nothing is rounded) and JSON nulls (unknown values) NULL elements; backwards, to_jsonb
gives the JSON list again. Django's AlterField would cast jsonb to double precision[], which
PostgreSQL has no cast for: the column is converted through the text forms, which for a flat
list of numbers and nulls differ only in their brackets.
"""

import django.contrib.postgres.fields
import django.db.models.lookups
from django.db import migrations, models

TABLE = "vectors_featureembedding"


class Migration(migrations.Migration):
    dependencies = [("vectors", "0002_vector_indexes")]

    operations = [
        migrations.RemoveConstraint(
            model_name="featureembedding",
            name="featureembedding_raw_list",
        ),
        migrations.SeparateDatabaseAndState(
            database_operations=[
                migrations.RunSQL(
                    f"ALTER TABLE {TABLE} ALTER COLUMN raw TYPE double precision[]"
                    " USING translate(raw::text, '[]', '{}')::double precision[]",
                    f"ALTER TABLE {TABLE} ALTER COLUMN raw TYPE jsonb USING to_jsonb(raw)",
                )
            ],
            state_operations=[
                migrations.AlterField(
                    model_name="featureembedding",
                    name="raw",
                    field=django.contrib.postgres.fields.ArrayField(
                        base_field=models.FloatField(null=True),
                        help_text="the raw features before scaling, in the set's order;"
                        " NULL where unknown",
                        size=None,
                    ),
                )
            ],
        ),
        migrations.AddConstraint(
            model_name="featureembedding",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    django.db.models.lookups.Exact(
                        models.Func(
                            models.F("raw"),
                            function="array_ndims",
                            output_field=models.IntegerField(),
                        ),
                        1,
                    ),
                    ("raw__len", 128),
                ),
                name="featureembedding_raw_features",
            ),
        ),
    ]
