"""The risk tables as the design wants them on either engine: time series, row-level
security on the account-scoped tables, the application role's limits."""

from __future__ import annotations

import pytest
from django.db import ProgrammingError, connection

TIME_SERIES = ["risk_volatilityestimate", "risk_riskmetric", "risk_factorexposure"]
SCOPED = [
    "risk_riskmetric",
    "risk_factorexposure",
    "risk_risklimit",
    "risk_riskalert",
    "risk_alertdelivery",
]


@pytest.mark.parametrize("table", TIME_SERIES)
def test_time_series_tables(timescaledb, table):
    with connection.cursor() as cursor:
        if timescaledb:
            cursor.execute(
                "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
                [table],
            )
        else:
            cursor.execute(
                "SELECT 1 FROM pg_partitioned_table WHERE partrelid = %s::regclass", [table]
            )
        assert cursor.fetchone() == (1,)


@pytest.mark.parametrize("table", SCOPED)
def test_row_level_security(db, table):
    with connection.cursor() as cursor:
        cursor.execute("SELECT relrowsecurity FROM pg_class WHERE oid = %s::regclass", [table])
        assert cursor.fetchone() == (True,)
        cursor.execute("SELECT count(*) FROM pg_policies WHERE tablename = %s", [table])
        assert cursor.fetchone() == (4,)


def test_app_role_cannot_rewrite_a_breach(books, as_app_role):
    alert = books["alpha_alert"]
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('qvp.actor', 'system:test', true)")
        with pytest.raises(ProgrammingError, match="permission denied"):
            cursor.execute("UPDATE risk_riskalert SET value = 0 WHERE id = %s", [alert.pk])
