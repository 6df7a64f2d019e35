"""Who may call what, beyond being logged in (the site's default, ``IsAuthenticated``).

Auditors read everything and change nothing, whatever their groups' permissions say. Writes of
data that belongs to no account (market data, news, signals, agents...) need Django's
permission on the model written (``WritesNeedModelPermission``); rules about a record's account
are the app's that owns accounts (``trading.api.scoping``). A refusal answers 403 with the
project's ``{"detail", "rule"}`` body.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from django.db.models import Model
from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from qvp_site.auditors import is_auditor

AUDITORS_RULE = "auditors_read_only"
MODEL_PERMISSION_RULE = "model_permission"
AUDITORS_REFUSAL = {"detail": "auditors read and change nothing", "rule": AUDITORS_RULE}

# What a write by each method needs of the model written, as Django's admin asks it.
ACTIONS = {"POST": "add", "PUT": "change", "PATCH": "change", "DELETE": "delete"}


def refusal(detail: str, rule: str) -> dict[str, str]:
    """A permission's ``message``: DRF answers a dict as the body of its 403."""
    return {"detail": detail, "rule": rule}


def model_permissions(model: type[Model], *actions: str) -> set[str]:
    """``app_label.action_model`` for each action ("add", "change"...) on ``model``."""
    meta = model._meta
    return {f"{meta.app_label}.{action}_{meta.model_name}" for action in actions}


class ReadOnlyForAuditors(permissions.BasePermission):
    """Auditors read every account and change nothing. (Named apart from the admin's mixin,
    ``qvp_site.admin_access.AuditorsReadOnly``.)"""

    message: Any = AUDITORS_REFUSAL

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in permissions.SAFE_METHODS or not is_auditor(request.user)


class WritesNeedModelPermission(permissions.BasePermission):
    """Reads for every logged-in user; a write needs Django's permission on the model it
    writes, and is never an auditor's (whatever permissions their groups hold).

    The permissions are the view's ``write_permissions(request)`` where it has one (a view
    whose write lands in another model than its list's: bars by their timeframe, an agent's
    metrics), else those of the view's queryset model for the method: add for POST, change for
    PUT and PATCH, delete for DELETE."""

    message: Any = AUDITORS_REFUSAL

    def has_permission(self, request: Request, view: APIView) -> bool:
        if request.method in permissions.SAFE_METHODS or not handles(view, request):
            return True  # a read, or a method the view answers 405 to
        if is_auditor(request.user):
            self.message = AUDITORS_REFUSAL
            return False
        needed = written_permissions(request, view)
        if needed is None:  # fails closed: a write whose model the view does not say
            self.message = refusal("this endpoint names no model it writes", MODEL_PERMISSION_RULE)
            return False
        if request.user.has_perms(needed):
            return True
        names = ", ".join(sorted(needed))
        self.message = refusal(f"writing this needs the permission {names}", MODEL_PERMISSION_RULE)
        return False


def handles(view: APIView, request: Request) -> bool:
    """Whether ``view`` has a handler for the request's method (a viewset binds one per
    method its route maps to an action); without one DRF answers 405 and nothing is written."""
    method = (request.method or "").lower()
    return method in view.http_method_names and hasattr(view, method)


def written_permissions(request: Request, view: APIView) -> Collection[str] | None:
    """The permissions a write by ``request`` to ``view`` needs (see the class above); None
    where the view names no model."""
    declared = getattr(view, "write_permissions", None)
    if declared is not None:
        found: Collection[str] = declared(request)
        return found
    queryset = getattr(view, "queryset", None)
    if queryset is None:
        return None
    return model_permissions(queryset.model, ACTIONS.get(request.method or "", "change"))
