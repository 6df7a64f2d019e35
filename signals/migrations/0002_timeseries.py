"""Signals and the data agents read become time-series tables, with the design's policies.

Chunks sized to the data: a week of signals, agent metrics and social sentiment, a day of
system logs, a month of fused signals, news and alternative data. Compression (TimescaleDB)
and default retention come from settings read now (see qvp_site/settings.py): signals
compressed after 30 days, system logs after 7 and kept 90 days, news kept a year.
"""

from django.conf import settings
from django.db import migrations

from qvp_site.db.operations import AddCompressionPolicy, AddRetentionPolicy, CreateHypertable


class Migration(migrations.Migration):
    dependencies = [
        ("qvp_site", "0001_initial"),
        ("signals", "0001_initial"),
    ]

    operations = [
        CreateHypertable("Signal", "ts", "7 days"),
        CreateHypertable("FusedSignal", "ts", "30 days"),
        CreateHypertable("NewsArticle", "ts", "30 days"),
        CreateHypertable("SocialSentiment", "ts", "7 days"),
        CreateHypertable("AlternativeData", "ts", "30 days"),
        CreateHypertable("AgentMetric", "ts", "7 days"),
        CreateHypertable("SystemLog", "ts", "1 day"),
        AddCompressionPolicy(
            "Signal",
            settings.QVP_SIGNALS_COMPRESS_AFTER,
            segment_by=["agent"],
            order_by="ts DESC, id",
        ),
        AddCompressionPolicy(
            "SystemLog", settings.QVP_SYSTEMLOG_COMPRESS_AFTER, order_by="ts DESC, id"
        ),
        AddRetentionPolicy("SystemLog", settings.QVP_SYSTEMLOG_RETENTION),
        AddRetentionPolicy("NewsArticle", settings.QVP_NEWS_RETENTION),
    ]
