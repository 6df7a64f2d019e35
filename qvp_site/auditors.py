"""Who the auditors are: the members of the group ``auditors``, who read every account and
change nothing.

The name is the site's, not an app's: row-level security reads it in the database
(``trading/sql/security/``), the admin (``qvp_site.admin_access``) and the API
(``qvp_site.api.permissions``) read it here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

if TYPE_CHECKING:  # imported by models modules (trading.querysets): no auth models at load
    from django.contrib.auth.base_user import AbstractBaseUser
    from django.contrib.auth.models import AnonymousUser, PermissionsMixin

AUDITORS = "auditors"


def is_auditor(user: AbstractBaseUser | AnonymousUser) -> bool:
    """Whether ``user`` is in the auditors group: asked once per user object, i.e. once per
    request (permissions, querysets and serializers all ask)."""
    if not user.is_authenticated:
        return False
    cached: bool | None = getattr(user, "_qvp_is_auditor", None)
    if cached is None:
        member = cast("PermissionsMixin", user)  # the site's users have groups
        cached = member.groups.filter(name=AUDITORS).exists()
        # Kept on the user object, which declares no such attribute (hence setattr).
        setattr(user, "_qvp_is_auditor", cached)  # noqa: B010
    return cached
