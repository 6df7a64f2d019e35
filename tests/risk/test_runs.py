"""A risk run end to end: estimates, metrics and exposures stored; limits raise alerts once;
people acknowledge and resolve them; the database holds the rules whatever the door."""

from __future__ import annotations

from io import StringIO

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction

from risk.alerts import AlertStateError, acknowledge, raise_alerts, resolve
from risk.models import FactorExposure, RiskAlert, RiskLimit, RiskMetric, VolatilityEstimate
from risk.runs import RunOptions, compute_risk
from tests.risk.conftest import closes_from, daily_bars, day, hold, instrument
from tests.risk.test_performance import snapshots

DAYS = 80
OPTIONS = RunOptions(confidence=0.95, lookback=60, benchmark="SPY", volatility_window=20)


@pytest.fixture
def book(account):
    rng = np.random.default_rng(3)
    market = rng.normal(0.0003, 0.01, DAYS)
    specs = {"SPY": (1.0, 1e8), "BIG": (1.2, 5e7), "SMAL": (0.6, 1e5)}
    made = {}
    for symbol, (beta, volume) in specs.items():
        made[symbol] = instrument(symbol)
        returns = beta * market + rng.normal(0, 0.005, DAYS) * (symbol != "SPY")
        closes = closes_from(returns, 100.0)
        daily_bars(
            made[symbol],
            closes,
            volumes=np.full(DAYS + 1, volume),
            highs=closes * 1.01,
            lows=closes * 0.99,
        )
    hold(account, made["BIG"], 1000, "100")
    hold(account, made["SMAL"], 500, "100")
    snapshots(account, 2e5 * np.cumprod(np.r_[1.0, 1 + market[:40] * 0.9]))
    return account


def metrics(account) -> dict[str, float]:
    return dict(RiskMetric.objects.filter(account=account).values_list("metric", "value"))


def test_run_stores_estimates_metrics_and_exposures(book):
    report = compute_risk(day(DAYS), options=OPTIONS)
    assert report.volatility_estimates == 3 * 6
    assert VolatilityEstimate.objects.filter(ts=day(DAYS), window=20).count() == 18
    stored = metrics(book)
    for name in (
        "var_historical",
        "cvar_historical",
        "var_parametric",
        "cvar_parametric",
        "var_monte_carlo",
        "cvar_monte_carlo",
        "volatility",
        "sharpe",
        "sortino",
        "max_drawdown",
        "beta",
        "total_return",
        "gross_exposure",
        "net_exposure",
    ):
        assert name in stored, name
    assert stored["cvar_historical"] >= stored["var_historical"] > 0
    assert stored["beta"] == pytest.approx(0.9, abs=0.05)
    exposure = dict(FactorExposure.objects.filter(account=book).values_list("factor", "exposure"))
    assert set(exposure) == {"market", "size", "momentum", "volatility"}
    # Mostly BIG (beta 1.2) and some SMAL (0.6), weighted by value over the snapshot's NAV.
    assert 0.5 < exposure["market"] < 2


def test_rerun_restates_without_duplicates(book):
    compute_risk(day(DAYS), options=OPTIONS)
    first = RiskMetric.objects.count()
    compute_risk(day(DAYS), options=OPTIONS)
    assert RiskMetric.objects.count() == first
    assert VolatilityEstimate.objects.count() == 18


def test_breach_raises_one_alert_until_resolved(book, desks):
    limit = RiskLimit.objects.create(
        account=book, metric="gross_exposure", threshold=1000, severity="critical"
    )
    RiskLimit.objects.create(account=book, metric="gross_exposure", threshold=1e12)  # not hit
    report = compute_risk(day(DAYS), options=OPTIONS)
    assert len(report.alerts_raised) == 1
    alert = RiskAlert.objects.get()
    assert (alert.limit, alert.severity, alert.state) == (limit, "critical", "open")
    assert alert.value > alert.threshold == 1000
    # Still breached on the next runs: nothing new.
    assert compute_risk(day(DAYS), options=OPTIONS).alerts_raised == []
    assert raise_alerts(day(DAYS)) == []
    alice = desks["alice"]
    acknowledge(alert, alice)
    alert.refresh_from_db()
    assert (alert.state, alert.acknowledged_by) == ("acknowledged", alice)
    assert alert.acknowledged_at is not None
    assert raise_alerts(day(DAYS)) == []
    resolve(alert, desks["bob"], "cut the position")
    alert.refresh_from_db()
    assert (alert.state, alert.resolved_by, alert.resolution) == (
        "resolved",
        desks["bob"],
        "cut the position",
    )
    assert alert.acknowledged_by == alice  # who acknowledged stays
    # Resolved while still breached: the next check raises it anew.
    assert len(raise_alerts(day(DAYS))) == 1


