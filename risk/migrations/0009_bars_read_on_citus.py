"""On Citus, the risk functions that read bars in PL/pgSQL: ``risk_holdings``
(risk/sql/holdings_on_citus/0009.sql) and ``risk_daily_returns``
(risk/sql/returns_on_citus/0009.sql), the same answers as 0006's. Citus refuses 0006's SQL
functions, which look up bars laterally from a list or from the books, and with them every VaR
(Python's and SQL's) and the portfolio metrics' benchmark. And ``risk_market_anomalies``
(risk/sql/anomalies_on_citus/0009.sql) with its bars read apart from the coordinator's trading
sessions, which Citus refused to join with them. Elsewhere nothing: 0006's and 0008's text
stays.

Unapplied on Citus: the definitions they replaced, kept in qvp_citus_set_aside, put back."""

from django.db import migrations

from qvp_site.db.distribution import ReplaceFunctionOnCitus
from qvp_site.db.sqlfiles import read_sql


class Migration(migrations.Migration):
    dependencies = [
        ("risk", "0008_sql_anomalies"),
        ("marketdata", "0021_known_from_on_the_shards"),
    ]

    operations = [
        ReplaceFunctionOnCitus(
            "risk_holdings(bigint, timestamptz, timestamptz)",
            read_sql("risk", "holdings_on_citus", "0009"),
        ),
        ReplaceFunctionOnCitus(
            "risk_daily_returns(bigint[], timestamptz, integer, timestamptz, text)",
            read_sql("risk", "returns_on_citus", "0009"),
        ),
        ReplaceFunctionOnCitus(
            "risk_market_anomalies(bigint, timestamptz, timestamptz, double precision)",
            read_sql("risk", "anomalies_on_citus", "0009"),
        ),
    ]
