"""Fusion: each instrument's latest signals, one per active agent, become one target weight.

Method ``confidence_performance_weighted``: each signal weighs its confidence times its
agent's skill, skill being the information coefficient of the agent's last
``PERFORMANCE_WINDOW_DAYS`` days (negative counts as none: an agent whose strength does not
rank the returns gets no say) once at least ``MIN_SIGNALS`` signals measured it, and the
modest ``PRIOR_SKILL`` before that. The target weight is the weighted mean strength, the
fused confidence the weighted mean confidence; with no weight at all, both are 0. A signal
counts while its horizon runs. The inputs are stored by value, so a fused signal explains
itself after its signals are compressed or dropped.

One INSERT ... SELECT for every instrument: no row is handled in Python.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from qvp_site.db import partitions
from signals.models import FusedSignal

METHOD = "confidence_performance_weighted"
PERFORMANCE_WINDOW_DAYS = 30
MIN_SIGNALS = 20
PRIOR_SKILL = 0.05
# How far back a signal may still be running: the longest horizon a signal may have
# (the signal_horizon_at_most_a_year rule), which bounds the scan.
LOOKBACK = timedelta(days=366)

FUSE_SQL = """
WITH latest AS (
    SELECT DISTINCT ON (s.instrument_id, s.agent_id)
           s.instrument_id, s.agent_id, a.name, s.ts, s.direction, s.strength, s.confidence
    FROM signals_signal s
    JOIN signals_agent a ON a.id = s.agent_id AND a.active
    WHERE s.ts <= %(as_of)s AND s.ts > %(as_of)s - %(lookback)s
      AND s.ts + s.horizon > %(as_of)s
      AND (%(instruments)s::bigint[] IS NULL OR s.instrument_id = ANY(%(instruments)s::bigint[]))
    ORDER BY s.instrument_id, s.agent_id, s.ts DESC
),
weighted AS (
    SELECT l.*, p.information_coefficient AS ic,
           CASE WHEN p.signal_count >= %(min_signals)s
                THEN greatest(coalesce(p.information_coefficient, 0), 0)
                ELSE %(prior)s END AS skill
    FROM latest l
    LEFT JOIN signals_signalperformance p
           ON p.agent_id = l.agent_id AND p.window_days = %(window)s
),
inputs AS (SELECT w.*, w.confidence * w.skill AS weight FROM weighted w)
INSERT INTO signals_fusedsignal AS f
    (instrument_id, ts, target_weight, confidence, method, inputs, input_count)
SELECT instrument_id, %(as_of)s,
       CASE WHEN sum(weight) > 0
            THEN least(1.0, greatest(-1.0, sum(weight * strength) / sum(weight))) ELSE 0 END,
       CASE WHEN sum(weight) > 0
            THEN least(1.0, greatest(0.0, sum(weight * confidence) / sum(weight))) ELSE 0 END,
       %(method)s,
       jsonb_agg(jsonb_build_object(
           'agent', name, 'signal_ts', ts, 'direction', direction, 'strength', strength,
           'confidence', confidence, 'skill', skill, 'information_coefficient', ic,
           'weight', weight) ORDER BY name),
       count(*)
FROM inputs
GROUP BY instrument_id
ON CONFLICT (instrument_id, method, ts) DO UPDATE SET
    target_weight = EXCLUDED.target_weight, confidence = EXCLUDED.confidence,
    inputs = EXCLUDED.inputs, input_count = EXCLUDED.input_count
RETURNING id
"""


@dataclass(frozen=True)
class Fusion:
    as_of: datetime
    fused: list[FusedSignal]


def fuse(as_of: datetime | None = None, instrument_ids: list[int] | None = None) -> Fusion:
    """Fuse the signals running at ``as_of`` (default now) for every instrument that has any
    (or those given); a second run for the same time replaces the first."""
    as_of = as_of or timezone.now()
    partitions.prepare_load(FusedSignal._meta.db_table, as_of, as_of)
    params: dict[str, Any] = {
        "as_of": as_of,
        "lookback": LOOKBACK,
        "instruments": instrument_ids,
        "min_signals": MIN_SIGNALS,
        "prior": PRIOR_SKILL,
        "window": PERFORMANCE_WINDOW_DAYS,
        "method": METHOD,
    }
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(FUSE_SQL, params)
        ids = [row[0] for row in cursor.fetchall()]
    fused = FusedSignal.objects.filter(id__in=ids, ts=as_of).select_related("instrument")
    return Fusion(as_of=as_of, fused=list(fused.order_by("instrument__symbol")))
