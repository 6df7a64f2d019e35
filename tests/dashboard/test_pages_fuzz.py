"""Every dashboard page and every admin page, walked through Django's test client with hostile
query parameters over hostile stored values, as a trader and as an auditor: no answer is a 5xx.

What is walked is enumerated, never listed by hand: the dashboard's routes from the URL conf
(its ``dashboard`` namespace), the admin's from the admin site's registry (each ModelAdmin's own
URLs: changelist, add and change forms, history, delete confirmation, CSV export) and the
site's index, app and autocomplete pages. The parameters a page accepts are read off the page
itself: a first request records every name the view asks ``request.GET`` for, and a changelist
adds the parameters of its filters (``expected_parameters``). Each is then sent with values of
the wrong type, huge and negative numbers, 10,000 characters, right-to-left marks, unicode,
SQL-ish quotes, ``[]``, ``{}``, JSON whose keys are named like dict methods and dates out of
range; with NUL, whatever the page, the answer is a 400 (``UnstorableTextMiddleware``).

Stored values: before the walk, the rows the pages show first get, in each text and JSON
column the site's database role may write, JSON keys named like dict methods (``items``,
``keys``, ``values``, ``get``, ``update``, ``pop``, ``self``), 10,000 characters and
right-to-left marks, through the ORM (a column that refuses such a value keeps its own). The
admin's forms are a door for text too: the trader posts each add and change form back with
NUL, 10,000 characters, RTL marks, dict-method keys or JSON nested 1,000 deep in every text
field; and the dashboard's POST-only routes (an alert's actions) with the same in their field.

Bounded for ``make test`` (about three minutes on two cores): hostile values are handed out
round the list, so that each parameter gets a share (on a list, as the trader, a value of the
wrong type as well) and the walk as a whole sends every value; the auditor walks every page with
fewer of them. QVP_FUZZ_PAGES_DEEP=1 sends every value to every parameter of every page.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlencode

import pytest
from django.apps import apps
from django.conf import settings
from django.contrib import admin
from django.contrib.admin.views import main as changelist
from django.contrib.auth.models import Permission
from django.db import DatabaseError, connection, models, transaction
from django.forms import MultiWidget
from django.http import HttpRequest, HttpResponse, QueryDict
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse

from marketdata.models import Instrument
from qvp_site.admin_access import project_app_labels
from qvp_site.db import roles
from risk.models import RiskAlert

# JSON keys named like the methods of a dict: a template's ``{{ value.items }}`` calls the
# method, unless the value holds such a key (Django's lookups try the key first).
DICT_METHOD_KEYS = {
    name: f"{name}-value" for name in ("items", "keys", "values", "get", "update", "pop", "self")
}
LONG = "x" * 10_000
RTL = "\u202eevil\u202c"
HOSTILE_VALUES: list[str] = [
    "abc",
    "-1",
    "0",
    "1.5",
    "99999999999999999999999999999",
    "-99999999999999999999999999999",
    "1e309",
    "NaN",
    LONG,
    RTL,
    "日本語 💹 Ωμέγα",
    "' OR '1'='1",
    '"); DROP TABLE trading_order; --',
    "%_\\",
    "[]",
    "{}",
    json.dumps(DICT_METHOD_KEYS),
    '{"self": 1}',
    "0001-01-01",
    "9999-12-31T23:59:59",
    "10000-01-01",
    "2024-02-30",
    "-infinity",
    "",
]
WRONG_TYPE = HOSTILE_VALUES[0]
DEEP_JSON = "[" * 1_000 + "]" * 1_000  # past Python's decoder's recursion
NUL_VALUES = ["\x00", "a\x00b"]
# The pages' own paging and ordering, as a user would tamper with them.
PAGING = [
    {"page": "-1"},
    {changelist.PAGE_VAR: "-1"},
    {changelist.PAGE_VAR: "99999999999999"},
    {changelist.ORDER_VAR: "999"},
    {changelist.ORDER_VAR: "-999.abc.-1"},
    {changelist.ALL_VAR: ""},
    {"unknown_parameter": RTL, "__proto__": "{}"},
]
# Django's changelist parameters, which its views read from a dict of the query, not by name.
CHANGELIST_PARAMETERS = {
    changelist.ALL_VAR,
    changelist.ORDER_VAR,
    changelist.PAGE_VAR,
    changelist.SEARCH_VAR,
    changelist.IS_POPUP_VAR,
    changelist.TO_FIELD_VAR,
    changelist.IS_FACETS_VAR,
    "_changelist_filters",
}
HOSTILE_PATH_PARTS = ["abc", "-1", "99999999999999999999999999999", LONG, RTL, "' OR 1=1 --"]
# QVP_FUZZ_PAGES_DEEP=1: every value for every parameter of every page, not a share of them.
DEEP = os.environ.get("QVP_FUZZ_PAGES_DEEP") == "1"


@dataclass
class Walk:
    """What a walk found: every 5xx (and every NUL not refused) with its URL."""

    thorough: bool = True  # every parameter of every page; else those of lists only
    failures: list[str] = field(default_factory=list)
    requests: int = 0
    sent: int = 0  # hostile values handed out so far: the next share starts after them

    def values(self, count: int) -> list[str]:
        """The next ``count`` hostile values, round the list: over a walk, every parameter
        kind meets every value without each parameter getting all of them."""
        if DEEP:
            return HOSTILE_VALUES
        start, self.sent = self.sent, self.sent + count
        return [HOSTILE_VALUES[(start + k) % len(HOSTILE_VALUES)] for k in range(count)]

    def check(self, method: str, url: str, response: HttpResponse, nul: bool = False) -> None:
        self.requests += 1
        status = response.status_code
        if status >= 500:
            info = getattr(response, "exc_info", None)
            why = f" ({info[1]!r:.200})" if info else ""
            self.failures.append(f"{status} {method} {url[:300]}{why}")
        elif nul and status != 400:
            self.failures.append(f"{status} (not 400) for a NUL: {method} {url[:300]}")


def send(client: Client, walk: Walk, url: str, params: dict[str, str], nul: bool = False):
    """GET ``url`` with ``params``, the streamed body read too (a CSV export fails while it
    streams, after the view has answered), in a savepoint of its own: a statement that failed
    leaves the test's transaction usable for the next request."""
    query = urlencode(params)
    full = f"{url}?{query}" if query else url
    try:
        with transaction.atomic():
            response = client.get(url, QUERY_STRING=query)
            if response.streaming:
                b"".join(response.streaming_content)
    except DatabaseError as error:  # raised by the stream, after the response began
        walk.failures.append(f"stream failed ({type(error).__name__}) GET {full[:300]}")
        return None
    walk.check("GET", full, response, nul)
    return response


