"""Who may call what, beyond being logged in (the site's default, ``IsAuthenticated``).

Auditors read everything and change nothing, whatever their groups' permissions say; writes
to a model may further need Django's model permission. Rules about a record's account are the
app's that owns accounts (``trading.api.scoping``).
"""

from __future__ import annotations

from rest_framework import permissions
from rest_framework.request import Request
from rest_framework.views import APIView

from qvp_site.auditors import is_auditor


class ReadOnlyForAuditors(permissions.BasePermission):
    """Auditors read every account and change nothing. (Named apart from the admin's mixin,
    ``qvp_site.admin_access.AuditorsReadOnly``.)"""

    message = "auditors read and change nothing"

    def has_permission(self, request: Request, view: APIView) -> bool:
        return request.method in permissions.SAFE_METHODS or not is_auditor(request.user)


class WritesNeedModelPermission(permissions.DjangoModelPermissions):
    """Reads for every logged-in user; writes need the model's add/change/delete permission."""

    perms_map = {**permissions.DjangoModelPermissions.perms_map, "GET": [], "HEAD": []}
