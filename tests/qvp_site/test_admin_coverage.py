"""An audit of the admin as a whole: every model of the project's apps is registered with the
columns, filters and search an operator or an auditor would use, read-only for auditors,
exportable as CSV, and lists its large tables without counting them.

The rules, model by model:

* registered, with columns beyond ``__str__``;
* filters: every field with choices and every boolean field is a list filter; a list read by
  time (a time-series table, or a list ordered by a date) has a date filter on that time;
  a model pointing to an account can be narrowed to one;
* search: a model pointing to an instrument is searchable by its symbol, a model with a
  unique name (symbol, name, exec id) by that name;
* auditors (holding every permission, even) may view and never add, change or delete, in
  every registered admin (Django's users and groups included);
* every changelist offers the CSV export (``CsvExport``);
* every table that grows with the business (all but the reference tables of ``MAY_COUNT``):
  no full count, a paginator that does not count (``EstimatedCountPaginator``), no facet
  counts, no date hierarchy (it reads every date), no filter whose choices come from
  SELECT DISTINCT over the table, and searches on related names by exact value.
"""

from __future__ import annotations

import pytest
from django.apps import apps
from django.contrib import admin
from django.contrib.admin import FieldListFilter
from django.contrib.admin.filters import AllValuesFieldListFilter
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import connection, models
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketdata.models import Instrument
from qvp_site.admin_access import project_app_labels
from qvp_site.admin_bases import EstimatedCountPaginator
from qvp_site.admin_export import CsvExport
from qvp_site.models import TimeSeriesTable
from trading.models import Account

# Reference and summary tables, as large as people make them (a few hundred rows at most):
# counted in full.
MAY_COUNT = {
    "qvp_site.timeseriestable",
    "qvp_site.timeseriesaggregate",
    "qvp_site.apitoken",
    "qvp_site.archive",
    "marketdata.instrument",
    "trading.account",
    "signals.agent",
    "vectors.featureset",
    "risk.risklimit",
    "signals.signalperformance",  # one row per agent and window, upserted
}
# Unique text fields that nobody looks a record up by.
NOT_NAMES = {"qvp_site.apitoken.digest"}


def project_models() -> list[type[models.Model]]:
    return [m for label in project_app_labels() for m in apps.get_app_config(label).get_models()]


MODELS = project_models()
LARGE = [m for m in MODELS if m._meta.label_lower not in MAY_COUNT]


def model_admin(model) -> admin.ModelAdmin:
    assert model in admin.site._registry, f"{model._meta.label} is not in the admin"
    return admin.site._registry[model]


def filtered_fields(model_admin: admin.ModelAdmin) -> dict[str, type | None]:
    """Field path -> the filter class the admin uses for it (None: a SimpleListFilter whose
    parameter names the field)."""
    found: dict[str, type | None] = {}
    for entry in model_admin.list_filter:
        if isinstance(entry, str):
            found[entry] = None if "__" in entry else _default_filter(model_admin.model, entry)
        elif isinstance(entry, tuple):
            found[entry[0]] = entry[1]
        else:
            found[entry.parameter_name] = None
    return found


def _default_filter(model, name: str) -> type:
    field = model._meta.get_field(name)
    return next(cls for test, cls in FieldListFilter._field_list_filters if test(field))


def time_axis(model, model_admin) -> str | None:
    """The time a list is read by: a time-series table's time column, or the date that the
    list's ordering leads with."""
    catalog = dict(TimeSeriesTable.objects.values_list("table_name", "time_column"))
    if model._meta.db_table in catalog:
        return catalog[model._meta.db_table]
    ordering = model_admin.ordering or model._meta.ordering or []
    if not ordering:
        return None
    name = ordering[0].lstrip("-")
    field = model._meta.get_field("pk" if name == "pk" else name)
    return name if isinstance(field, models.DateField | models.DateTimeField) else None


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label_lower)
def test_every_model_has_columns_filters_and_search(db, model):
    found = model_admin(model)
    label = model._meta.label_lower
    assert list(found.list_display) != ["__str__"], f"{label}: no columns"
    filters = filtered_fields(found)
    for field in model._meta.concrete_fields:
        if field.choices or isinstance(field, models.BooleanField):
            assert field.name in filters, f"{label}: no filter on {field.name}"
        if field.is_relation and field.related_model is Account:
            assert field.name in filters, f"{label}: cannot be narrowed to an account"
        if field.is_relation and field.related_model is Instrument:
            assert any("symbol" in s for s in found.search_fields), f"{label}: no symbol search"
        is_name = isinstance(field, models.CharField) and field.unique and not field.primary_key
        if is_name and f"{label}.{field.name}" not in NOT_NAMES:
            searched = {s.split("__")[0].lstrip("=^@") for s in found.search_fields}
            assert field.name in searched, f"{label}: not searchable by its {field.name}"
    axis = time_axis(model, found)
    if axis:
        assert axis in filters, f"{label}: no date filter on {axis}, the time it is read by"


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label_lower)
def test_every_changelist_exports_csv(model):
    assert isinstance(model_admin(model), CsvExport), model._meta.label


@pytest.mark.parametrize("model", LARGE, ids=lambda m: m._meta.label_lower)
def test_large_tables_are_listed_without_counting_them(model):
    found = model_admin(model)
    label = model._meta.label_lower
    assert found.show_full_result_count is False, label
    assert issubclass(found.paginator, EstimatedCountPaginator), label
    assert found.show_facets is admin.ShowFacets.NEVER, label
    assert not found.date_hierarchy, label
    for path, cls in filtered_fields(found).items():
        assert cls is None or not issubclass(cls, AllValuesFieldListFilter), (
            f"{label}: the filter on {path} reads SELECT DISTINCT over the table"
        )
    for lookup in found.search_fields:
        if "__" in lookup:
            assert lookup.endswith("__exact"), f"{label}: {lookup} cannot use an index"