# -- what the pages accept ------------------------------------------------------------------


def accepted_parameters(client: Client, url: str, monkeypatch) -> tuple[set[str], Any]:
    """The query parameters ``url`` reads (every name asked of a QueryDict while it answers,
    and a changelist's filters), and the probe's response."""
    names: set[str] = set()

    def recording(method):
        def asked(querydict, key, *args, **kwargs):
            if isinstance(key, str):
                names.add(key)
            return method(querydict, key, *args, **kwargs)

        return asked

    with monkeypatch.context() as patch:
        for name in ("get", "__getitem__", "getlist", "__contains__", "pop"):
            patch.setattr(QueryDict, name, recording(getattr(QueryDict, name)))
        response = client.get(url)
        if response.streaming:
            b"".join(response.streaming_content)
    cl = response.context.get("cl") if response.context else None
    if cl is not None:
        names |= CHANGELIST_PARAMETERS
        for spec in cl.filter_specs:
            names.update(spec.expected_parameters())
    return {n for n in names if n and not n.startswith("csrf")}, response


def fuzz_page(
    client: Client, walk: Walk, url: str, monkeypatch, export_of: set[str] | None = None
) -> set[str]:
    """``url`` bare, then each parameter it accepts with hostile values, every parameter at
    once, NUL (a 400) and, on a list, paging and ordering tampered with. A list (a changelist,
    a dashboard page) gets more of them than a form or a record's history. A CSV export gets
    its changelist's parameters (``export_of``), all at once only: each export that filters
    nothing streams the whole table. Returns the names of the parameters."""
    names, probe = accepted_parameters(client, url, monkeypatch)
    walk.check("GET", url, probe)
    if probe.status_code == 405 and "POST" in probe.get("Allow", ""):
        post_hostile(client, walk, url)
    if probe.status_code >= 400:
        return names  # not this user's page, or none: refused before any parameter is read
    in_admin = url.startswith(f"/{settings.ADMIN_URL}")
    is_list = not in_admin or bool(probe.context and probe.context.get("cl"))
    ordered = sorted(names | (export_of or set())) or ["q"]
    for name in ordered if export_of is None else []:
        # On a list, the trader sends each parameter a value of the wrong type for most (text
        # where an id, a number or a date is read) besides its share of the others.
        core = [WRONG_TYPE] if is_list and walk.thorough and not DEEP else []
        for value in core + walk.values(1 if is_list or walk.thorough else 0):
            send(client, walk, url, {name: value})
    at_once = [WRONG_TYPE] if export_of is not None else []
    for value in at_once + walk.values(2 if is_list else 1):
        send(client, walk, url, dict.fromkeys(ordered, value))
    send(client, walk, url, dict.fromkeys(ordered, NUL_VALUES[walk.requests % 2]), nul=True)
    if is_list or DEEP:
        for params in PAGING if walk.thorough or DEEP else PAGING[::2]:
            send(client, walk, url, params)
    return names


