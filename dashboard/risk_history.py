"""The risk page: an account's VaR and CVaR over time with its limits drawn across them."""

from __future__ import annotations

from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.utils import timezone

from dashboard import charts
from risk.models import Metric, RiskLimit, RiskMetric
from trading.models import Account

HISTORY = timedelta(days=370)
# Historical VaR and CVaR: what the demo's and most desks' limits are set on.
VAR_METRICS = (Metric.VAR_HISTORICAL, Metric.CVAR_HISTORICAL)


def var_chart(
    user: AbstractBaseUser | AnonymousUser, account: Account
) -> tuple[dict, list[RiskLimit]]:
    """``account``'s VaR and CVaR lines (as the user may read them) and the active limits
    drawn on them (each on its metric's line)."""
    rows = (
        RiskMetric.objects.visible_to(user)
        .filter(account=account, metric__in=VAR_METRICS, ts__gte=timezone.now() - HISTORY)
        .order_by("metric", "ts")
        .values_list("metric", "ts", "value")
    )
    curves = charts.curves(rows)
    limits = list(
        RiskLimit.objects.visible_to(user)
        .filter(account=account, metric__in=VAR_METRICS, active=True)
        .order_by("metric", "threshold")
    )
    series = []
    for i, metric in enumerate(VAR_METRICS):
        drawn = [
            (f"limit {lim.threshold:,.0f}", lim.threshold) for lim in limits if lim.metric == metric
        ]
        series.append(
            charts.line(
                Metric(metric).label,
                curves.get(metric, []),
                color=charts.PALETTE[i],
                limits=drawn,
            )
        )
    return charts.chart(*series), limits
