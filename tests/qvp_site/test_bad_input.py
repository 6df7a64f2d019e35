"""Bad input is a 4xx naming what is wrong, never a 500: each class of input that once made a
site answer 500 (issue 20), through every door that reads it.

- JSON bodies (and JSON query parameters) nested too deep for the parser;
- user keys splatted into keyword arguments (``matching(**{"self": 1})``);
- forged cursors of every cursor-paginated list;
- admin list filters (and the CSV export) given values of the wrong type;
- vectors that pgvector cannot hold (beyond float4), or that have no direction (zero, cosine);
- JSON stored with keys a template would take for a method (``explanation.items``).
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import numpy as np
import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from rest_framework.pagination import CursorPagination
from rest_framework.test import APIClient

from marketdata.models import Instrument
from qvp_site.admin_export import CsvExport
from qvp_site.db import partitions
from qvp_site.parsers import MAX_JSON_DEPTH
from signals.models import Agent, AlternativeData, FusedSignal, Signal
from tests.clients import client_of
from tests.fixtures.trading import T0, make_order
from tests.vectors.sets import make_set
from trading.models import BacktestRun
from vectors import search
from vectors.models import (
    FEATURE_DIMENSIONS,
    REGIME_DIMENSIONS,
    FeatureEmbedding,
    FeatureSet,
    VolatilityRegime,
)

# --- helpers ---------------------------------------------------------------------------------


def nested(depth: int) -> str:
    """A JSON object whose value is a list ``depth`` deep: {"a": [[[...]]]}."""
    return '{"a": ' + "[" * depth + "]" * depth + "}"


@pytest.fixture
def partitioned(db) -> None:
    """Partitions for the rows these tests write: around T0, and around now."""
    now = datetime.now(UTC)
    for table in ("signals_signal", "signals_fusedsignal", "signals_alternativedata"):
        partitions.prepare_load(table, T0 - timedelta(days=1), T0 + timedelta(days=1))
        partitions.prepare_load(table, now - timedelta(days=1), now + timedelta(days=1))


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_superuser("operator", password="pw-operator-1234")


@pytest.fixture
def api(operator) -> APIClient:
    return client_of(operator)


def assert_refused(response, status: int = 400) -> dict:
    assert response.status_code == status, (response.status_code, response.content[:300])
    return response.json()


# --- 1. JSON nested too deep -----------------------------------------------------------------

POSTED = [
    "/api/v1/signals/",
    "/api/v1/signals/fused/",
    "/api/v1/news/",
    "/api/v1/bars/",
    "/api/v1/backtests/",
    "/api/v1/vectors/features/search/",
]


@pytest.mark.parametrize("url", POSTED)
@pytest.mark.parametrize("depth", [MAX_JSON_DEPTH + 1, 1_000, 100_000])
def test_a_json_body_nested_too_deep_is_a_400_naming_the_depth(api, url, depth):
    body = assert_refused(api.generic("POST", url, nested(depth), content_type="application/json"))
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in body["detail"]


def test_a_body_at_the_depth_limit_still_parses(api):
    # Within the limit, the serializer answers (a 400 naming its own field), not the parser.
    response = api.generic(
        "POST", "/api/v1/signals/", nested(MAX_JSON_DEPTH - 1), content_type="application/json"
    )
    assert response.status_code == 400
    assert "nested deeper" not in response.content.decode()


def test_a_json_query_parameter_nested_too_deep_is_a_400_naming_it(api):
    body = assert_refused(api.get("/api/v1/alternative-data/", {"contains": nested(1_000)}))
    assert f"nested deeper than {MAX_JSON_DEPTH} levels" in str(body["contains"])


@pytest.mark.parametrize("url", ["/api/v1/signals/", "/api/v1/backtests/"])
@pytest.mark.parametrize("format", ["multipart", "urlencoded"])
def test_a_form_body_is_a_415_naming_the_media_type_and_writes_nothing(api, url, format):
    """Bodies are JSON, as the schema says: a form (whose fields a serializer would read as
    text, JSON within them decoded by the field) is refused before any field is read."""
    before = Signal.objects.count(), BacktestRun.objects.count()
    if format == "multipart":
        response = api.post(url, {"parameters": nested(3)}, format="multipart")
    else:
        response = api.post(
            url, "parameters=%5B%5D", content_type="application/x-www-form-urlencoded"
        )
    assert response.status_code == 415
    assert "Unsupported media type" in response.json()["detail"]
    assert (Signal.objects.count(), BacktestRun.objects.count()) == before


# --- 2. user keys as keyword arguments -------------------------------------------------------


@pytest.mark.parametrize("key", ["self", "values", "kwargs", "**", ""])
def test_alternative_data_matches_any_payload_key(api, instrument, partitioned, key):
    AlternativeData.objects.create(
        ts=T0, source="orbital", kind="cars", instrument=instrument, payload={key: 1}
    )
    AlternativeData.objects.create(
        ts=T0, source="orbital", kind="cars", instrument=instrument, payload={key: 2}
    )
    response = api.get("/api/v1/alternative-data/", {"contains": f'{{"{key}": 1}}'})
    assert response.status_code == 200, response.content
    assert [row["payload"] for row in response.json()["results"]] == [{key: 1}]


def test_the_matching_queryset_takes_a_mapping(instrument, partitioned):
    AlternativeData.objects.create(
        ts=T0, source="orbital", kind="cars", instrument=instrument, payload={"self": 1}
    )
    assert AlternativeData.objects.matching({"self": 1}).count() == 1
    # The queryset's own method takes any key as a keyword too (the manager's proxy cannot).
    assert AlternativeData.objects.all().matching(**{"self": 1, "values": 2}).count() == 0


# --- 3. forged cursors -----------------------------------------------------------------------


def _routes(patterns, prefix: str = "") -> Iterator[tuple[str, URLPattern]]:
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern))
        else:
            yield prefix + str(pattern.pattern), pattern


def cursor_lists() -> list[str]:
    """The API's routes answering GET with a cursor-paginated list (from the URL conf), as
    regexes without the format suffix variants."""
    found = []
    for route, pattern in _routes(get_resolver().url_patterns):
        view = pattern.callback
        cls = getattr(view, "cls", None)
        actions = getattr(view, "actions", None) or {}
        if cls is None or "format>" in route or actions.get("get") in (None, "retrieve"):
            continue
        paginator = view.initkwargs.get("pagination_class", getattr(cls, "pagination_class", None))
        if isinstance(paginator, type) and issubclass(paginator, CursorPagination):
            found.append(route)
    return found


CURSOR_LISTS = cursor_lists()


def forged(**tokens: str) -> str:
    return base64.b64encode(urlencode(tokens).encode()).decode()


FORGED_CURSORS = [
    "not base64 at all!",
    base64.b64encode(b"\xff\xfe garbage").decode(),
    forged(p="garbage"),
    forged(p="99999999-01-01 00:00:00+00:00"),
    forged(p="2024-13-45 25:61:00+00:00"),
    forged(p="1e400"),
    forged(p="\x00"),
    forged(p="2024-05-13 14:30:00+00:00", o="-5"),
    forged(p="2024-05-13 14:30:00+00:00", r="abc"),
    forged(p="2024-05-13 14:30:00"),  # no offset: not a position any page wrote
    forged(p="[1, 2]"),
    forged(p="9" * 5000),
]
TOLERATED_CURSORS = [  # well formed, however unlikely
    forged(p="0001-01-01 00:00:00+14:00"),
    forged(p="9999-12-31 23:59:59-14:00"),
    forged(p="2024-05-13 14:30:00+00:00", o="99999999999999999999999"),
    forged(p="2024-05-13 14:30:00+00:00", r="99999999999999999999"),
]


@pytest.fixture
def cursor_world(instrument, operator):
    agent = Agent.objects.create(name="momentum", kind="momentum")
    return {"symbol": instrument.symbol, "agent": agent}


def cursor_url(route: str, world: dict) -> str:
    path = "/" + route.replace("(?P<pk>[^/.]+)", str(world["agent"].pk))
    path = path.replace("^", "").replace("$", "")
    assert "(?P" not in path, path
    return path


# Lists that need a parameter before they page (a symbol, say).
# The revisions of a symbol are listed over a bounded range.
RANGE = {"symbol": "AAPL", "start": "2024-05-01T00:00:00Z", "end": "2024-06-01T00:00:00Z"}
REQUIRED = {
    "/api/v1/bars/": {"symbol": "AAPL"},
    "/api/v1/ticks/": {"symbol": "AAPL"},
    "/api/v1/options/quotes/": {"symbol": "AAPL"},
    "/api/v1/bars/revisions/": RANGE,
    "/api/v1/ticks/revisions/": RANGE,
}


def test_every_cursor_paginated_list_is_found():
    # The enumeration below is the URL conf's; these are lists it must include.
    paths = {cursor_url(r, {"agent": Agent(pk=1)}) for r in CURSOR_LISTS}
    assert {"/api/v1/bars/", "/api/v1/ticks/", "/api/v1/executions/", "/api/v1/signals/"} <= paths
    assert "/api/v1/agents/1/metrics/" in paths
    assert len(paths) >= 13


@pytest.mark.parametrize("route", CURSOR_LISTS)
def test_a_forged_cursor_is_refused_by_every_cursor_paginated_list(api, cursor_world, route):
    path = cursor_url(route, cursor_world)
    params = REQUIRED.get(path, {})
    assert api.get(path, params).status_code == 200, path
    for cursor in FORGED_CURSORS:
        response = api.get(path, {**params, "cursor": cursor})
        assert response.status_code in (400, 404), (path, cursor, response.status_code)
        assert "cursor" in str(response.json()).lower(), (path, cursor, response.json())
    # Times at the ends of the calendar are positions; DRF caps an offset past its cutoff and
    # reads any whole number as a direction: pages, all of them.
    for cursor in TOLERATED_CURSORS:
        assert api.get(path, {**params, "cursor": cursor}).status_code == 200, (path, cursor)


def test_a_cursor_the_list_wrote_still_pages(api, instrument, partitioned):
    agent = Agent.objects.create(name="momentum", kind="momentum")
    for minutes in range(3):
        Signal.objects.create(
            agent=agent,
            instrument=instrument,
            ts=T0 + timedelta(minutes=minutes),
            direction=1,
            strength=0.5,
            confidence=0.5,
            horizon=timedelta(days=1),
        )
    first = api.get("/api/v1/signals/", {"page_size": 2}).json()
    second = api.get(first["next"])
    assert second.status_code == 200
    assert len(second.json()["results"]) == 1


# --- 4. admin list filters with values of the wrong type -------------------------------------

# Wrong for integers, dates, decimals, UUIDs, booleans and choices alike (a NUL is the site
# middleware's 400).
WRONG_VALUES = [
    *("abc", "a\x00b", "1.5", "99999999999999999999999", "-1", "1e999999", "NaN", "true"),
    *("2024-13-45", "0001-01-01", "9999-12-31 23:59:59", "00000000-0000-0000-0000-000000000000"),
]


def filter_parameters(model_admin, request) -> list[str]:
    """The query parameters the changelist's filters read."""
    changelist = model_admin.get_changelist_instance(request)
    names: list[str] = []
    for spec in changelist.filter_specs:
        names.extend(spec.expected_parameters())
    return names


