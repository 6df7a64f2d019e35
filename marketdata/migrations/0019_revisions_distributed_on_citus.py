"""On Citus, the revisions of the market data distributed beside the rows they revise (issue
30); elsewhere, nothing.

Each ``<table>revision`` is distributed by its instrument, colocated with the market data, so
that ``<table>_history`` (the rows and their revisions, one UNION ALL) read for one instrument
runs on the one shard that holds both, with its indexes: with the revisions on the
coordinator, Citus read every shard of the table whole to the coordinator to unite them. Their
foreign keys to the load (a local table) are set aside, with their statement triggers: trading
0016's marks of revised ticks and minute bars for the TCA, so that on Citus a revision does not
queue the restatement of the fills it concerns. On Citus it is not unapplied in place
(qvp_site/db/distribution.py)."""

from django.db import migrations

from qvp_site.db.distribution import DistributeAlong


class Migration(migrations.Migration):
    dependencies = [
        ("marketdata", "0018_merge_on_citus"),
    ]

    operations = [
        DistributeAlong("MinuteBarRevision", "instrument", "MinuteBar"),
        DistributeAlong("DailyBarRevision", "instrument", "MinuteBar"),
        DistributeAlong("TickRevision", "instrument", "MinuteBar"),
        DistributeAlong("OptionQuoteRevision", "underlying", "MinuteBar"),
    ]
