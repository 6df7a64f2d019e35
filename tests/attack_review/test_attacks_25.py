"""Attack review of issue 25 (an OpenAPI schema that is true: a generated client runs a desk's
workflow): each test states what the schema promises a client, from the side of a client that
trusts it (a generated client, schemathesis). A hole found is marked ``xfail(strict=True)``
until it is fixed; the other tests are guarantees that held where the suite did not try them.

What schemathesis lets pass is checked here by hand: fields the schema does not name (no
schema forbids them), an undocumented status (``validate_response`` passes it), a header.
"""

from __future__ import annotations

import importlib
import math
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import schemathesis
from django.contrib.auth.models import Group
from django.db import IntegrityError, transaction
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from marketdata.models import Instrument
from qvp_site import time_limits
from qvp_site.api.bulk.formats import FORMATS
from qvp_site.db.partitions import prepare_load
from qvp_site.tokens import create_token
from risk.models import VolatilityEstimate
from signals.models import Agent, Signal
from tests.api_schema.conftest import (  # noqa: F401  (fixtures)
    PACKAGE,
    generated,
    openapi_yaml,
    qvp_api,
)
from tests.clients import client_of
from tests.fixtures.trading import make_order
from tests.qvp_site.test_bulk_formats import RANGE, bars  # noqa: F401  (fixtures)
from tests.qvp_site.test_time_limits import table_locked
from trading.models import Account

RAW = SchemaGenerator().get_schema(request=None, public=True)
SCHEMA = schemathesis.openapi.from_dict(RAW)
COMPONENTS = RAW["components"]["schemas"]
T0 = datetime(2024, 3, 4, 14, 30, tzinfo=UTC)
WRITES = ("post", "put", "patch")


# --- Helpers ---------------------------------------------------------------------------------


def as_httpx(method: str, url: str, response: Any) -> httpx.Response:
    """A Django test response as the httpx answer a generated client would receive."""
    streamed = getattr(response, "streaming", False)
    body = b"".join(response.streaming_content) if streamed else response.content
    answer = httpx.Response(
        response.status_code,
        headers=dict(response.items()),
        content=body,
        request=httpx.Request(method, f"http://testserver{url}"),
    )
    answer.elapsed = timedelta(0)  # what a sent request's answer has; schemathesis reads it
    return answer


def assert_documented(method: str, url: str, response: Any) -> None:
    """The answer's status is one its operation documents, and its body matches that
    status's schema (schemathesis passes an undocumented status unchecked)."""
    operation = SCHEMA.find_operation_by_path(method, url)
    assert operation is not None, f"{method} {url}: no operation of the schema"
    assert operation.responses.find_by_status_code(response.status_code), (
        f"{method} {url} answered {response.status_code}, which the schema does not document:"
        f" {response.content[:300]!r}"
    )
    operation.validate_response(as_httpx(method, url, response))


def collection_writes() -> list[tuple[str, str]]:
    """(METHOD, path) of every operation with a body on a path without an id."""
    return sorted(
        (method.upper(), path)
        for path, item in RAW["paths"].items()
        for method, operation in item.items()
        if method in WRITES and "requestBody" in operation and "{" not in path
    )


@pytest.fixture
def root(django_user_model):
    """A superuser on a desk with an account: one who may trade, so that no permission
    refuses a write before its body is read."""
    user = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    desk = Group.objects.create(name="desk-root")
    Account.objects.create(name="root-book", base_currency="USD").groups.add(desk)
    user.groups.add(desk)
    return user


@pytest.fixture
def a_signal(db) -> Signal:
    aapl = Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")
    agent = Agent.objects.create(name="momo", kind="momentum")
    prepare_load(Signal._meta.db_table, T0, T0 + timedelta(days=1))
    return Signal.objects.create(
        agent=agent,
        instrument=aapl,
        ts=T0,
        direction=1,
        strength=0.5,
        confidence=0.7,
        horizon=timedelta(days=1),
    )


# --- 1. Fields the answer carries and the schema does not name --------------------------------


@pytest.mark.django_db
def test_a_signals_answer_names_no_field_the_schema_leaves_out(a_signal, root):
    url = f"/api/v1/signals/{a_signal.pk}/"
    response = client_of(root).get(url)
    assert_documented("GET", url, response)  # holds: extra fields are allowed
    body = response.json()
    assert body["agent"] == "momo"
    assert body["symbol"] == "AAPL"
    documented = set(COMPONENTS["Signal"]["properties"])
    assert set(body) <= documented, f"undocumented: {sorted(set(body) - documented)}"


