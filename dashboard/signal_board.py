"""The signals page: each agent's latest call per instrument, the latest fused signal per
instrument with the inputs it weighed, fused weights over time, and each agent's record."""

from __future__ import annotations

from datetime import timedelta

from django.db import connection
from django.utils import timezone

from dashboard import charts
from qvp_site.db import engine
from signals import fusion
from signals.models import FusedSignal, Signal, SignalPerformance

FUSED_HISTORY = timedelta(days=180)

# Latest signal of each active agent for each active instrument: one probe of the unique
# (agent, instrument, ts) index per pair, never a scan of the history.
LATEST_SIGNALS_SQL = """
SELECT s.id, s.ts
FROM marketdata_instrument i
CROSS JOIN signals_agent a
CROSS JOIN LATERAL (
    SELECT id, ts FROM signals_signal
    WHERE agent_id = a.id AND instrument_id = i.id ORDER BY ts DESC LIMIT 1
) s
WHERE i.active AND a.active
"""

LATEST_FUSED_SQL = """
SELECT f.id, f.ts
FROM marketdata_instrument i
CROSS JOIN LATERAL (
    SELECT id, ts FROM signals_fusedsignal WHERE instrument_id = i.id ORDER BY ts DESC LIMIT 1
) f
WHERE i.active
"""

# Where the signals are distributed (Citus), the probes start from the instruments' keys,
# beside the signals, so that Citus runs each on its instrument's shard: it refuses a lateral
# LIMIT from the coordinator's tables, from a list of values or one that names a reference
# table's column (the agents' keys). The active instruments and agents are read first, and
# each instrument's probe takes each active agent's latest signal with DISTINCT ON, over that
# instrument's signals of those agents: a read of their history, where one node probes.
ACTIVE_SQL = """
SELECT ARRAY(SELECT id FROM marketdata_instrument WHERE active),
       ARRAY(SELECT id FROM signals_agent WHERE active)
"""
LATEST_SIGNALS_ON_SHARDS_SQL = """
SELECT s.id, s.ts
FROM marketdata_instrument_key i
CROSS JOIN LATERAL (
    SELECT DISTINCT ON (agent_id) id, ts FROM signals_signal
    WHERE instrument_id = i.id AND agent_id = ANY(%(agents)s::bigint[])
    ORDER BY agent_id, ts DESC
) s
WHERE i.id = ANY(%(instruments)s::bigint[])
"""
LATEST_FUSED_ON_SHARDS_SQL = """
SELECT f.id, f.ts
FROM marketdata_instrument_key i
CROSS JOIN LATERAL (
    SELECT id, ts FROM signals_fusedsignal WHERE instrument_id = i.id ORDER BY ts DESC LIMIT 1
) f
WHERE i.id = ANY(%(instruments)s::bigint[])
"""


def _keys(one_node_sql: str, on_shards_sql: str) -> tuple[list[int], list]:
    with connection.cursor() as cursor:
        if engine.distributes_market_data(connection):
            cursor.execute(ACTIVE_SQL)
            instruments, agents = cursor.fetchone()
            cursor.execute(on_shards_sql, {"instruments": instruments, "agents": agents})
        else:
            cursor.execute(one_node_sql)
        rows = cursor.fetchall()
    return [r[0] for r in rows], [r[1] for r in rows]


def latest_signals() -> list[Signal]:
    """Each active agent's latest signal per active instrument, by symbol then agent."""
    ids, times = _keys(LATEST_SIGNALS_SQL, LATEST_SIGNALS_ON_SHARDS_SQL)
    # The time too, so that the lookup prunes to the partitions or chunks holding them.
    return list(
        Signal.objects.filter(id__in=ids, ts__in=set(times))
        .select_related("agent", "instrument")
        .order_by("instrument__symbol", "agent__name")
    )


def latest_fused() -> list[FusedSignal]:
    ids, times = _keys(LATEST_FUSED_SQL, LATEST_FUSED_ON_SHARDS_SQL)
    return list(
        FusedSignal.objects.filter(id__in=ids, ts__in=set(times))
        .select_related("instrument")
        .order_by("instrument__symbol")
    )


# Each active instrument's last fused weight of each day (fusion runs every 15 minutes: a
# half year of runs would be 17,000 points a line), by the fusion method the job runs.
DAILY_FUSED_SQL = """
SELECT DISTINCT ON (i.symbol, date_trunc('day', f.ts)) i.symbol, f.ts, f.target_weight
FROM signals_fusedsignal f JOIN marketdata_instrument i ON i.id = f.instrument_id
WHERE f.ts >= %s AND f.method = %s AND i.active
ORDER BY i.symbol, date_trunc('day', f.ts), f.ts DESC
"""


def fused_chart() -> dict:
    """Each active instrument's fused target weight, a point a day over the last half year."""
    with connection.cursor() as cursor:
        cursor.execute(DAILY_FUSED_SQL, [timezone.now() - FUSED_HISTORY, fusion.METHOD])
        rows = cursor.fetchall()
    return charts.chart(*charts.lines(charts.curves(rows)))


def agent_performance() -> list[SignalPerformance]:
    return list(
        SignalPerformance.objects.select_related("agent").order_by("agent__name", "window_days")
    )


def instrument_signals(instrument_id: int, limit: int = 10) -> list[Signal]:
    """An instrument's latest signals, any agent (the (instrument, ts) index)."""
    return list(
        Signal.objects.filter(instrument_id=instrument_id)
        .select_related("agent")
        .order_by("-ts")[:limit]
    )
