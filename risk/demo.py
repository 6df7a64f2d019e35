"""Demo risk limits: after seed_demo's trading records, a year of daily volatility estimates
and weekly risk runs over the last half year (the dashboard's histories), a risk run as of the
last demo snapshot, then per demo account a few limits set tighter than where its book stands
(so the demo shows alerts, of each severity) and one it keeps within; the limits are checked at
once.
"""

from __future__ import annotations

from collections.abc import Callable

from django.db.models import Max

from qvp_site.acting import acting_as
from risk import alerts, delivery
from risk.models import Metric, RiskLimit, RiskMetric
from risk.runs import compute_risk
from risk.volatility import compute_volatility
from trading.demo import ACCOUNTS
from trading.models import Account, PortfolioSnapshot

ACTOR = "seed_demo"
# metric: (severity, threshold as a multiple of the measured value)
TIGHT = {
    Metric.VAR_HISTORICAL: ("critical", 0.8),
    Metric.CVAR_PARAMETRIC: ("warning", 0.9),
    Metric.GROSS_EXPOSURE: ("info", 0.95),
}
LOOSE = {Metric.VAR_MONTE_CARLO: ("critical", 3.0)}
HISTORY_RUNS = 26  # weekly, before the last
SESSIONS_PER_WEEK = 5
VOLATILITY_HISTORY = 252


def seed(write: Callable[[str], None]) -> None:
    accounts = list(Account.objects.filter(name__in=[a.name for a in ACCOUNTS]))
    if not accounts or RiskLimit.objects.filter(account__in=accounts).exists():
        write("Risk demo: no demo accounts, or their limits exist already: nothing added.")
        return
    as_of = PortfolioSnapshot.objects.filter(account__in=accounts).aggregate(last=Max("ts"))["last"]
    if as_of is None:
        return
    ids = [a.id for a in accounts]
    compute_volatility(as_of, history=VOLATILITY_HISTORY)
    for earlier in _weekly(accounts, as_of):
        compute_risk(earlier, ids)
    compute_risk(as_of, ids)
    measured = RiskMetric.objects.filter(account__in=ids, ts=as_of).values_list(
        "account_id", "metric", "value"
    )
    with acting_as(ACTOR):
        RiskLimit.objects.bulk_create(_limits(measured))
        raised = alerts.raise_alerts(as_of, ids)
    delivered = delivery.deliver(raised)
    write(
        f"Risk demo: limits for {len(accounts)} accounts as of {as_of:%Y-%m-%d %H:%M}, "
        f"{len(raised)} alerts raised, {delivered} delivered."
    )


def _weekly(accounts: list[Account], as_of) -> list:
    """Snapshot times a week apart before ``as_of``, oldest first."""
    times = (
        PortfolioSnapshot.objects.filter(account__in=accounts, ts__lt=as_of)
        .order_by("-ts")
        .values_list("ts", flat=True)
        .distinct()[: HISTORY_RUNS * SESSIONS_PER_WEEK]
    )
    return list(times)[SESSIONS_PER_WEEK - 1 :: SESSIONS_PER_WEEK][::-1]


def _limits(measured) -> list[RiskLimit]:
    limits = []
    for account_id, metric, value in measured:
        severity, multiple = {**TIGHT, **LOOSE}.get(metric, (None, None))
        if severity is not None and value > 0:
            limits.append(
                RiskLimit(
                    account_id=account_id,
                    metric=metric,
                    threshold=float(f"{value * multiple:.3g}"),
                    severity=severity,
                    note="demo: tighter than the book" if metric in TIGHT else "demo: within",
                )
            )
    return limits
