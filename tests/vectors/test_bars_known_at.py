"""``vectors.bars.load(..., known_at=t)`` reads ``<table>_known_at(t)`` in the table's place:
PostgreSQL inlines the function, so the reads of a rerun still go by the (instrument, ts)
indexes of the table and of its revisions (a function scan would read every bar ever known)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from qvp_site.db import engine
from vectors import bars

T = datetime(2024, 5, 13, tzinfo=UTC)


@pytest.mark.parametrize("daily", [False, True], ids=["minute", "daily"])
def test_a_read_as_known_at_a_time_is_inlined_onto_the_indexes(db, daily):
    statement, params = bars.query(7, daily, T, 400, known_at=T)
    table = "marketdata_dailybar" if daily else "marketdata_minutebar"
    # The body of <table>_known_at(t), written out: the versions current at the time.
    assert f'"{table}_history" WHERE known_from <= %s' in statement
    with connection.cursor() as cursor:
        if engine.is_citus():  # the workers plan the shards' reads: the setting goes there
            cursor.execute("SET LOCAL citus.propagate_set_commands = 'local'")
        # Tables this small would be read whole; the question is whether an index can serve.
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + statement, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Function Scan" not in plan, plan
    assert f"on {table}revision" in plan, plan  # the revisions, by their index
    assert "Seq Scan" not in plan, plan


def test_without_known_at_the_table_itself_is_read(db):
    statement, params = bars.query(7, False, None, 0, known_at=None)
    assert "_known_at" not in statement
    assert params == [7]
