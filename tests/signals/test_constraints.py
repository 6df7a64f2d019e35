"""The database's own rules, met by raw SQL as by every other door."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from tests.signals.conftest import START

INSERT = (
    "INSERT INTO signals_signal (agent_id, instrument_id, ts, direction, strength, confidence,"
    " horizon, explanation) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)"
)


@pytest.mark.parametrize(
    ("change", "rule"),
    [
        ({"confidence": 1.5}, "signal_confidence_in_range"),
        ({"strength": float("nan")}, "signal_strength_in_range"),
        ({"strength": -0.5}, "signal_strength_matches_direction"),
        ({"direction": 2, "strength": 0.5}, "signal_direction_known"),
        ({"horizon": "0 seconds"}, "signal_horizon_positive"),
        ({"horizon": "400 days"}, "signal_horizon_at_most_a_year"),
        ({"explanation": "[1]"}, "signal_explanation_is_object"),
    ],
)
def test_raw_sql_meets_the_signal_rules(partitioned, aapl, momentum, change, rule):
    row = {
        "agent_id": momentum.id,
        "instrument_id": aapl.id,
        "ts": START,
        "direction": 1,
        "strength": 0.5,
        "confidence": 0.5,
        "horizon": "1 day",
        "explanation": "{}",
        **change,
    }
    with (
        pytest.raises(IntegrityError, match=rule),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(INSERT, list(row.values()))


@pytest.mark.parametrize(
    ("sql", "rule"),
    [
        (
            "INSERT INTO signals_newsarticle (ts, source, headline, body, url, symbols, sentiment)"
            " VALUES (%s, 'R', 'h', '', '', '{}', 'NaN')",
            "newsarticle_sentiment_in_range",
        ),
        (
            "INSERT INTO signals_alternativedata (ts, source, kind, payload)"
            " VALUES (%s, 'sat', 'parking', '[]')",
            "alternativedata_payload_is_object",
        ),
        (
            "INSERT INTO signals_systemlog (ts, level, logger, message, context)"
            " VALUES (%s, 'LOUD', 'x', 'y', '{}')",
            "systemlog_level_known",
        ),
    ],
)
def test_raw_sql_meets_the_other_rules(db, sql, rule):
    with (
        pytest.raises(IntegrityError, match=rule),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, [timezone.now()])  # partitions exist around now
