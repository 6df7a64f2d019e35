"""Who writes market data: the members of the group ``operators``.

Writing a market-data row (an instrument, a bar, a tick, an option quote, an ingest) takes the
model's add or change permission (``qvp_site.api.permissions.ModelWritePermission`` in the API,
Django's own checks in the admin). The group ``operators`` holds them:

* the data migration ``marketdata/0006_operators_group`` creates the group at a known point of
  the schema's history;
* ``grant_operators_permissions``, a ``post_migrate`` handler connected in ``qvp_site/apps.py``,
  grants after every ``migrate`` the permissions the migration could not (Django creates
  permissions only after the last migration, so a fresh database has none while migrating), and
  gives a test flush, which empties the permission tables, its group back.

The name and the list of models are the site's: qvp_site imports no app, the models are named
by ``app_label.model_name``. Auditors are refused every write whatever group they are in.
"""

from __future__ import annotations

from django.apps import AppConfig
from django.apps import apps as global_apps
from django.db import DEFAULT_DB_ALIAS

OPERATORS = "operators"
MARKETDATA = "marketdata"
# The market-data models the API and the admin write (listing: the security master's
# versions, stated through POST /api/v1/listings/).
MODELS: tuple[str, ...] = (
    "instrument",
    "minutebar",
    "dailybar",
    "tick",
    "optionquote",
    "ingest",
    "listing",
    "corporateaction",
)
ACTIONS: tuple[str, ...] = ("add", "change", "view")


def codenames() -> list[str]:
    """The permission codenames the operators group holds."""
    return [f"{action}_{model}" for model in MODELS for action in ACTIONS]


def ensure_operators(apps, using: str) -> None:
    """The operators group, holding the market-data permissions that exist already (``apps``
    is a migration state's registry or the global one)."""
    group_model = apps.get_model("auth", "Group")
    permission_model = apps.get_model("auth", "Permission")
    group, _ = group_model.objects.using(using).get_or_create(name=OPERATORS)
    permissions = permission_model.objects.using(using).filter(
        content_type__app_label=MARKETDATA, codename__in=codenames()
    )
    group.permissions.add(*permissions)


def grant_operators_permissions(
    app_config: AppConfig, using: str = DEFAULT_DB_ALIAS, apps=global_apps, **kwargs
) -> None:
    """post_migrate: once Django has made the market-data app's permissions (its handler is
    connected earlier, by django.contrib.auth), give them to the operators group."""
    if app_config.label != MARKETDATA:
        return
    try:
        apps.get_model("auth", "Permission")
    except LookupError:  # auth migrated to zero: nothing to grant
        return
    ensure_operators(apps, using)