@pytest.fixture
def powerful_auditor(db):
    """An auditor who holds, on top, every permission of the project's models."""
    auditor = get_user_model().objects.create_user("auditor-plus", is_staff=True)
    auditor.groups.add(Group.objects.get(name="auditors"))
    auditor.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=project_app_labels())
    )
    return get_user_model().objects.get(pk=auditor.pk)  # no cached permissions


@pytest.mark.parametrize("model", MODELS, ids=lambda m: m._meta.label_lower)
def test_auditors_view_and_change_nothing(powerful_auditor, model):
    found = model_admin(model)
    request = RequestFactory().get("/")
    request.user = powerful_auditor
    assert found.has_view_permission(request)
    assert not found.has_add_permission(request)
    assert not found.has_change_permission(request)
    assert not found.has_delete_permission(request)
    assert not any(
        getattr(found, f"has_{name}_permission")(request)
        for action in found.get_actions(request).values()
        for name in getattr(action[0], "allowed_permissions", ())
        if name != "view"
    )


# The site's log, which records each refusal (a 403 is a warning).
LOGS = {"signals.systemlog"}
# Every model the admin shows, Django's users and groups included.
REGISTERED = sorted(admin.site._registry, key=lambda m: m._meta.label_lower)


@pytest.fixture
def almighty_auditor(db):
    """An auditor whose other group grants every permission there is (auth's included)."""
    auditor = get_user_model().objects.create_user("auditor-all", is_staff=True)
    everything = Group.objects.create(name="everything")
    everything.permissions.set(Permission.objects.all())
    auditor.groups.add(Group.objects.get(name="auditors"), everything)
    return get_user_model().objects.get(pk=auditor.pk)  # no cached permissions


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label_lower)
def test_auditors_add_change_delete_nothing_in_any_registered_admin(almighty_auditor, model):
    found = admin.site._registry[model]
    request = RequestFactory().get("/")
    request.user = almighty_auditor
    assert found.has_view_permission(request), model._meta.label
    for name in ("add", "change", "delete"):
        assert not getattr(found, f"has_{name}_permission")(request), (model._meta.label, name)


@pytest.mark.parametrize("model", REGISTERED, ids=lambda m: m._meta.label_lower)
def test_auditors_add_forms_are_refused_through_the_admin(client, almighty_auditor, model):
    client.force_login(almighty_auditor)
    opts = model._meta
    add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
    count = model._default_manager.count()
    assert client.get(add).status_code == 403, opts.label
    assert client.post(add, {}).status_code == 403, opts.label
    if opts.label_lower not in LOGS:  # the log gets the refusals' warnings
        assert model._default_manager.count() == count


def test_auditors_change_no_user_nor_group_through_the_admin(client, almighty_auditor):
    """Today's hole: an auditor whose group grants add_group made groups (and could put
    themselves in one, or make themselves a superuser)."""
    client.force_login(almighty_auditor)
    victim = get_user_model().objects.create_user("victim", password="pw-victim-1234")
    group = Group.objects.get(name="everything")
    users, groups = "/admin/auth/user/", "/admin/auth/group/"
    attempts = [
        (f"{groups}add/", {"name": "mine", "permissions": []}),
        (f"{groups}{group.pk}/change/", {"name": "renamed"}),
        (f"{groups}{group.pk}/delete/", {"post": "yes"}),
        (groups, {"action": "delete_selected", "_selected_action": [group.pk], "post": "yes"}),
        (
            f"{users}add/",
            {"username": "made", "password1": "x-Pw-12345!", "password2": "x-Pw-12345!"},
        ),
        (
            f"{users}{almighty_auditor.pk}/change/",
            {"username": "auditor-all", "is_staff": "on", "is_superuser": "on"},
        ),
        (f"{users}{victim.pk}/password/", {"password1": "n-Pw-12345!", "password2": "n-Pw-12345!"}),
        (f"{users}{victim.pk}/delete/", {"post": "yes"}),
    ]
    before = (
        list(Group.objects.order_by("pk").values_list("pk", "name")),
        list(get_user_model().objects.order_by("pk").values_list("pk", "password", "is_superuser")),
    )
    for url, body in attempts:
        assert client.post(url, body).status_code == 403, url
    after = (
        list(Group.objects.order_by("pk").values_list("pk", "name")),
        list(get_user_model().objects.order_by("pk").values_list("pk", "password", "is_superuser")),
    )
    assert after == before
    assert client.get(f"{users}{victim.pk}/change/").status_code == 200  # they still read


@pytest.mark.parametrize("model", LARGE, ids=lambda m: m._meta.label_lower)
def test_large_changelists_run_no_count_of_the_table(admin_client, monkeypatch, model):
    # Past the threshold (0 here, so that any table is past it) only the planner's estimate.
    monkeypatch.setattr(EstimatedCountPaginator, "exact_below", 0)
    opts = model._meta
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist"))
    assert response.status_code == 200
    table = f'"{opts.db_table}"'
    counts = [
        q["sql"]
        for q in queries.captured_queries
        if "COUNT(" in q["sql"].upper() and f"FROM {table}" in q["sql"]
    ]
    assert not counts, counts
    assert b"Export CSV" in response.content
