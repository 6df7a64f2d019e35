"""On Citus, the market data spread over the workers (issue 30); elsewhere, nothing.

The bars, ticks and option quotes are distributed by instrument, colocated, in
QVP_CITUS_SHARD_COUNT shards, with a table of the instruments' keys distributed beside them,
which their foreign keys point at (qvp_site/db/distribution.py says why the instruments
themselves stay on the coordinator). The statement triggers Citus refuses on a distributed table are set aside,
their definitions kept in qvp_citus_set_aside: the reference checks become those foreign
keys; with them go trading 0016's marks of newly arrived ticks and minute bars for the TCA,
so that on Citus a load does not queue the restatement of the fills it concerns. The
revision tables follow in 0019. On Citus it is not unapplied in place (distribution.py says
why).

After trading's last migration, whose triggers on these tables it sets aside."""

from django.db import migrations

from qvp_site.db.distribution import DistributeByInstrument, MirrorKeys, SequentialShardCommands


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0016_asof_steps"),
        ("trading", "0019_metrics_latest_nav"),
    ]

    operations = [
        SequentialShardCommands(),
        MirrorKeys("Instrument"),
        DistributeByInstrument("MinuteBar", "instrument", "ts"),
        DistributeByInstrument("DailyBar", "instrument", "ts", colocate_with="MinuteBar"),
        DistributeByInstrument("Tick", "instrument", "ts", colocate_with="MinuteBar"),
        DistributeByInstrument("OptionQuote", "underlying", "ts", colocate_with="MinuteBar"),
    ]
