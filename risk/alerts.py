"""Risk limits checked against the latest metrics, and the life of the alerts they raise.

One statement checks every active limit against its account's latest value of the metric and
inserts an alert for each breach, unless the limit already has one that is not resolved (the
database's partial unique index ``risk_alert_one_open``): a breach that lasts is raised once.
After a person resolves it, a breach still there is raised again on the next check.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from django.db import connection
from django.utils import timezone

from risk.models import RiskAlert

RAISE_SQL = """
INSERT INTO risk_riskalert (limit_id, account_id, metric, value, threshold, direction,
                            severity, measured_at, state, resolution)
SELECT l.id, l.account_id, l.metric, m.value, l.threshold, l.direction, l.severity, m.ts,
       'open', ''
FROM risk_risklimit l
CROSS JOIN LATERAL (
    SELECT value, ts FROM risk_riskmetric
    WHERE account_id = l.account_id AND metric = l.metric AND ts <= %(as_of)s
    ORDER BY ts DESC LIMIT 1
) AS m
WHERE l.active
  AND (%(accounts)s::bigint[] IS NULL OR l.account_id = ANY(%(accounts)s::bigint[]))
  AND CASE l.direction WHEN 'above' THEN m.value > l.threshold ELSE m.value < l.threshold END
ON CONFLICT (limit_id) WHERE state <> 'resolved' DO NOTHING
RETURNING id
"""


class AlertStateError(ValueError):
    """The alert is not in a state that allows the change asked for."""


def raise_alerts(as_of: datetime, accounts: Iterable[int] | None = None) -> list[int]:
    """Raise an alert for each breached limit that has none open; returns the new alerts' ids."""
    ids = None if accounts is None else sorted({int(a) for a in accounts})
    with connection.cursor() as cursor:
        cursor.execute(RAISE_SQL, {"as_of": as_of, "accounts": ids})
        return [row[0] for row in cursor.fetchall()]


def acknowledge(alert: RiskAlert, user) -> RiskAlert:
    """The user has seen the alert (an open one only)."""
    if alert.state != RiskAlert.State.OPEN:
        raise AlertStateError(f"alert {alert.pk} is {alert.state}, not open")
    alert.state = RiskAlert.State.ACKNOWLEDGED
    alert.acknowledged_by, alert.acknowledged_at = user, timezone.now()
    alert.save(update_fields=["state", "acknowledged_by", "acknowledged_at"])
    return alert


def resolve(alert: RiskAlert, user, resolution: str = "") -> RiskAlert:
    """The user has dealt with the alert; an open one is acknowledged by the same act."""
    if alert.state == RiskAlert.State.RESOLVED:
        raise AlertStateError(f"alert {alert.pk} is resolved already")
    now = timezone.now()
    fields = ["state", "resolved_by", "resolved_at", "resolution"]
    if alert.state == RiskAlert.State.OPEN:
        alert.acknowledged_by, alert.acknowledged_at = user, now
        fields += ["acknowledged_by", "acknowledged_at"]
    alert.state = RiskAlert.State.RESOLVED
    alert.resolved_by, alert.resolved_at, alert.resolution = user, now, resolution
    alert.save(update_fields=fields)
    return alert
