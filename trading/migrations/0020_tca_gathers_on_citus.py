"""On Citus, the TCA's pending refresh gathers the market data's changes into its queue
(trading/sql/tca_gather_on_citus/0020.sql), where the statement triggers that queue them on one
node are set aside (marketdata 0017 and 0019): ``trading_tca_refresh_pending``
(trading/sql/tca_pending_on_citus/0020.sql) gathers first. BRIN indexes on when the ticks and
minute bars were learnt and their revisions closed let a gathering read only what changed
since the last one: the rows come in about the order they are learnt, so each block range's
summary skips the partitions and blocks no change reached. Elsewhere nothing.

Unapplied on Citus: the pending refresh of trading/sql/tca/0016.sql comes back; the gathering,
its moment and the indexes go."""

from django.db import migrations

from qvp_site.db.distribution import ReplaceFunctionOnCitus, RunOnCitus
from qvp_site.db.sqlfiles import read_sql

CHANGE_STAMPS = {
    "marketdata_tick": "known_from",
    "marketdata_minutebar": "known_from",
    "marketdata_tickrevision": "known_until",
    "marketdata_minutebarrevision": "known_until",
}
INDEXES = "\n".join(
    f"CREATE INDEX IF NOT EXISTS {table}_{column}_brin ON {table} USING brin ({column})"
    " WITH (autosummarize = on);"
    for table, column in CHANGE_STAMPS.items()
)
UNDO_INDEXES = "\n".join(
    f"DROP INDEX IF EXISTS {table}_{column}_brin;" for table, column in CHANGE_STAMPS.items()
)
UNDO_GATHER = """
DROP FUNCTION IF EXISTS trading_tca_gather(timestamptz);
DROP FUNCTION IF EXISTS trading_tca_changed_days(regclass, regclass, timestamptz, timestamptz);
DROP TABLE IF EXISTS trading_tcagathered;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("trading", "0019_metrics_latest_nav"),
        ("marketdata", "0021_known_from_on_the_shards"),
    ]

    operations = [
        RunOnCitus(INDEXES, UNDO_INDEXES),
        RunOnCitus(read_sql("trading", "tca_gather_on_citus", "0020"), UNDO_GATHER),
        ReplaceFunctionOnCitus(
            "trading_tca_refresh_pending(timestamptz)",
            read_sql("trading", "tca_pending_on_citus", "0020"),
        ),
    ]
