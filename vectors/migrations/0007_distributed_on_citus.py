"""On Citus, the feature embeddings and volatility regimes spread over the workers by
instrument, beside the market data they were computed from (issue 30); elsewhere, nothing.

Both tables are distributed by instrument, colocated with the bars and ticks (marketdata 0017)
and the signals (signals 0010), so that one instrument's vectors sit in the shard group of its
prices and a search filtered to one instrument reads one shard. Each shard holds its own HNSW
index (Citus makes a table's indexes on every shard): a search of every instrument asks each
shard for its nearest rows, and the coordinator merges them. Their foreign keys to local tables
on the coordinator are set aside (a distributed table may not refer to a local one) and
replaced: the instrument by the instruments' keys (marketdata 0017), the feature set by a
reference table of the sets' keys, on every node, kept in step by a trigger.

The strategy patterns stay on the coordinator, with the backtest runs they are the outcomes of
(the books' side: runs, trades, their reruns). A distributed pattern could refer to its run
only through a reference table of the runs' keys, kept by the owner's trigger; but a rebuild
deletes, as the application's role and in one transaction, a run's patterns and then the run,
and Citus reaches the workers over one connection per role: the owner's delete of the key
waited on a worker for the role's own locks on the patterns, a distributed deadlock (and
letting the role write the keys itself would let it make a key for a run that never was). The
feature sets and their builds stay on the coordinator too: a few rows, read with every search.
On Citus it is not unapplied in place (qvp_site/db/distribution.py says why)."""

from django.db import migrations

from qvp_site.db.distribution import (
    DistributeByInstrument,
    MirrorKeys,
    ReferToKeys,
    SetAsideLocalKeys,
)


class Migration(migrations.Migration):
    dependencies = [
        ("vectors", "0006_feature_index_for_writes"),
        ("marketdata", "0021_known_from_on_the_shards"),
    ]

    operations = [
        MirrorKeys("FeatureSet", reference=True),
        SetAsideLocalKeys("FeatureEmbedding"),
        DistributeByInstrument("FeatureEmbedding", "instrument", "ts"),
        ReferToKeys("FeatureEmbedding", "feature_set"),
        SetAsideLocalKeys("VolatilityRegime"),
        DistributeByInstrument("VolatilityRegime", "instrument", "period_end"),
        ReferToKeys("VolatilityRegime", "feature_set"),
    ]
