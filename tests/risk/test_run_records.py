"""A run's record as the application's role: the run writes it, and what it says it read is
never rewritten afterwards (only its end and a repeat's verdict move); the database refuses a
record that breaks its rules, whatever the door."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, ProgrammingError, connection, transaction

from qvp_site.acting import acting_as
from risk.models import FactorExposure, RiskAlert, RiskLimit, RiskMetric, RiskRun
from risk.runs import RunOptions, compute_risk
from tests.risk.conftest import closes_from, daily_bars, day, hold, instrument

OPTIONS = RunOptions(confidence=0.95, lookback=20, benchmark="SPY", volatility_window=5)


@pytest.fixture
def held(account):
    """A holding whose bars have no volume (the size factor cannot be computed for it)."""
    stock = instrument("HELD")
    daily_bars(stock, closes_from([0.01, -0.02, 0.015, -0.005, 0.02] * 6))
    hold(account, stock, 10, "100")
    return account


def _refused(sql: str, params: list) -> None:
    with (
        pytest.raises(ProgrammingError, match="permission denied"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(sql, params)


def test_the_app_role_runs_and_records_but_cannot_rewrite_what_a_run_read(held, as_app_role):
    report = compute_risk(day(30), options=OPTIONS)
    run = RiskRun.objects.get(pk=report.run_id)
    assert run.accounts == [held.id]  # every account, though the role alone sees none
    assert run.finished_at is not None
    with acting_as("test"):  # row-level security: a system actor reads every account
        assert RiskMetric.objects.filter(run=run, metric="var_historical").exists()
        exposures = set(FactorExposure.objects.filter(run=run).values_list("factor", flat=True))
    assert "size" not in exposures
    assert "momentum" in exposures
    for column, value in (("known_at", day(1)), ("as_of", day(1)), ("code_version", "other")):
        _refused(f"UPDATE risk_riskrun SET {column} = %s WHERE id = %s", [value, run.pk])
    _refused("DELETE FROM risk_riskrun WHERE id = %s", [run.pk])
    with connection.cursor() as cursor:  # its end may move (a run finishing)
        cursor.execute(
            "UPDATE risk_riskrun SET finished_at = clock_timestamp() WHERE id = %s", [run.pk]
        )
        assert cursor.rowcount == 1


def test_the_database_refuses_a_bad_run_record(db):
    row = {
        "as_of": day(1),
        "known_at": day(2),
        "code_version": "x",
        "confidence": 0.95,
        "lookback": 20,
        "benchmark": "SPY",
        "volatility_window": 5,
        "actor": "t",
    }
    for change, rule in (
        ({"confidence": 1.0}, "risk_run_confidence_range"),
        ({"lookback": 1}, "risk_run_lookback_enough"),
        ({"volatility_window": 1}, "risk_run_window_enough"),
        ({"identical": True}, "risk_run_verdict_of_a_repeat"),
        ({"adjustment": "adjusted"}, "risk_run_adjustment_known"),
    ):
        values = {**row, **change}
        columns = ", ".join(values)
        marks = ", ".join(["%s"] * len(values))
        with (
            pytest.raises(IntegrityError, match=rule),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(
                f"INSERT INTO risk_riskrun ({columns}, accounts) VALUES ({marks}, '{{}}')",
                list(values.values()),
            )


def test_a_run_of_the_past_checks_no_limit(held):
    """Alerts speak of what is known now: a run given a knowledge time raises none."""
    RiskLimit.objects.create(account=held, metric="gross_exposure", threshold=1)
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement_timestamp()")
        (known,) = cursor.fetchone()
    past = compute_risk(day(30), options=OPTIONS, known_at=known)
    assert past.metrics > 0
    assert past.alerts_raised == []
    assert not RiskAlert.objects.exists()
    assert len(compute_risk(day(30), options=OPTIONS).alerts_raised) == 1
