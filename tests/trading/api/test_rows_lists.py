"""The trading lists written from plain rows (qvp_site.api.rows.RowsList): byte for byte what
DRF's serializers write, for each user's scope (a trader sees their desk's accounts, an
auditor all of them) and every filter and page, in a bounded number of queries."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.utils import timezone

from marketdata.models import Instrument
from qvp_site.api import rows as api_rows
from signals.models import Agent
from tests.clients import client_of
from tests.fixtures.trading import fill, make_order
from trading import books
from trading.models import Execution

D = Decimal


@pytest.fixture
def book(desks, instrument):
    """Orders, fills and a bust in both desks' accounts: nulls (prices, agent, supersedes),
    Decimals of every scale, times of distinct microseconds."""
    agent = Agent.objects.create(name="rows-agent", kind="momentum")
    other = Instrument.objects.create(symbol="ROWS2", asset_class="equity")
    for account in (desks["alpha"], desks["beta"]):
        market = make_order(account, instrument, quantity="100")
        limit = make_order(
            account,
            other,
            side="sell",
            quantity="7.12345678",
            order_type="limit",
            limit_price=D("101.10000001"),
            agent=agent,
            decision_price=D("100.5"),
        )
        fill(market, 40, "10.25", fee="0.01")
        busted = fill(market, "0.5", "10.123456789")
        fill(limit, "-7.12345678", "101.2")
        books.bust(busted, None, "wrong price")
    return desks


def _drf(monkeypatch, client, url):
    """The answer DRF's own list makes (RowsList steps aside when the serializer is not
    plain)."""
    with monkeypatch.context() as patched:
        patched.setattr(api_rows, "plain", lambda *args: False)
        return client.get(url)


URLS = [
    "/api/v1/positions/",
    "/api/v1/positions/?page_size=1",
    "/api/v1/positions/?page_size=1&page=2",
    "/api/v1/positions/?symbol=ROWS2",
    "/api/v1/orders/",
    "/api/v1/orders/?page_size=1&page=2",
    "/api/v1/orders/?status=filled",
    "/api/v1/orders/?symbol=ROWS2",
    "/api/v1/orders/?since=2020-01-01T00:00:00Z&until=2100-01-01T00:00:00Z",
    "/api/v1/executions/",
    "/api/v1/executions/?page_size=1",
    "/api/v1/executions/?kind=bust",
    "/api/v1/executions/?symbol=ROWS2",
    "/api/v1/executions/?since=2024-05-13T14:30:00Z&until=2024-05-14T00:00:00Z",
]


@pytest.mark.parametrize("user", ["alice", "bob", "audrey"])
@pytest.mark.parametrize("url", URLS)
def test_the_lists_are_byte_for_byte_drfs(book, monkeypatch, user, url):
    client = client_of(book[user])
    answer = client.get(url)
    assert answer.status_code == 200, answer.content
    assert answer.content == _drf(monkeypatch, client, url).content
    assert answer.json()["results"], "a list with rows compares something"


@pytest.mark.parametrize("user", ["alice", "audrey"])
def test_every_page_of_a_list_and_the_account_filter(book, monkeypatch, user):
    client = client_of(book[user])
    alpha = book["alpha"].pk
    for base in ("/api/v1/orders/", "/api/v1/positions/", "/api/v1/executions/"):
        url = f"{base}?page_size=1&account={alpha}"
        while url:
            answer = client.get(url)
            assert answer.content == _drf(monkeypatch, client, url).content
            url = answer.json()["next"]


def test_a_trader_sees_only_their_accounts_and_an_auditor_all(book):
    accounts = {"alice": {book["alpha"].pk}, "audrey": {book["alpha"].pk, book["beta"].pk}}
    for user, expected in accounts.items():
        client = client_of(book[user])
        for base in ("/api/v1/orders/", "/api/v1/positions/", "/api/v1/executions/"):
            seen = {row["account"] for row in client.get(base).json()["results"]}
            assert seen == expected, (user, base)
    beta = client_of(book["alice"]).get(f"/api/v1/orders/?account={book['beta'].pk}")
    assert beta.status_code == 400
    assert "account" in beta.json()


@pytest.mark.parametrize("base", ["/api/v1/orders/", "/api/v1/positions/", "/api/v1/executions/"])
def test_the_scope_in_one_statement_keeps_who_sees_what(book, base):
    """The auditor question asked inside the list's statement: a user of no desk sees
    nothing, an auditor of a desk too sees every account, a superuser every account."""
    users = get_user_model().objects
    nobody = users.create_user("nobody", password="pw-nobody-1234")
    both = users.create_user("both", password="pw-both-1234")
    both.groups.add(*book["alice"].groups.all(), Group.objects.get(name="auditors"))
    root = users.create_superuser("root", password="pw-root-1234")
    every = {book["alpha"].pk, book["beta"].pk}
    for user, expected in ((nobody, set()), (both, every), (root, every)):
        seen = {row["account"] for row in client_of(user).get(base).json()["results"]}
        assert seen == expected, user.username


def test_nulls_decimals_and_times_as_drf_writes_them(book):
    rows = client_of(book["alice"]).get("/api/v1/executions/?kind=bust").json()["results"]
    (bust,) = rows
    original = Execution.objects.get(pk=bust["supersedes"])
    assert bust["quantity"] == "-0.50000000"
    assert bust["supersedes"] == original.pk
    assert bust["executed_at"].endswith("Z")
    orders = client_of(book["alice"]).get("/api/v1/orders/").json()["results"]
    nulls = {o["order_type"]: (o["limit_price"], o["agent"]) for o in orders}
    assert nulls["market"] == (None, None)
    assert nulls["limit"][0] == "101.10000001"
    assert isinstance(nulls["limit"][1], int)


@pytest.mark.parametrize("url", ["/api/v1/positions/", "/api/v1/orders/", "/api/v1/executions/"])
def test_no_query_per_row(book, instrument, django_assert_max_num_queries, url):
    for _ in range(20):
        fill(make_order(book["alpha"], instrument), 1, "3")
    client = client_of(book["alice"])
    # The request's own (session, user, savepoint, who acts, release) and the page with its
    # count, which asks whether the user is an auditor itself (trading.api.scoping): none per
    # row (the symbol comes in the page's join).
    with django_assert_max_num_queries(6):
        answer = client.get(url)
    assert answer.status_code == 200
    assert len(answer.json()["results"]) > 1


def test_the_bulk_formats_are_not_written_by_rows(book):
    answer = client_of(book["alice"]).get(
        "/api/v1/executions/?since=2024-05-13T14:30:00Z&until=2024-05-14T00:00:00Z",
        HTTP_ACCEPT="text/csv",
    )
    assert answer.status_code == 200
    assert answer["Content-Type"].startswith("text/csv")
    body = b"".join(answer.streaming_content) if answer.streaming else answer.content
    assert b"exec_id" in body.splitlines()[0]


@pytest.mark.parametrize("url", ["/api/v1/orders/", "/api/v1/executions/"])
def test_times_in_another_time_zone_as_drf_writes_them(book, monkeypatch, url):
    client = client_of(book["audrey"])
    with timezone.override("America/New_York"):
        answer = client.get(url)
        assert answer.content == _drf(monkeypatch, client, url).content
    assert "-05:00" in answer.content.decode() or "-04:00" in answer.content.decode()
