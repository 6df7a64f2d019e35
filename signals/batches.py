"""Signals recorded in batches (the API's ``POST /api/v1/signals/``): the agents and symbols a
batch names resolved in one query each, whatever its size (a symbol on its signal's date),
and the batch written by one INSERT from arrays. A signal recorded already (same agent,
symbol and time) is left as it was.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connection

from marketdata.fields import as_date, resolve_dated
from qvp_site.db import partitions
from signals.models import Agent, Signal


def resolve_names(valid: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Unknown or inactive agents, unknown symbols and repeats, by item index; the items
    that pass get their agent and instrument ids."""
    values = valid.values()
    agents = {
        a.name: a
        for a in Agent.objects.filter(name__in={i["agent"] for i in values}).only(
            "id", "name", "active"
        )
    }
    # Each signal's symbol names the instrument that bore it on the signal's date.
    instruments = resolve_dated((i["symbol"], as_date(i["ts"])) for i in values)
    errors: dict[int, dict[str, Any]] = {}
    seen: dict[tuple[str, str, Any], int] = {}
    for index, item in valid.items():
        problems: dict[str, list[str]] = {}
        agent = agents.get(item["agent"])
        if agent is None:
            problems["agent"] = [f"unknown agent {item['agent']!r}"]
        elif not agent.active:
            problems["agent"] = [f"agent {item['agent']!r} is not active"]
        instrument = instruments[(item["symbol"], as_date(item["ts"]))]
        if isinstance(instrument, str):
            problems["symbol"] = [instrument]
        key = (item["agent"], item["symbol"], item["ts"])
        if key in seen:
            problems["ts"] = [f"repeats the agent, symbol and time of item {seen[key]}"]
        seen.setdefault(key, index)
        if agent is None or problems:  # an unknown agent is a problem
            errors[index] = problems
        else:
            item["agent_id"], item["instrument_id"] = agent.id, instrument
    return errors


INSERT_SIGNALS_SQL = """
INSERT INTO signals_signal
    (agent_id, instrument_id, ts, direction, strength, confidence, horizon, explanation)
SELECT * FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::smallint[],
                     %s::double precision[], %s::double precision[], %s::interval[],
                     %s::jsonb[])
ON CONFLICT (agent_id, instrument_id, ts) DO NOTHING
"""


def insert_signals(items: list[dict[str, Any]]) -> int:
    """One INSERT for the whole batch (a signal already recorded is left as it is); how many
    were new. The partitions the batch needs are made first."""
    times = [i["ts"] for i in items]
    # Only where the batch's signals fall; TooManyPartitions for more new ones than a load may make.
    partitions.prepare_times(Signal._meta.db_table, times)
    columns = [
        [i["agent_id"] for i in items],
        [i["instrument_id"] for i in items],
        times,
        [i["direction"] for i in items],
        [i["strength"] for i in items],
        [i["confidence"] for i in items],
        [i["horizon"] for i in items],
        [json.dumps(i["explanation"]) for i in items],
    ]
    with connection.cursor() as cursor:
        cursor.execute(INSERT_SIGNALS_SQL, columns)
        return int(cursor.rowcount)
