"""One time range across the API (qvp_site/api/time_ranges.py): ``start``/``end`` on every list,
``since``/``until`` still read as their deprecated names (and documented so), and a bound given
under both names refused, naming both."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from drf_spectacular.generators import SchemaGenerator
from rest_framework.test import APIClient

from marketdata.models import Instrument, MinuteBar
from qvp_site.db import partitions
from tests.fixtures.trading import make_order
from trading.models import Account, Order

T0 = datetime(2024, 5, 13, 14, 0, tzinfo=UTC)
MINUTE = timedelta(minutes=1)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


@pytest.fixture
def api(django_user_model) -> APIClient:
    client = APIClient()
    client.force_authenticate(django_user_model.objects.create_superuser("root"))
    return client


@pytest.fixture
def aapl(db) -> Instrument:
    instrument = Instrument.objects.create(symbol="AAPL", asset_class="equity")
    partitions.prepare_load("marketdata_minutebar", T0, T0 + 3 * MINUTE)
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=instrument, ts=T0 + n * MINUTE, open=1, high=5, low=1, close=n + 1)
        for n in range(3)
    )
    return instrument


@pytest.fixture
def orders(aapl) -> list[Order]:
    """Three orders, oldest first (their terms, creation time included, never change)."""
    account = Account.objects.create(name="alpha")
    made = [make_order(account, aapl, client_order_id=f"o-{n}") for n in range(3)]
    assert made[0].created_at < made[1].created_at < made[2].created_at
    return made


def closes(api: APIClient, query: str) -> list[float]:
    response = api.get(f"/api/v1/bars/?symbol=AAPL&{query}")
    assert response.status_code == 200, response.content
    return [bar["close"] for bar in response.json()["results"]]


def order_ids(api: APIClient, query: str) -> list[int]:
    response = api.get(f"/api/v1/orders/?{query}")
    assert response.status_code == 200, response.content
    return [order["id"] for order in response.json()["results"]]


def test_start_and_end_bound_every_list(api, orders):
    """Lists that took since/until take start/end, with the same meaning."""
    second, third = iso(orders[1].created_at), iso(orders[2].created_at)
    assert order_ids(api, f"start={second}") == [orders[2].id, orders[1].id]
    assert order_ids(api, f"start={second}&end={third}") == [orders[1].id]


def test_since_and_until_are_still_read_everywhere(api, orders):
    """The deprecated names mean start and end, on the lists that had them and on those that
    took start/end already (bars)."""
    second, third = iso(orders[1].created_at), iso(orders[2].created_at)
    assert order_ids(api, f"since={second}") == [orders[2].id, orders[1].id]
    assert order_ids(api, f"since={second}&until={third}") == [orders[1].id]
    assert order_ids(api, f"start={second}&until={third}") == [orders[1].id]
    assert closes(api, f"since={iso(T0 + MINUTE)}&until={iso(T0 + 2 * MINUTE)}") == [2]
    assert closes(api, f"start={iso(T0 + MINUTE)}&until={iso(T0 + 2 * MINUTE)}") == [2]


@pytest.mark.parametrize(
    ("url", "names"),
    [
        (f"/api/v1/orders/?start={iso(T0)}&since={iso(T0)}", {"start", "since"}),
        (f"/api/v1/bars/?symbol=AAPL&end={iso(T0)}&until={iso(T0)}", {"end", "until"}),
        (f"/api/v1/signals/?since={iso(T0)}&start={iso(T0)}", {"start", "since"}),
    ],
)
def test_a_bound_given_under_both_names_is_refused_naming_both(api, aapl, url, names):
    response = api.get(url)
    assert response.status_code == 400
    body = response.json()
    assert set(body) == names
    for (problem,) in body.values():
        assert all(name in problem for name in names)
        assert "give one" in problem


def test_refusals_name_the_parameters_as_given(api, aapl):
    later, earlier = iso(T0 + MINUTE), iso(T0)
    old = api.get(f"/api/v1/orders/?since={later}&until={earlier}").json()
    assert old == {"since": ["must be before until"]}
    new = api.get(f"/api/v1/orders/?start={later}&end={earlier}").json()
    assert new == {"start": ["must be before end"]}
    assert "since" in api.get("/api/v1/bars/?symbol=AAPL&since=soon").json()


def test_a_required_range_may_be_given_by_the_old_names(api, aapl):
    query = f"symbol=AAPL&width=1h&since={iso(T0)}&until={iso(T0 + timedelta(hours=1))}"
    response = api.get(f"/api/v1/bars/buckets/?{query}")
    assert response.status_code == 200, response.content
    assert response.json()["buckets"][0]["close"] == 3


@pytest.mark.parametrize("path", ["/api/v1/orders/", "/api/v1/bars/", "/api/v1/risk/alerts/"])
def test_the_schema_documents_start_and_end_and_the_old_names_as_deprecated(path):
    schema = SchemaGenerator().get_schema(request=None, public=True)
    parameters = {p["name"]: p for p in schema["paths"][path]["get"]["parameters"]}
    for name in ("start", "end"):
        assert not parameters[name].get("deprecated", False)
    for name in ("since", "until"):
        assert parameters[name]["deprecated"] is True
