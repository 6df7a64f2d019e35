"""The merge's statement (marketdata_merge_sql, marketdata/sql/revisions/0018.sql) has a Citus
branch; on TimescaleDB and plain PostgreSQL it is 0011's, word for word, so the loads there
plan and run as they did."""

from __future__ import annotations

import pytest
from django.db import connection, transaction

from qvp_site.db import engine, sqlfiles

CALLS = [
    "marketdata_merge_sql('marketdata_minutebar', ARRAY['ts'], ARRAY['open', 'close'],"
    " 'SELECT 1', '2026-01-02 03:04:05+00')",
    "marketdata_merge_sql('marketdata_tick', ARRAY['ts', 'sequence'], ARRAY['price'],"
    " 'SELECT 1', '2026-01-02 03:04:05+00')",
]


def _merge_function_of(version: str) -> str:
    text = sqlfiles.read_sql("marketdata", "revisions", version)
    start = text.index("CREATE OR REPLACE FUNCTION marketdata_merge_sql(")
    return text[start : text.index("$$;", start) + 3]


@pytest.mark.parametrize("call", CALLS)
def test_the_merge_statement_off_citus_is_0011s(db, call):
    if engine.is_citus():
        pytest.skip("on Citus the merge reads the stored keys into a CTE (the test below)")
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SELECT {call}")
        now = cursor.fetchone()[0]
        cursor.execute("CREATE SCHEMA qvp_merge_0011")
        cursor.execute("SET LOCAL search_path = qvp_merge_0011, public")
        cursor.execute(_merge_function_of("0011"))
        cursor.execute(f"SELECT qvp_merge_0011.{call}")
        before = cursor.fetchone()[0]
        transaction.set_rollback(True)
    assert now == before


@pytest.mark.citus
@pytest.mark.parametrize("call", CALLS)
def test_on_citus_the_merge_finds_new_rows_against_the_stored_keys(db, call):
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {call}")
        statement = cursor.fetchone()[0]
    assert " stored AS MATERIALIZED (SELECT t.ts" in statement
    assert "(SELECT 1 FROM stored AS t WHERE" in statement
