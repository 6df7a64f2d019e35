"""The admin's list of failed logins (axes' records), and its login form.

Axes' own registration is off (AXES_ENABLE_ADMIN = False) so that the list is registered here
on the project's terms: auditors view it and change nothing (``AuditorsReadOnly``), a
lockout shows until when it holds (the doubling backoff of ``qvp_site.logins``, not axes'
fixed count), and staff lift one by deleting its record. Axes' "clean up expired attempts"
action is not offered: it would delete by axes' rule of expiry rather than this one, and an
action without a permission of its own would be open to auditors.

Imported by ``qvp_site/urls.py``, which every request loads before the admin answers.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin
from django.db.models import F, Max, QuerySet, Sum, Window
from django.http import HttpRequest
from django.utils import timezone

from qvp_site.admin_access import AuditorsReadOnly
from qvp_site.logins import AdminLoginForm, Failures

_PAIR = [F("username"), F("ip_address")]


class LockoutAdmin(AuditorsReadOnly, AccessAttemptAdmin):
    list_display = [
        "attempt_time",
        "username",
        "ip_address",
        "user_agent",
        "path_info",
        "failures_since_start",
        "pair_failures",
        "locked_until",
    ]
    list_filter = ["attempt_time", "path_info"]
    actions: list[Any] = []
    date_hierarchy = None  # reads every date of the table

    def get_queryset(self, request: HttpRequest) -> QuerySet[AccessAttempt]:
        # A (user, address) pair has a row per user agent: its lockout is the pair's.
        return (
            super()
            .get_queryset(request)
            .annotate(
                pair_count=Window(Sum("failures_since_start"), partition_by=_PAIR),
                pair_last=Window(Max("attempt_time"), partition_by=_PAIR),
            )
        )

    @admin.display(description="failures of the user from the address")
    def pair_failures(self, obj: Any) -> int:
        return int(obj.pair_count)

    @admin.display(description="locked until")
    def locked_until(self, obj: Any) -> datetime | str:
        failures = Failures(count=int(obj.pair_count), last=obj.pair_last)
        if failures.locked(timezone.now()) and failures.retry_at is not None:
            return failures.retry_at
        return "-"


admin.site.register(AccessAttempt, LockoutAdmin)
# A locked (user, address) pair is told on the admin's login page when to try again.
admin.site.login_form = AdminLoginForm
