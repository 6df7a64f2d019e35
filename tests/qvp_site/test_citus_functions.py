"""On Citus, a SQL function that reads a distributed table is never inlined where Citus does not
see it: inlined inside a CTE, PostgreSQL alone planned its body over the coordinator's empty
shell of the table, and the answer had no row and no error (a read as known at a time counted
0 bars; a dividend's adjustment found no close and adjusted nothing). Runs where DATABASE_URL
points at a coordinator; skipped elsewhere."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from marketdata.models import Instrument
from qvp_site.db import citus_functions, partitions

pytestmark = pytest.mark.citus
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)
KNOWN_AT = "marketdata_minutebar_known_at(timestamp with time zone)"
IN_A_CTE = (
    "WITH f AS MATERIALIZED (SELECT * FROM marketdata_minutebar_known_at(now()))"
    " SELECT count(*) FROM f WHERE instrument_id = %s"
)


def inlined_readers() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(citus_functions.INLINED_READERS_SQL)
        return [row[0] for row in cursor.fetchall()]


def test_after_migrate_no_function_reading_a_distributed_table_is_inlinable(db):
    assert inlined_readers() == []
    with connection.cursor() as cursor:
        cursor.execute("SELECT proconfig FROM pg_proc WHERE oid = %s::regprocedure", [KNOWN_AT])
        assert cursor.fetchone()[0] == ["search_path=public, pg_temp"]


def test_a_function_called_in_a_cte_reads_the_workers_not_the_empty_shell(db):
    instrument = Instrument.objects.create(symbol="CTE", asset_class="equity")
    partitions.prepare_load("marketdata_minutebar", NOON, NOON + timedelta(minutes=2))
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close)"
            " SELECT %s, %s + m * interval '1 minute', 10, 11, 9, 10.5"
            " FROM generate_series(0, 2) m",
            [instrument.id, NOON],
        )
        cursor.execute(IN_A_CTE, [instrument.id])
        assert cursor.fetchone()[0] == 3
        # The hazard, shown: inlinable again, the same query reads the shell.
        cursor.execute(f"ALTER FUNCTION {KNOWN_AT} RESET search_path")
        cursor.execute(IN_A_CTE, [instrument.id])
        assert cursor.fetchone()[0] == 0


def test_a_function_defined_again_is_seen_to_by_the_next_migrate(db):
    with connection.cursor() as cursor:
        cursor.execute(f"ALTER FUNCTION {KNOWN_AT} RESET search_path")  # as CREATE OR REPLACE
    assert inlined_readers() == [KNOWN_AT]
    assert citus_functions.keep_readers_uninlined(connection) == [KNOWN_AT]
    assert inlined_readers() == []
