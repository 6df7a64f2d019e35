"""On Citus, the minute bars' summaries (hourly, daily) distributed beside the bars, by
instrument, in the same shard group (``DistributeSummaries``,
qvp_site/db/distributed_summaries.py): a refresh by range runs on the shards, each over its own
bars, and one instrument's summary is read on one shard. Elsewhere nothing."""

from django.db import migrations

from qvp_site.db.distributed_summaries import DistributeSummaries


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0021_known_from_on_the_shards"),
    ]

    operations = [
        DistributeSummaries("MinuteBar", ["marketdata_minutebar_1d", "marketdata_minutebar_1h"]),
    ]
