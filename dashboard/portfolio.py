"""What the overview and portfolio pages show of accounts: NAV curves, latest snapshots,
the day's P&L, cash balances."""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from dashboard import charts
from trading.models import CashEntry, PortfolioSnapshot

NAV_HISTORY = timedelta(days=370)


def nav_chart(snapshots: QuerySet[PortfolioSnapshot]) -> dict:
    """One NAV line per account over the last year of ``snapshots`` (a scoped queryset)."""
    since = timezone.now() - NAV_HISTORY
    rows = (
        snapshots.filter(ts__gte=since)
        .order_by("account__name", "ts")
        .values_list("account__name", "ts", "nav")
    )
    return charts.chart(*charts.lines(charts.curves(rows)))


def latest_snapshots(snapshots: QuerySet[PortfolioSnapshot]) -> list[PortfolioSnapshot]:
    """Each account's newest snapshot: its NAV, cash and the day's P&L."""
    return list(
        snapshots.order_by("account_id", "-ts").distinct("account_id").select_related("account")
    )


def day_pnl(latest: list[PortfolioSnapshot]) -> tuple[date | None, dict[str, Decimal]]:
    """The newest day among the accounts' latest snapshots, and the P&L of the snapshots of
    that day added up per currency (never across them); an account whose latest snapshot is
    older (dormant, or not snapshotted yet today) is left out rather than mixed in."""
    if not latest:
        return None, {}
    day = max(s.ts for s in latest).date()
    totals: dict[str, Decimal] = defaultdict(Decimal)
    for snapshot in latest:
        if snapshot.ts.date() == day:
            totals[snapshot.currency] += snapshot.daily_pnl or Decimal(0)
    return day, dict(sorted(totals.items()))


def cash_balances(entries: QuerySet[CashEntry]) -> list[dict]:
    """Cash per account and currency: the sum of its entries dated by now (a dividend is
    booked when the books apply it, dated on its pay date: cash from then on)."""
    return list(
        entries.filter(entry_at__lte=timezone.now())
        .values("account__name", "currency")
        .annotate(balance=Sum("amount"))
        .order_by("account__name", "currency")
    )


def recent_snapshots(
    snapshots: QuerySet[PortfolioSnapshot], limit: int = 20
) -> list[PortfolioSnapshot]:
    return list(snapshots.select_related("account").order_by("-ts", "account__name")[:limit])