def test_the_order_list_and_its_export_refuse_a_wrong_account(desks, instrument, operator):
    make_order(desks["alpha"], instrument)
    staff = client_of(operator)
    for url in (
        reverse("admin:trading_order_changelist"),
        reverse("admin:trading_order_export_csv"),
    ):
        response = staff.get(url, {"account": "abc"})
        assert response.status_code == 302, (url, response.status_code)
        assert response["Location"].endswith("?e=1")


@pytest.mark.parametrize("value", WRONG_VALUES)
def test_every_admin_list_filter_refuses_a_wrong_value(desks, instrument, operator, value):
    """Each filter parameter of each registered changelist (and its export): the list, or
    the admin's ``?e=1`` redirect, never a server error."""
    make_order(desks["alpha"], instrument)
    staff = client_of(operator)
    factory = RequestFactory()
    for model, model_admin in admin.site._registry.items():
        opts = model._meta
        request = factory.get("/admin/")
        request.user = operator
        urls = [reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")]
        if isinstance(model_admin, CsvExport):
            urls.append(reverse(f"admin:{opts.app_label}_{opts.model_name}_export_csv"))
        for parameter in filter_parameters(model_admin, request):
            for url in urls:
                response = staff.get(url, {parameter: value})
                assert response.status_code in (200, 302, 400), (url, parameter, value)
                if response.status_code == 200 and url.endswith(".csv"):
                    b"".join(response.streaming_content)


# --- 5. vectors pgvector cannot hold, or with no direction -----------------------------------

SEARCH = "/api/v1/vectors/features/search/"


@pytest.fixture
def embedded(instrument) -> FeatureEmbedding:
    """A feature set with three embeddings, one of them a zero vector."""
    feature_set = make_set("bars-1m", FEATURE_DIMENSIONS, FeatureSet.Kind.FEATURES, stride=1)
    vectors = [np.ones(FEATURE_DIMENSIONS), np.arange(FEATURE_DIMENSIONS) + 1.0]
    vectors.append(np.zeros(FEATURE_DIMENSIONS))
    made = [
        FeatureEmbedding.objects.create(
            feature_set=feature_set,
            instrument=instrument,
            ts=T0 + timedelta(minutes=i),
            embedding=vector,
            raw=vector.tolist(),
        )
        for i, vector in enumerate(vectors)
    ]
    return made[-1]


@pytest.mark.parametrize(
    ("vector", "says"),
    [
        ([1e39] * FEATURE_DIMENSIONS, "beyond the range of a 4-byte float"),
        ([-3.5e38] + [0.0] * (FEATURE_DIMENSIONS - 1), "beyond the range of a 4-byte float"),
        ([3e38] * FEATURE_DIMENSIONS, "too long"),
    ],
)
def test_a_vector_pgvector_cannot_hold_is_a_400_naming_the_field(api, embedded, vector, says):
    for metric in search.METRIC_CHOICES:
        body = assert_refused(api.post(SEARCH, {"vector": vector, "metric": metric}, format="json"))
        assert says in str(body["vector"])


def test_an_infinity_sent_as_a_json_literal_is_refused(api, embedded):
    text = '{"vector": [Infinity' + ", 0" * (FEATURE_DIMENSIONS - 1) + "]}"
    assert_refused(api.generic("POST", SEARCH, text, content_type="application/json"))


def test_a_zero_vector_has_no_direction_for_cosine(api, embedded):
    body = assert_refused(api.post(SEARCH, {"vector": [0] * FEATURE_DIMENSIONS}, format="json"))
    assert "a zero vector has no direction" in str(body["vector"])
    by_id = assert_refused(api.post(SEARCH, {"id": embedded.id}, format="json"))
    assert "a zero vector has no direction" in str(by_id["id"])


def test_a_zero_vector_is_at_a_distance_by_l2_and_inner_product(api, embedded):
    for metric in ("l2", "inner_product"):
        response = api.post(
            SEARCH, {"vector": [0] * FEATURE_DIMENSIONS, "metric": metric}, format="json"
        )
        assert response.status_code == 200, response.content
        assert len(response.json()["neighbours"]) == 3


def test_a_stored_zero_vector_is_no_cosine_neighbour(api, embedded):
    response = api.post(SEARCH, {"vector": [1] * FEATURE_DIMENSIONS, "k": 10}, format="json")
    assert response.status_code == 200, response.content
    neighbours = response.json()["neighbours"]
    assert embedded.id not in [n["id"] for n in neighbours]
    assert all(math.isfinite(n["distance"]) for n in neighbours)
    assert len(neighbours) == 2


def regimes_of(instrument, signatures: list[np.ndarray]) -> None:
    feature_set = make_set(
        "regimes", REGIME_DIMENSIONS, FeatureSet.Kind.REGIME, timeframe="1d", stride=1
    )
    for days, signature in enumerate(signatures):
        VolatilityRegime.objects.create(
            instrument=instrument,
            feature_set=feature_set,
            period_start=T0 + timedelta(days=days),
            period_end=T0 + timedelta(days=days + 1),
            signature=signature,
            statistics={},
        )


def test_similar_regimes_leave_out_those_at_no_cosine_distance(api, instrument):
    # The latest regime has a direction; an older one is a zero vector (a flat market).
    ones = np.ones(REGIME_DIMENSIONS)
    regimes_of(instrument, [ones, np.zeros(REGIME_DIMENSIONS), ones * 2])
    response = api.get("/api/v1/vectors/regimes/similar/", {"symbol": instrument.symbol})
    assert response.status_code == 200, response.content
    assert [r["period_end"][:10] for r in response.json()["similar"]] == ["2024-05-14"]


def test_a_zero_latest_regime_is_similar_to_none(api, instrument):
    regimes_of(instrument, [np.ones(REGIME_DIMENSIONS), np.zeros(REGIME_DIMENSIONS)])
    response = api.get("/api/v1/vectors/regimes/similar/", {"symbol": instrument.symbol})
    assert response.status_code == 200, response.content
    assert response.json()["similar"] == []


def test_a_pattern_at_no_cosine_distance_weighs_in_no_recommendation(instrument):
    from trading.models import BacktestRun
    from vectors.models import STATE_DIMENSIONS, StrategyPattern

    feature_set = make_set("states", STATE_DIMENSIONS, FeatureSet.Kind.STATE, stride=1)
    run = BacktestRun.objects.create(
        strategy="trend", period_start=T0, period_end=T0 + timedelta(days=1)
    )
    for minutes, state in enumerate([np.ones(STATE_DIMENSIONS), np.zeros(STATE_DIMENSIONS)]):
        StrategyPattern.objects.create(
            strategy="trend",
            backtest=run,
            instrument=instrument,
            feature_set=feature_set,
            ts=T0 + timedelta(minutes=minutes),
            state=state,
            horizon_minutes=30,
            position=1,
            forward_return=0.01,
            sharpe=1.0,
            max_drawdown=0.1,
        )
    found = search.recommend(np.ones(STATE_DIMENSIONS), feature_set, T0, k=10)
    assert [n["ts"] for n in found.neighbours] == [T0]
    assert all(math.isfinite(s.weight) for s in found.ranked)
    nowhere = search.recommend(np.zeros(STATE_DIMENSIONS), feature_set, T0, k=10)
    assert (nowhere.neighbours, nowhere.ranked) == ([], [])


# --- 6. stored JSON whose keys a template would take for methods ------------------------------

METHOD_NAMES = ["items", "keys", "values", "get", "update", "pop", "copy", "reason"]


@pytest.fixture
def shown(instrument, partitioned):
    """A signal and a fused signal of SPY whose JSON has keys named like dict methods."""
    spy = Instrument.objects.create(symbol="SPY", asset_class="equity", exchange="ARCX")
    agent = Agent.objects.create(name="momentum", kind="momentum")
    explanation = dict.fromkeys(METHOD_NAMES, 1) | {
        "nested": dict.fromkeys(METHOD_NAMES, "x"),
        "text": "ab",
    }
    ts = datetime.now(UTC) - timedelta(minutes=5)
    Signal.objects.create(
        agent=agent,
        instrument=spy,
        ts=ts,
        direction=1,
        strength=0.5,
        confidence=0.5,
        horizon=timedelta(days=1),
        explanation=explanation,
    )
    Signal.objects.create(
        agent=agent,
        instrument=spy,
        ts=ts - timedelta(minutes=1),
        direction=1,
        strength=0.5,
        confidence=0.5,
        horizon=timedelta(days=1),
        explanation={"items": "ab", "keys": [1, 2, 3], "values": None},
    )
    FusedSignal.objects.create(
        instrument=spy,
        ts=ts,
        target_weight=0.5,
        confidence=0.5,
        method="equal",
        inputs=[dict.fromkeys(METHOD_NAMES, 1) | {"agent": "momentum"}, 1, "two", [3]],
        input_count=1,
    )
    return explanation


@pytest.mark.parametrize("path", ["/signals/", "/instruments/SPY/"])
def test_explanations_with_method_named_keys_render(shown, desks, path):
    """As a trader, and as an auditor (desks' audrey)."""
    for user in (desks["alice"], desks["audrey"]):
        response = client_of(user).get(path)
        assert response.status_code == 200, (user, path)
        html = response.content.decode()
        for name in ("items", "keys", "values", "update"):
            assert f"<dt>{name}</dt>" in html


def admin_json_forms(user) -> list[tuple[str, str]]:
    """(add url, field) of each admin add form with a JSON field that ``user`` may fill."""
    from django import forms

    found = []
    for model, model_admin in admin.site._registry.items():
        request = RequestFactory().get("/admin/")
        request.user = user
        if not model_admin.has_add_permission(request):
            continue
        form = model_admin.get_form(request)
        opts = model._meta
        url = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        found.extend(
            (url, name)
            for name, field in form.base_fields.items()
            if isinstance(field, forms.JSONField)
        )
    return found


def test_admin_forms_refuse_json_nested_too_deep_on_the_form(operator):
    forms_with_json = admin_json_forms(operator)
    assert (reverse("admin:signals_alternativedata_add"), "payload") in forms_with_json
    staff = client_of(operator)
    for url, field in forms_with_json:
        for depth in (MAX_JSON_DEPTH + 1, 1_000, 100_000):
            response = staff.post(url, {field: nested(depth)})
            assert response.status_code == 200, (url, field, depth)
            errors = response.context["adminform"].form.errors
            assert f"nested deeper than {MAX_JSON_DEPTH} levels" in str(errors[field])
