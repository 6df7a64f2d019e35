"""On Citus, the factors of corporate actions look up each dividend's close by a call per
dividend (marketdata/sql/factors_on_citus/0020.sql), which Citus plans on the instrument's
shard: 0013's lateral lookup into the bars from the coordinator's actions is refused there,
and with it every snapshot and adjusted read. Elsewhere nothing: 0013's text stays.

Unapplied on Citus: the definition it replaced, kept in qvp_citus_set_aside, put back."""

from django.db import migrations

from qvp_site.db.distribution import ReplaceFunctionOnCitus
from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0019_revisions_distributed_on_citus"),
    ]

    operations = [
        ReplaceFunctionOnCitus(
            "marketdata_action_factors(text, timestamptz, timestamptz)",
            read_sql("marketdata", "factors_on_citus", "0020"),
        ),
    ]
