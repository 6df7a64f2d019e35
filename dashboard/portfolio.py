"""What the overview and portfolio pages show of accounts: NAV curves, latest snapshots,
cash balances, open alerts."""

from __future__ import annotations

from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

from django.db.models import Sum
from django.utils import timezone

from dashboard import charts
from risk.models import RiskAlert
from trading.models import PortfolioSnapshot

NAV_HISTORY = timedelta(days=370)


def nav_chart(snapshots) -> dict:
    """One NAV line per account over the last year of ``snapshots`` (a scoped queryset)."""
    since = timezone.now() - NAV_HISTORY
    rows = (
        snapshots.filter(ts__gte=since)
        .order_by("account__name", "ts")
        .values_list("account__name", "ts", "nav")
    )
    return charts.chart(*charts.lines(charts.curves(rows)))


def latest_snapshots(snapshots) -> list[PortfolioSnapshot]:
    """Each account's newest snapshot: its NAV, cash and the day's P&L."""
    return list(
        snapshots.order_by("account_id", "-ts").distinct("account_id").select_related("account")
    )


def pnl_by_currency(latest: list[PortfolioSnapshot]) -> dict[str, Decimal]:
    """The day's P&L of the newest snapshots, added up per currency (never across them)."""
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for snapshot in latest:
        totals[snapshot.currency] += snapshot.daily_pnl or Decimal(0)
    return dict(sorted(totals.items()))


def cash_balances(entries) -> list[dict]:
    """Cash per account and currency: the sum of its entries."""
    return list(
        entries.values("account__name", "currency")
        .annotate(balance=Sum("amount"))
        .order_by("account__name", "currency")
    )


def open_alerts(alerts, limit: int = 50) -> list[RiskAlert]:
    """Alerts not yet resolved, newest first."""
    return list(
        alerts.exclude(state=RiskAlert.State.RESOLVED)
        .select_related("account", "limit", "acknowledged_by")
        .order_by("-raised_at", "-id")[:limit]
    )


def recent_snapshots(snapshots, limit: int = 20) -> list[PortfolioSnapshot]:
    return list(snapshots.select_related("account").order_by("-ts", "account__name")[:limit])