# -- the pages -------------------------------------------------------------------------------


def _patterns(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _patterns(entry, prefix + str(entry.pattern))
        else:
            yield prefix + str(entry.pattern), entry


def dashboard_routes() -> list[URLPattern]:
    """The dashboard's routes, from the URL conf."""
    resolver = get_resolver()
    namespace = resolver.namespace_dict["dashboard"][1]
    return [pattern for _, pattern in _patterns(namespace)]


def route_arguments(pattern: URLPattern, fillers: dict[str, list[str]]) -> list[dict[str, str]]:
    """Each set of arguments to reverse ``pattern`` with: real ones, then hostile ones."""
    converters = pattern.pattern.converters
    if not converters:
        return [{}]
    sets: list[dict[str, str]] = []
    for kind in ("real", "hostile"):
        for value in fillers[kind]:
            args = {}
            for name, converter in converters.items():
                if type(converter).__name__ == "IntConverter":
                    args[name] = "0" if kind == "hostile" else fillers["int"][0]
                else:
                    args[name] = value
            if args not in sets:  # an id's route takes one hostile id, not one per value
                sets.append(args)
    return sets


def reverse_quoted(name: str, kwargs: dict[str, str]) -> str:
    return reverse(name, kwargs={k: quote(v, safe="") for k, v in kwargs.items()})


def admin_urls(
    model_admin: admin.ModelAdmin, object_id: str | None, ids: list[str]
) -> tuple[list[str], list[str]]:
    """Every GET page of ``model_admin``, from its own URL patterns: those of one record for
    ``object_id`` (when there is one), and (the second list) for the hostile ``ids``."""
    opts = model_admin.model._meta
    urls = [reverse(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_changelist")]
    hostile: list[str] = []
    for pattern in model_admin.get_urls():
        if not pattern.name:
            continue  # the redirect of a bare object id to its change form
        name = f"{model_admin.admin_site.name}:{pattern.name}"
        converters = pattern.pattern.converters
        if not converters:
            if reverse(name) not in urls:
                urls.append(reverse(name))
            continue
        if object_id is not None:
            urls.append(_reverse_at(name, converters, object_id))
        hostile.extend(_reverse_at(name, converters, i) for i in ids)
    return urls, hostile


def _reverse_at(name: str, converters: dict[str, Any], value: str) -> str:
    """``name``'s URL with each of its arguments (a record's id) set to ``value``."""
    return reverse(name, kwargs=dict.fromkeys(converters, quote(value, safe="")))


def admin_site_urls() -> list[str]:
    site = admin.site
    labels = sorted({model._meta.app_label for model in site._registry})
    return [
        reverse(f"{site.name}:index"),
        *(reverse(f"{site.name}:app_list", kwargs={"app_label": label}) for label in labels),
        reverse(f"{site.name}:autocomplete"),
    ]


# -- who walks -------------------------------------------------------------------------------


def trader_client(demo) -> Client:
    """The demo's trader, staff in the admin with what a desk may be given there: viewing,
    adding and changing every record of the project's apps (never deleting). Her account
    scoping (querysets and row-level security) still applies."""
    trader = demo.trader
    trader.is_staff = True
    trader.save()
    trader.user_permissions.add(
        *Permission.objects.filter(
            content_type__app_label__in=project_app_labels(),
            codename__regex=r"^(view|add|change)_",
        )
    )
    return logged_in(trader)


def logged_in(user) -> Client:
    client = Client(raise_request_exception=False)
    client.force_login(user)
    return client


def walker(demo, who: str) -> Client:
    return trader_client(demo) if who == "trader" else logged_in(demo.auditor)


# -- hostile stored values -------------------------------------------------------------------


def hostile_text(max_length: int | None) -> list[str]:
    values = [json.dumps(DICT_METHOD_KEYS), LONG, f"{RTL} {LONG}"]
    return [v[:max_length] if max_length else v for v in values]


def hostile_json() -> list[Any]:
    return [
        DICT_METHOD_KEYS,
        {**DICT_METHOD_KEYS, "nested": DICT_METHOD_KEYS, "long": LONG, "rtl": RTL},
        [DICT_METHOD_KEYS, LONG, RTL],
    ]


def _shown_rows(model: type[models.Model]) -> list[Any]:
    """The rows the pages show first: by the admin's ordering, by the model's, the newest."""
    manager = model._base_manager
    model_admin = admin.site._registry.get(model)
    orderings = [list(model._meta.ordering or []), ["-pk"]]
    if model_admin is not None and model_admin.ordering:
        orderings.insert(0, list(model_admin.ordering))
    pks: list[Any] = []
    for ordering in orderings:
        try:
            with transaction.atomic():
                pks.extend(manager.order_by(*ordering).values_list("pk", flat=True)[:2])
        except (DatabaseError, ValueError, TypeError):
            continue
    return list(dict.fromkeys(pks))


def _store(model: type[models.Model], pk: Any, name: str, values: list[Any]) -> bool:
    """The first of ``values`` the database takes into ``name`` of row ``pk``."""
    for value in values:
        try:
            with transaction.atomic():
                model._base_manager.filter(pk=pk).update(**{name: value})
            return True
        except DatabaseError:
            continue  # refused (a check, a trigger, the role): the next value, or none
    return False


def site_writes(model: type[models.Model], column: str) -> bool:
    """Whether the site's database role may write ``column`` (the site's doors can store a
    value there; what only migrations write, such as a table's chunk interval, they cannot)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT has_column_privilege(%s, %s, %s, 'INSERT')"
            " OR has_column_privilege(%s, %s, %s, 'UPDATE')",
            [roles.APP_ROLE, model._meta.db_table, column] * 2,
        )
        return bool(cursor.fetchone()[0])


def store_hostile_values() -> dict[str, int]:
    """Hostile text and JSON in the shown rows of every project model, in each column the
    site's role writes; how many fields took them, by model."""
    stored: dict[str, int] = {}
    for label in project_app_labels():
        for model in apps.get_app_config(label).get_models():
            fields = [
                f
                for f in model._meta.concrete_fields
                if not f.primary_key
                and not f.choices
                and isinstance(f, models.CharField | models.TextField | models.JSONField)
                and site_writes(model, f.column)
            ]
            for pk in _shown_rows(model) if fields else []:
                for f in fields:
                    values = (
                        hostile_json()
                        if isinstance(f, models.JSONField)
                        else hostile_text(getattr(f, "max_length", None))
                    )
                    if _store(model, pk, f.name, values):
                        stored[model._meta.label] = stored.get(model._meta.label, 0) + 1
    return stored


@pytest.fixture
def hostile_rows(demo, db, app_role_password) -> dict[str, int]:
    stored = store_hostile_values()
    # The walk must meet them: the signals' explanations and the news, at least.
    assert {"signals.Signal", "signals.NewsArticle", "trading.Account"} <= set(stored), stored
    return stored


# -- the walks -------------------------------------------------------------------------------

ROLES = ["trader", "auditor"]


@pytest.mark.parametrize("who", ROLES)
def test_dashboard_pages_answer_no_5xx(demo, hostile_rows, who, monkeypatch):
    client = walker(demo, who)
    walk = Walk()
    # An alert of the account the trader trades: her actions on it are allowed.
    alert = RiskAlert.objects.filter(account=demo.macro).values_list("pk", flat=True).first()
    symbol = Instrument.objects.filter(symbol="SPY").values_list("symbol", flat=True).first()
    fillers = {
        "real": [symbol or "SPY"],
        "hostile": HOSTILE_PATH_PARTS,
        "int": [str(alert or 1)],
    }
    for pattern in dashboard_routes():
        for kwargs in route_arguments(pattern, fillers):
            url = reverse_quoted(f"dashboard:{pattern.name}", kwargs)
            fuzz_page(client, walk, url, monkeypatch)
    # A path holding NUL is refused before any lookup by it.
    send(client, walk, "/instruments/SP%00Y/", {}, nul=True)
    assert walk.requests > 100
    assert not walk.failures, "\n".join(walk.failures)


def post_hostile(client: Client, walk: Walk, url: str) -> None:
    """A POST-only route (an alert's actions): its text field, the resolution, with hostile
    text. Refused or stored, never a 5xx."""
    for value in ["\x00", "a\x00b", LONG, RTL, json.dumps(DICT_METHOD_KEYS)]:
        with transaction.atomic():
            response = client.post(url, {"resolution": value})
            transaction.set_rollback(True)
        walk.check("POST", f"{url} resolution={value[:20]!r}", response)


def registry_by_app() -> dict[str, list[type[models.Model]]]:
    by_app: dict[str, list[type[models.Model]]] = {}
    for model in admin.site._registry:
        by_app.setdefault(model._meta.app_label, []).append(model)
    return by_app


@pytest.mark.parametrize("app_label", sorted(registry_by_app()))
@pytest.mark.parametrize("who", ROLES)
def test_admin_pages_answer_no_5xx(demo, hostile_rows, who, app_label, monkeypatch):
    client = walker(demo, who)
    # Both walk every page; the auditor sends the hostile values one parameter at a time on
    # lists only (the parameters are read by the same code whoever asks).
    walk = Walk(thorough=who == "trader")
    if app_label == sorted(registry_by_app())[0]:
        for url in admin_site_urls():
            fuzz_page(client, walk, url, monkeypatch)
    for model in registry_by_app()[app_label]:
        model_admin = admin.site._registry[model]
        shown = model_admin.get_queryset(_request_of(getattr(demo, who)))
        pk = shown.values_list("pk", flat=True).first()
        object_id = None if pk is None else str(pk)
        ids = HOSTILE_PATH_PARTS if DEEP else _ids_share(walk)
        urls, hostile = admin_urls(model_admin, object_id, ids)
        listed = fuzz_page(client, walk, urls[0], monkeypatch)  # the changelist
        for url in urls[1:]:
            exported = url.endswith("/export.csv")
            fuzz_page(client, walk, url, monkeypatch, listed if exported else None)
        for url in hostile:  # an id that is no record's: refused or redirected, never a 5xx
            send(client, walk, url, {})
        if who == "trader":
            post_forms(client, walk, model_admin, object_id)
    # Each model's pages walked: a list, its forms, its history, its export, two ids that are
    # no record's (a user refused a model is refused each of them).
    assert walk.requests >= 8 * len(registry_by_app()[app_label]), walk.requests
    assert not walk.failures, "\n".join(walk.failures)


def _ids_share(walk: Walk) -> list[str]:
    """Two of the hostile ids, a different two for each model."""
    start = walk.requests
    return [HOSTILE_PATH_PARTS[(start + k) % len(HOSTILE_PATH_PARTS)] for k in range(2)]


def _request_of(user) -> HttpRequest:
    """A request of ``user``, for a ModelAdmin's queryset."""
    request = RequestFactory().get("/")
    request.user = user
    return request


# -- the admin's forms as a door -------------------------------------------------------------


def form_data(form) -> dict[str, Any]:
    """What a browser would post back for ``form`` as the page shows it."""
    data: dict[str, Any] = {}
    for bound in form:
        widget = bound.field.widget
        value = bound.value()
        if isinstance(widget, MultiWidget):
            parts = widget.decompress(value) if not isinstance(value, list) else value
            for index, part in enumerate(parts):
                data[f"{bound.html_name}_{index}"] = "" if part is None else str(part)
        elif isinstance(value, list | tuple):
            data[bound.html_name] = [str(v) for v in value]
        elif isinstance(value, bool):
            if value:
                data[bound.html_name] = "on"
        elif value is None:
            data[bound.html_name] = ""
        else:
            formatted = widget.format_value(value)
            data[bound.html_name] = "" if formatted is None else str(formatted)
    return data


def text_fields(form) -> list[str]:
    from django import forms

    return [
        bound.html_name
        for bound in form
        if isinstance(bound.field, forms.CharField | forms.JSONField)
        and not isinstance(bound.field.widget, forms.PasswordInput)
    ]


def post_forms(client: Client, walk: Walk, model_admin, object_id: str | None) -> None:
    """The add form and the change form of a record, posted back with NUL, 10,000 characters
    or RTL marks in every text field at once: refused or stored, never a 5xx."""
    opts = model_admin.model._meta
    names = [f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_add"]
    kwargs: list[dict[str, str]] = [{}]
    if object_id is not None:
        names.append(f"{model_admin.admin_site.name}:{opts.app_label}_{opts.model_name}_change")
        kwargs.append({"object_id": quote(object_id, safe="")})
    for name, kw in zip(names, kwargs, strict=True):
        url = reverse(name, kwargs=kw)
        page = client.get(url)
        admin_form = page.context.get("adminform") if page.context else None
        form = getattr(admin_form, "form", None)
        if page.status_code != 200 or form is None or not text_fields(form):
            continue
        base = form_data(form)
        for value in ["a\x00b", LONG, RTL, json.dumps(DICT_METHOD_KEYS), DEEP_JSON]:
            data = {**base, **dict.fromkeys(text_fields(form), value)}
            with transaction.atomic():
                response = client.post(url, data)
                transaction.set_rollback(True)  # the next post starts from the demo's record
            walk.check("POST", f"{url} with {value[:20]!r} in {text_fields(form)}", response)