# --- 2. Statuses the server answers and the schema does not document --------------------------


@pytest.fixture
def program(django_user_model, db, monkeypatch) -> APIClient:
    """A token's client, served as a request is (not as a command), with a short limit."""
    monkeypatch.setattr(time_limits, "_process_context", time_limits.COMMAND)
    _, key = create_token(django_user_model.objects.create_user("robot"), name="robot")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


@pytest.mark.django_db
def test_a_request_past_its_time_limit_answers_a_documented_503(program, settings):
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 0.2
    url = "/api/v1/instruments/"
    with table_locked(Instrument._meta.db_table):
        response = program.get(url)
    assert response.status_code == 503, response.content
    assert response.json()["rule"] == "statement_timeout"
    assert response["Retry-After"]
    assert_documented("GET", url, response)


@pytest.mark.django_db
def test_a_429_answer_and_its_retry_after_header_are_documented(root, settings):
    rates = {**settings.REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"], "user": "1/minute"}
    settings.REST_FRAMEWORK = {**settings.REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": rates}
    client, url = client_of(root), "/api/v1/instruments/"
    assert client.get(url).status_code == 200
    response = client.get(url)
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert_documented("GET", url, response)  # holds: the status and its body
    answer = RAW["paths"][url]["get"]["responses"]["429"]
    assert "Retry-After" in answer.get("headers", {})


# --- 3. Request bodies the server requires ---------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("url", ["/api/v1/executions/", "/api/v1/corporate-actions/"])
def test_a_body_the_server_requires_is_documented_as_required(root, url):
    response = client_of(root).post(url)
    assert response.status_code == 400, response.content
    assert_documented("POST", url, response)  # the refusal itself is documented
    assert RAW["paths"][url]["post"]["requestBody"].get("required") is True


# --- 4. JSON only ----------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), collection_writes())
@pytest.mark.parametrize("form", ["multipart", "urlencoded"])
def test_every_write_refuses_a_form_body_with_the_documented_415(root, method, path, form):
    """Every documented body is JSON only: a form is refused whole, before any field or
    permission reads it, with the 415 the operation documents (test_bad_input tries two)."""
    assert list(RAW["paths"][path][method.lower()]["requestBody"]["content"]) == [
        "application/json"
    ]
    client = client_of(root)
    send = getattr(client, method.lower())
    if form == "multipart":
        response = send(path, {"name": "x", "symbol": "AAPL"}, format="multipart")
    else:
        response = send(
            path, "name=x&symbol=AAPL", content_type="application/x-www-form-urlencoded"
        )
    assert response.status_code == 415, (path, response.content[:300])
    assert_documented(method, path, response)


@pytest.mark.django_db
def test_the_browsable_api_offers_no_form_body(root):
    """The browsable API (a session's page) posts what the parsers read: its raw form offers
    JSON alone, and no HTML form of fields (multipart or urlencoded) is rendered."""
    response = client_of(root).get("/api/v1/orders/", HTTP_ACCEPT="text/html")
    assert response.status_code == 200
    page = response.content.decode()
    assert "application/json" in page
    for media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
        assert media_type not in page


# --- 5. The suffix routes --------------------------------------------------------------------


SUFFIXED = sorted(path for path in RAW["paths"] if path.rsplit(".", 1)[-1] in FORMATS)


@pytest.mark.django_db(transaction=True)
def test_a_suffix_route_answers_head_and_a_json_accept_as_documented(bars, root):  # noqa: F811
    """HEAD on bars.arrow is the format's headers without a body (no row read); Accept:
    application/json there is the 406 the operation documents, in JSON."""
    assert len(SUFFIXED) == 48  # 16 bulk lists, three formats each
    client = client_of(root)
    for name, fmt in FORMATS.items():
        url = f"/api/v1/bars.{name}"
        head = client.head(url, RANGE)
        assert head.status_code == 200
        assert head["Content-Type"].split(";")[0] == fmt.media_type
        assert b"".join(head.streaming_content) == b""
        refused = client.get(url, RANGE, HTTP_ACCEPT="application/json")
        assert refused.status_code == 406
        assert refused["Content-Type"] == "application/json"
        assert_documented("GET", url, refused)


# --- 6. The generated client and ?format= ----------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_each_format_the_generated_list_offers_is_one_it_can_read(
    qvp_api,  # noqa: F811
    live_server,
    bars,  # noqa: F811
    django_user_model,
):
    _, key = create_token(django_user_model.objects.create_user("quant"), name="quant")
    client = qvp_api.AuthenticatedClient(base_url=live_server.url, token=key, prefix="Token")
    bars_list = importlib.import_module(f"{PACKAGE}.api.bars.bars_list")
    formats = importlib.import_module(f"{PACKAGE}.models.bars_list_format").BarsListFormat
    start, end = (datetime.fromisoformat(RANGE[b]) for b in ("start", "end"))
    with client:
        for fmt in formats:
            answer = bars_list.sync_detailed(
                client=client, symbol="AAPL", start=start, end=end, format_=fmt
            )
            assert answer.status_code == 200
            assert answer.parsed is not None, fmt


# --- 7. Refusals at the edges of the site ----------------------------------------------------


@pytest.mark.django_db
def test_a_body_over_the_limit_is_the_documented_413(root, settings):
    """RequestBodyLimitMiddleware's refusal, before DRF: JSON of the documented Error shape."""
    settings.QVP_MAX_REQUEST_BODY = 1000
    url = "/api/v1/signals/"
    response = client_of(root).post(url, [{"agent": "x" * 2000}])
    assert response.status_code == 413
    assert_documented("POST", url, response)


@pytest.mark.django_db
def test_a_bulk_format_asked_of_a_record_is_a_documented_406(root, instrument):
    order = make_order(Account.objects.get(name="root-book"), instrument)
    url = f"/api/v1/orders/{order.pk}/"
    response = client_of(root).get(url, HTTP_ACCEPT="text/csv")
    assert response.status_code == 406, response.content
    assert response["Content-Type"] == "application/json"
    assert_documented("GET", url, response)


@pytest.mark.django_db
def test_a_risk_list_never_holds_a_value_json_cannot_carry(root, instrument):
    prepare_load(VolatilityEstimate._meta.db_table, T0, T0)
    try:
        with transaction.atomic():
            VolatilityEstimate.objects.create(
                instrument=instrument, ts=T0, estimator="parkinson", window=20, value=math.nan
            )
    except IntegrityError:
        return  # refused by the database: the list can only hold what JSON carries
    url = "/api/v1/risk/volatility/"
    response = client_of(root).get(url)
    assert response.status_code == 200
    assert_documented("GET", url, response)


@pytest.mark.django_db
@pytest.mark.parametrize(("method", "path"), collection_writes())
@pytest.mark.parametrize("body", ["text", 7, [[]], [7], {"bars": "x", "symbols": 7}])
def test_a_body_of_the_wrong_shape_is_a_documented_400(root, method, path, body):
    """Any JSON the parser reads, of a type the operation does not take (a string, a number,
    a list of lists), is refused naming where, in the documented shape (an object of fields,
    or a list of them): a generated client parses it as FieldErrors."""
    response = getattr(client_of(root), method.lower())(path, body, format="json")
    assert response.status_code == 400, (path, response.status_code, response.content[:300])
    assert_documented(method, path, response)


# --- 8. Fields every answer carries -----------------------------------------------------------


@pytest.mark.django_db
def test_every_field_an_answer_always_carries_is_required(root, instrument):
    account = Account.objects.get(name="root-book")
    client = client_of(root)
    body = {
        "account": account.pk,
        "instrument": instrument.symbol,
        "client_order_id": "c-1",
        "side": "buy",
        "quantity": "10",
    }
    placed = client.post("/api/v1/orders/", body)
    assert placed.status_code == 201, placed.content
    assert_documented("POST", "/api/v1/orders/", placed)
    page = client.get("/api/v1/orders/")
    assert_documented("GET", "/api/v1/orders/", page)
    for component, answer in (("Order", placed.json()), ("PaginatedOrderList", page.json())):
        optional = set(answer) - set(COMPONENTS[component].get("required", ()))
        assert not optional, f"{component}: always sent, documented optional: {sorted(optional)}"
