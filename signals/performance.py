"""Signal performance: the SQL function ``calculate_signal_performance`` run for agents and
windows, and its answers kept in SignalPerformance (one row per agent and window), each with
the knowledge time it read market data at and the code that ran it: ``calculate`` with that
``known_at`` repeats it exactly, whatever corrections came later.

Every figure is the SQL function's, computed nowhere else (the command, the scheduler's job, the
API and the dashboard read what it returned). ``cumulative_return`` is the return of following
the agent's signals without overlap (signals/sql/performance/0008.sql): capital split equally
among the instruments with an outcome in the window; each instrument's share takes its first
signal, holds it over its horizon, then takes the first signal given at or after that end, and
compounds what it took; the shares' compounded returns are averaged."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.db import connection
from django.utils import timezone

from marketdata.knowledge import knowledge_time
from qvp_site.code_version import code_version

# One statement for every agent asked: the function per agent, upserted.
REFRESH_SQL = """
INSERT INTO signals_signalperformance AS sp (agent_id, window_days, window_start, window_end,
    signal_count, hit_rate, information_coefficient, average_return, cumulative_return,
    computed_at, known_at, code_version)
SELECT a.id, p.window_days, p.window_start, p.window_end, p.signal_count, p.hit_rate,
       p.information_coefficient, p.average_return, p.cumulative_return, now(),
       %(known_at)s, %(code_version)s
FROM signals_agent a
CROSS JOIN unnest(%(windows)s::integer[]) AS w(days)
CROSS JOIN LATERAL calculate_signal_performance(a.name, w.days, %(as_of)s, %(known_at)s) AS p
WHERE (%(names)s::text[] IS NULL AND a.active) OR a.name = ANY(%(names)s::text[])
ON CONFLICT (agent_id, window_days) DO UPDATE SET
    window_start = EXCLUDED.window_start, window_end = EXCLUDED.window_end,
    signal_count = EXCLUDED.signal_count, hit_rate = EXCLUDED.hit_rate,
    information_coefficient = EXCLUDED.information_coefficient,
    average_return = EXCLUDED.average_return, cumulative_return = EXCLUDED.cumulative_return,
    computed_at = EXCLUDED.computed_at, known_at = EXCLUDED.known_at,
    code_version = EXCLUDED.code_version
RETURNING (SELECT name FROM signals_agent WHERE id = sp.agent_id), window_days, window_start,
    window_end, signal_count, hit_rate, information_coefficient, average_return,
    cumulative_return
"""


@dataclass(frozen=True)
class AgentPerformance:
    agent: str
    window_days: int
    window_start: datetime
    window_end: datetime
    signal_count: int
    hit_rate: float | None
    information_coefficient: float | None
    average_return: float | None
    cumulative_return: float | None


def calculate(
    agent_name: str,
    days: int,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> AgentPerformance:
    """``calculate_signal_performance(agent_name, days, as_of, known_at)``, not stored;
    without ``known_at``, the market data as known now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT * FROM calculate_signal_performance(%s, %s, %s, %s)",
            [agent_name, days, as_of or timezone.now(), known_at],
        )
        return AgentPerformance(*cursor.fetchone())


def refresh(
    windows: list[int],
    agent_names: list[str] | None = None,
    as_of: datetime | None = None,
    known_at: datetime | None = None,
) -> list[AgentPerformance]:
    """Compute and store the performance of the named agents (every active agent when None)
    over each window of days, reading market data as known at ``known_at`` (default: the
    settled moment, ``marketdata.knowledge``), which is recorded; returns what was stored, by
    agent and window."""
    params = {
        "windows": windows,
        "names": agent_names,
        "as_of": as_of or timezone.now(),
        "known_at": knowledge_time(known_at),
        "code_version": code_version(),
    }
    with connection.cursor() as cursor:
        cursor.execute(REFRESH_SQL, params)
        rows = [AgentPerformance(*row) for row in cursor.fetchall()]
    return sorted(rows, key=lambda p: (p.agent, p.window_days))
