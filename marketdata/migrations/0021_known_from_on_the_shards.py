"""On Citus, the application's role writes market data: ``known_from`` is set on the shards
(``KnownFromSetOnTheShards``, qvp_site/db/distribution.py), where the coordinator's default
reached them as a value the role may not write. Elsewhere nothing."""

from django.db import migrations

from qvp_site.db.distribution import KnownFromSetOnTheShards


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0020_factors_on_citus"),
    ]

    operations = [
        KnownFromSetOnTheShards(
            [
                "marketdata_minutebar",
                "marketdata_dailybar",
                "marketdata_tick",
                "marketdata_optionquote",
            ]
        ),
    ]
