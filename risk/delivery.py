"""Alerts reach people: by email (Django's mail) and by webhook (a POST of JSON signed with
HMAC-SHA256 over its timestamp and body, so that a receiver can refuse a captured request
replayed later), each channel retried with exponential backoff, every attempt and its
outcome recorded in ``AlertDelivery``.

Deliveries happen outside the transaction that raised the alerts (a slow mail server must not
hold the books' locks), each attempt written in its own short transaction so the record of a
failure survives whatever happens next. An alert whose channel failed every attempt is tried
again by the next ``deliver_undelivered`` (each ``compute_risk`` run calls it), its attempts
numbered on from the last.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import requests
from django.conf import settings
from django.core.mail import send_mail
from django.db import connection
from django.db.models import Count, Exists, Max, OuterRef, Q
from django.db.models.expressions import Combinable

from qvp_site.acting import acting_as
from risk.models import AlertDelivery, RiskAlert

log = logging.getLogger("qvp.risk.delivery")
ACTOR = "risk_alerts"
SIGNATURE_HEADER = "X-QVP-Signature"
TIMESTAMP_HEADER = "X-QVP-Timestamp"
LOCK_NAMESPACE = "qvp_alert_delivery"


@dataclass(frozen=True)
class DeliveryOutcome:
    delivered: bool
    status_code: int | None = None
    error: str = ""


def payload(alert: RiskAlert) -> dict:
    return {
        "alert": alert.pk,
        "account": alert.account_id,
        "account_name": alert.account.name,
        "limit": alert.limit_id,
        "metric": alert.metric,
        "value": alert.value,
        "threshold": alert.threshold,
        "direction": alert.direction,
        "severity": alert.severity,
        "measured_at": alert.measured_at.isoformat(),
        "raised_at": alert.raised_at.isoformat(),
    }


def sign(timestamp: str, body: bytes, secret: str) -> str:
    """The signature header's value: ``sha256=<hex HMAC of "<timestamp>.<body>" under the
    secret>``; the timestamp (UNIX seconds) is sent in its own header."""
    signed = timestamp.encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def send_email(alert: RiskAlert) -> DeliveryOutcome:
    data = payload(alert)
    subject = (
        f"[QVP {alert.severity.upper()}] {data['account_name']}: {alert.metric} "
        f"{alert.value:.6g} {alert.direction} limit {alert.threshold:.6g}"
    )
    body = "A risk limit is breached.\n\n" + "\n".join(f"{k}: {v}" for k, v in data.items())
    try:
        send_mail(
            subject,
            body,
            settings.DEFAULT_FROM_EMAIL,
            settings.QVP_RISK_ALERT_EMAILS,
            fail_silently=False,
        )
    except Exception as error:  # any failure of the mail server is a failed attempt
        return DeliveryOutcome(False, error=f"{type(error).__name__}: {error}")
    return DeliveryOutcome(True)


def post_webhook(alert: RiskAlert) -> DeliveryOutcome:
    body = json.dumps(payload(alert), sort_keys=True).encode()
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        TIMESTAMP_HEADER: timestamp,
        SIGNATURE_HEADER: sign(timestamp, body, settings.QVP_RISK_ALERT_WEBHOOK_SECRET),
    }
    try:
        response = requests.post(
            settings.QVP_RISK_ALERT_WEBHOOK_URL,
            data=body,
            headers=headers,
            timeout=settings.QVP_RISK_ALERT_WEBHOOK_TIMEOUT,
            # A redirect would be followed by a GET without the body: a failed attempt.
            allow_redirects=False,
        )
    except requests.RequestException as error:
        return DeliveryOutcome(False, error=f"{type(error).__name__}: {error}")
    if 200 <= response.status_code < 300:
        return DeliveryOutcome(True, response.status_code)
    return DeliveryOutcome(False, response.status_code, f"HTTP {response.status_code}")


def channels() -> dict[str, tuple[str, Callable[[RiskAlert], DeliveryOutcome]]]:
    """The configured channels: name -> (target, sender)."""
    found: dict[str, tuple[str, Callable[[RiskAlert], DeliveryOutcome]]] = {}
    if settings.QVP_RISK_ALERT_EMAILS:
        found["email"] = (", ".join(settings.QVP_RISK_ALERT_EMAILS), send_email)
    if settings.QVP_RISK_ALERT_WEBHOOK_URL:
        found["webhook"] = (settings.QVP_RISK_ALERT_WEBHOOK_URL, post_webhook)
    return found


def _record(
    alert: RiskAlert, channel: str, target: str, attempt: int, outcome: DeliveryOutcome
) -> None:
    with acting_as(ACTOR):
        AlertDelivery.objects.create(
            alert=alert,
            account_id=alert.account_id,
            channel=channel,
            target=target[:500],
            attempt=attempt,
            outcome="delivered" if outcome.delivered else "failed",
            status_code=outcome.status_code,
            error=outcome.error,
        )


def deliver(alert_ids: Iterable[int], sleep: Callable[[float], None] = time.sleep) -> int:
    """Deliver each alert by each configured channel it has not reached yet; returns the
    deliveries that succeeded. Attempts per channel and backoff come from settings."""
    configured = channels()
    if not configured:
        return 0
    with acting_as(ACTOR):  # the application's role reads alerts only when someone acts
        alerts = list(RiskAlert.objects.filter(pk__in=list(alert_ids)).select_related("account"))
        done = _reached(alerts)
    delivered = 0
    for alert in alerts:  # each is a network call: a loop over alerts, not over rows of data
        for channel, (target, send) in configured.items():
            if (alert.pk, channel) in done:
                continue
            with _claimed(alert.pk, channel) as mine:
                reached, last = _progress(alert.pk, channel) if mine else (True, 0)
                if not reached:
                    delivered += _attempts(alert, channel, target, send, last + 1, sleep)
    return delivered


def _reached(alerts: list[RiskAlert]) -> set[tuple[int, str]]:
    return set(
        AlertDelivery.objects.filter(alert__in=alerts, outcome="delivered").values_list(
            "alert_id", "channel"
        )
    )


@contextmanager
def _claimed(alert_id: int, channel: str) -> Iterator[bool]:
    """Whether this run holds the delivery of the alert by the channel: two runs at once (the
    scheduler's and one by hand) never send an alert twice; the one that finds it held moves
    on. A session-level advisory lock, as each attempt commits on its own (the scheduler and
    commands connect directly, never through a transaction pooler)."""
    key: list[Any] = [f"{LOCK_NAMESPACE}:{channel}", alert_id]
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(hashtext(%s), %s)", key)
        held = cursor.fetchone()[0]
    try:
        yield held
    finally:
        if held:
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_unlock(hashtext(%s), %s)", key)


def _progress(alert_id: int, channel: str) -> tuple[bool, int]:
    """Whether the channel has reached the alert, and its last attempt's number, read once the
    delivery is claimed: another run may have delivered it since this one looked."""
    with acting_as(ACTOR):
        found = AlertDelivery.objects.filter(alert_id=alert_id, channel=channel).aggregate(
            reached=Count("pk", filter=Q(outcome="delivered")), last=Max("attempt")
        )
    return found["reached"] > 0, found["last"] or 0


def _attempts(alert, channel, target, send, first: int, sleep) -> int:
    attempts = settings.QVP_RISK_ALERT_ATTEMPTS
    for k in range(attempts):
        if k:
            sleep(settings.QVP_RISK_ALERT_BACKOFF_SECONDS * 2 ** (k - 1))
        outcome = send(alert)
        _record(alert, channel, target, first + k, outcome)
        if outcome.delivered:
            return 1
        log.warning("alert %s by %s, attempt %s: %s", alert.pk, channel, first + k, outcome.error)
    return 0


def deliver_undelivered(
    sleep: Callable[[float], None] = time.sleep, skip: Iterable[int] = ()
) -> int:
    """Deliver the alerts, not yet resolved, that a configured channel has not reached:
    those it failed to reach, and those never tried (a run that stopped before delivering,
    a channel configured since); but those in ``skip`` (a run's own alerts, just tried).
    ``deliver`` skips the channels that reached them."""
    configured = channels()
    if not configured:
        return 0
    reached_by_all: Q | Combinable = Q()
    for channel in configured:
        reached_by_all &= Exists(
            AlertDelivery.objects.filter(alert=OuterRef("pk"), channel=channel, outcome="delivered")
        )
    with acting_as(ACTOR):
        pending = list(
            RiskAlert.objects.exclude(state=RiskAlert.State.RESOLVED)
            .exclude(pk__in=list(skip))
            .exclude(reached_by_all)
            .values_list("pk", flat=True)
        )
    return deliver(pending, sleep)