def test_below_limits_and_inactive_limits(book):
    RiskLimit.objects.create(account=book, metric="sharpe", threshold=100, direction="below")
    RiskLimit.objects.create(
        account=book, metric="sharpe", threshold=50, direction="below", active=False
    )
    report = compute_risk(day(DAYS), options=OPTIONS)
    assert RiskAlert.objects.get(pk__in=report.alerts_raised).direction == "below"


def test_state_changes_refused(book, desks):
    limit = RiskLimit.objects.create(account=book, metric="gross_exposure", threshold=1)
    compute_risk(day(DAYS), options=OPTIONS)
    alert = RiskAlert.objects.get(limit=limit)
    resolve(alert, desks["alice"])
    with pytest.raises(AlertStateError):
        acknowledge(alert, desks["alice"])
    with pytest.raises(AlertStateError):
        resolve(alert, desks["alice"])


def test_database_refuses_what_breaks_an_alert(book, desks):
    """Raw SQL cannot reopen, rewrite, or double an alert."""
    limit = RiskLimit.objects.create(account=book, metric="gross_exposure", threshold=1)
    compute_risk(day(DAYS), options=OPTIONS)
    alert = RiskAlert.objects.get(limit=limit)
    resolve(alert, desks["alice"])
    statements = {
        "is resolved already": (
            "UPDATE risk_riskalert SET state = 'open', acknowledged_by_id = NULL,"
            " acknowledged_at = NULL, resolved_by_id = NULL, resolved_at = NULL WHERE id = %s"
        ),
        "breach is not edited": "UPDATE risk_riskalert SET value = 0 WHERE id = %s",
    }
    for message, sql in statements.items():
        with (
            pytest.raises(IntegrityError, match=message),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(sql, [alert.pk])
    raise_alerts(day(DAYS))
    with (
        pytest.raises(IntegrityError, match="risk_alert_one_open"),
        transaction.atomic(),
        connection.cursor() as cursor,
    ):
        cursor.execute(
            "INSERT INTO risk_riskalert (limit_id, account_id, metric, value, threshold,"
            " direction, severity, measured_at, state, resolution)"
            " SELECT limit_id, account_id, metric, value, threshold, direction, severity,"
            " measured_at, 'open', '' FROM risk_riskalert WHERE state = 'open'"
        )
    with (
        pytest.raises(IntegrityError, match="risk_alert_acknowledged_by_whom"),
        transaction.atomic(),
    ):
        RiskAlert.objects.filter(state="open").update(state="acknowledged")


def test_limit_rules_in_the_database(account):
    with pytest.raises(IntegrityError, match="risk_limit_metric_known"), transaction.atomic():
        RiskLimit.objects.create(account=account, metric="luck", threshold=1)
    with pytest.raises(IntegrityError, match="risk_limit_threshold_finite"), transaction.atomic():
        RiskLimit.objects.create(account=account, metric="beta", threshold=float("nan"))


def test_limits_are_audited(account):
    from qvp_site.models import AuditEntry

    RiskLimit.objects.create(account=account, metric="beta", threshold=2)
    assert AuditEntry.objects.filter(table_name="risk_risklimit", operation="INSERT").exists()


def test_command(book):
    out = StringIO()
    call_command("compute_risk", "--as-of", day(DAYS).isoformat(), "--lookback", "60", stdout=out)
    assert "18 volatility estimate(s)" in out.getvalue()
    assert RiskMetric.objects.filter(account=book, lookback=60).exists()
    with pytest.raises(CommandError, match="no account named 'nobody'"):
        call_command("compute_risk", "--account", "nobody")
    with pytest.raises(CommandError, match="--confidence"):
        call_command("compute_risk", "--confidence", "1.5")
