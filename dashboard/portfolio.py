"""What the overview and portfolio pages show of accounts: NAV curves, latest snapshots,
the day's P&L, cash balances."""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import QuerySet, Sum
from django.utils import timezone

from dashboard import charts
from trading.models import CashEntry, PortfolioSnapshot

NAV_HISTORY = timedelta(days=370)
# Cash that people move in and out: the NAV's steps that are not performance.
MOVEMENTS: dict[str, tuple[str, str, str]] = {
    CashEntry.Kind.DEPOSIT: ("belowBar", "arrowUp", charts.UP),
    CashEntry.Kind.WITHDRAWAL: ("aboveBar", "arrowDown", charts.DOWN),
    CashEntry.Kind.ADJUSTMENT: ("inBar", "circle", "#7f8c8d"),
}


def nav_charts(
    snapshots: QuerySet[PortfolioSnapshot], entries: QuerySet[CashEntry], prefix: str
) -> list[dict]:
    """The last year of ``snapshots`` (scoped) as one chart per currency, never two
    currencies on one axis: a NAV line per account, its deposits, withdrawals and adjustments
    (of ``entries``, scoped) marked where the NAV first includes them. Each is
    {"currency", "id" (``prefix`` and the currency), "chart", "movements"}."""
    since = timezone.now() - NAV_HISTORY
    rows = (
        snapshots.filter(ts__gte=since)
        .order_by("currency", "account__name", "ts")
        .values_list("currency", "account_id", "account__name", "ts", "nav")
    )
    curves: dict[str, dict[int, tuple[str, list]]] = defaultdict(dict)
    for currency, account, name, ts, nav in rows:
        curves[currency].setdefault(account, (name, []))[1].append((ts, nav))
    marks = _movement_markers(entries, since, curves)
    found = []
    for currency, accounts in curves.items():
        lines = []
        for i, (account, (name, points)) in enumerate(accounts.items()):
            line = charts.line(name, points, color=charts.PALETTE[i % len(charts.PALETTE)])
            line["markers"] = marks.get(account, [])
            lines.append(line)
        found.append(
            {
                "currency": currency,
                "id": f"{prefix}-{currency.lower()}",
                "chart": charts.chart(*lines),
                "movements": sum(len(line["markers"]) for line in lines),
            }
        )
    return found


def _movement_markers(
    entries: QuerySet[CashEntry], since: datetime, curves: dict[str, dict[int, tuple[str, list]]]
) -> dict[int, list[dict]]:
    """Each account's cash movements as markers at its first snapshot that includes them
    (the library marks points of the line); a movement no snapshot includes yet is left out."""
    times = {
        account: [ts for ts, _nav in points]
        for accounts in curves.values()
        for account, (_name, points) in accounts.items()
    }
    moves = (
        entries.filter(account_id__in=times, kind__in=MOVEMENTS, entry_at__gte=since)
        .order_by("entry_at", "id")
        .values_list("account_id", "kind", "amount", "currency", "entry_at")
    )
    found: dict[int, list[dict]] = defaultdict(list)
    for account, kind, amount, currency, at in moves:
        at_or_after = bisect_left(times[account], at)
        if at_or_after == len(times[account]):
            continue
        position, shape, color = MOVEMENTS[kind]
        found[account].append(
            {
                "time": charts.epoch(times[account][at_or_after]),
                "position": position,
                "shape": shape,
                "color": color,
                "text": f"{kind} {amount:+,.0f} {currency}",
            }
        )
    return found


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
