"""Who may do what in the admin: auditors read everything and change nothing.

Auditors are the members of the group ``auditors`` (``qvp_site.auditors.AUDITORS``, the name
row-level security reads too). They log into the admin as staff users and hold the view
permission on every model of the project's apps:

* the data migration ``trading/0004_auditors_group`` creates the group at a known point of
  the schema's history;
* ``grant_auditors_view``, a ``post_migrate`` handler connected in ``trading/apps.py``, grants
  after every ``migrate`` the view permission of each project app's models. An app added later
  is covered without a migration of its own, a fresh database gets the permissions that the
  migration could not grant (Django creates permissions only after the last migration), and a
  test flush, which empties the permission tables, gets the group back.

Permissions alone would let a group grant an auditor more; ``AuditorsReadOnly`` refuses add,
change and delete to auditors whatever their permissions say, and answers 403 to any changelist
POST that would change something (a write action, list editing).
"""

from __future__ import annotations

from pathlib import Path

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.db import DEFAULT_DB_ALIAS

from qvp_site.auditors import AUDITORS, is_auditor


def is_auditor_request(request) -> bool:
    """Whether the request's user is an auditor (``is_auditor`` asks once per request)."""
    return is_auditor(request.user)


class BlankToFieldIsThePk:
    """ModelAdmin mixin: a change or delete page asked with a blank ``?_to_field=`` finds its
    record by primary key. Django checks the parameter only when it is not blank, then looks
    the record up by a field named "" (FieldDoesNotExist: a 500); it is in every registered
    ModelAdmin through ``AuditorsReadOnly`` or ``ViewOnly`` (tests/qvp_site/test_admin_to_field.py).
    """

    def get_object(self, request, object_id, from_field=None):
        return super().get_object(request, object_id, from_field or None)  # type: ignore[misc]


class AuditorsReadOnly(BlankToFieldIsThePk):
    """ModelAdmin mixin (put it first): auditors may view, never add, change or delete."""

    def has_add_permission(self, request, *args) -> bool:
        return not is_auditor_request(request) and super().has_add_permission(request, *args)

    def has_change_permission(self, request, obj=None) -> bool:
        return not is_auditor_request(request) and super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        return not is_auditor_request(request) and super().has_delete_permission(request, obj)

    def changelist_view(self, request, extra_context=None):
        # Django answers an action it does not offer with a message and a 200; an auditor's
        # attempt to change something gets an explicit refusal instead.
        if request.method == "POST" and is_auditor_request(request):
            action = request.POST.get("action")
            if "_save" in request.POST or action not in self.get_actions(request):
                raise PermissionDenied
        return super().changelist_view(request, extra_context)


def is_project_app(app_config: AppConfig) -> bool:
    """The project's own apps: those under BASE_DIR, not installed packages."""
    base = Path(settings.BASE_DIR).resolve()
    path = Path(app_config.path).resolve()
    if not path.is_relative_to(base):
        return False
    return "site-packages" not in path.relative_to(base).parts


def project_app_labels() -> list[str]:
    return [config.label for config in global_apps.get_app_configs() if is_project_app(config)]


def ensure_auditors(apps, using: str, app_labels: list[str]) -> None:
    """The auditors group, holding the view permission of every model of ``app_labels`` that
    has its permissions already (``apps`` is a migration state's registry or the global one)."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=AUDITORS)
    views = permission_model.objects.using(using).filter(
        content_type__app_label__in=app_labels, codename__startswith="view_"
    )
    group.permissions.add(*views)


# Installed packages whose records auditors read too: the login lockouts (qvp_site/logins.py).
VIEWED_PACKAGES = ("axes",)


def grant_auditors_view(
    app_config: AppConfig, using: str = DEFAULT_DB_ALIAS, apps=global_apps, **kwargs
) -> None:
    """post_migrate: after Django has made ``app_config``'s permissions (its handler is
    connected earlier, by django.contrib.auth), give auditors the view ones."""
    if not (is_project_app(app_config) or app_config.label in VIEWED_PACKAGES):
        return
    try:
        apps.get_model("auth", "Permission")
    except LookupError:  # auth migrated to zero: nothing to grant
        return
    ensure_auditors(apps, using, [app_config.label])
