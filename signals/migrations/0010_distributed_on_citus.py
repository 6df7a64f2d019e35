"""On Citus, the signals about an instrument spread over the workers beside its market data
(issue 30); elsewhere, nothing.

The signals, the fused signals and the social sentiment are distributed by instrument,
colocated with the bars, ticks and quotes (marketdata 0017), so that one instrument's signals
and its prices sit in the same shard group. Their foreign keys to the instruments and the
agents, local tables on the coordinator, are set aside (a distributed table may not refer to a
local one) and replaced: the instrument by the instruments' keys (marketdata 0017), the agent
by a reference table of the agents' keys, on every node, kept in step by a trigger. The
alternative data (whose instrument may be empty), the news, the agents' metrics and the logs,
with no instrument to go by, stay on the coordinator. ``signals_signal_outcomes`` reads the
signals first there (signals/sql/performance_on_citus/0010.sql): Citus would send 0008's
lateral price lookups from the signals' rows to the shards, which refuse them. On Citus it is
not unapplied in place (qvp_site/db/distribution.py says why)."""

from django.db import migrations

from qvp_site.db.distribution import (
    DistributeByInstrument,
    MirrorKeys,
    ReferToKeys,
    ReplaceFunctionOnCitus,
    SetAsideLocalKeys,
)
from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [
        ("signals", "0009_alternative_data_plural"),
        ("marketdata", "0021_known_from_on_the_shards"),
    ]

    operations = [
        MirrorKeys("Agent", reference=True),
        SetAsideLocalKeys("Signal"),
        DistributeByInstrument("Signal", "instrument", "ts"),
        ReferToKeys("Signal", "agent"),
        SetAsideLocalKeys("FusedSignal"),
        DistributeByInstrument("FusedSignal", "instrument", "ts"),
        SetAsideLocalKeys("SocialSentiment"),
        DistributeByInstrument("SocialSentiment", "instrument", "ts"),
        ReplaceFunctionOnCitus(
            "signals_signal_outcomes(text, integer, timestamptz, timestamptz)",
            read_sql("signals", "performance_on_citus", "0010"),
        ),
    ]
