"""The risk alerts the dashboard lists: those not yet resolved, newest first."""

from __future__ import annotations

from django.db.models import QuerySet

from risk.models import RiskAlert


def unresolved(alerts: QuerySet[RiskAlert]) -> QuerySet[RiskAlert]:
    return alerts.exclude(state=RiskAlert.State.RESOLVED)


def open_alerts(alerts: QuerySet[RiskAlert], limit: int = 50) -> list[RiskAlert]:
    """The newest ``limit`` unresolved alerts of ``alerts`` (a scoped queryset)."""
    return list(
        unresolved(alerts)
        .select_related("account", "limit", "acknowledged_by")
        .order_by("-raised_at", "-id")[:limit]
    )
