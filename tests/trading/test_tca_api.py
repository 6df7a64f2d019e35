"""``/api/v1/tca/`` (trading/api/tca.py), from the side that would break it: a trader of one
desk never reads another's costs, shortfall or summary (in the list, a record, or by naming
the account), as the owner's connection scopes and again under row-level security; an
auditor reads every account and writes nothing; anonymous users are refused; bad parameters
are a 400 naming the field; the answers are the ``trading.tca`` functions'; the statements of
a list do not grow with its rows."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Group

from marketdata.models import Instrument, Tick
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from tests.bulk import assert_same_rows, bulk_table, json_rows
from tests.clients import client_of
from tests.fixtures.trading import T0, fill, make_order, refresh_now
from tests.fixtures.trading_api import iso
from trading import tca
from trading.api.tca import ExecutionCostSerializer
from trading.models import ExecutionCost

START, END = T0 - timedelta(days=1), T0 + timedelta(days=1)
RANGE = {"start": iso(START), "end": iso(END)}
COSTS, ORDERS, SUMMARY = "/api/v1/tca/executions/", "/api/v1/tca/orders/", "/api/v1/tca/summary/"
FILLS = 5  # per desk: a list of several rows, whose statements must not grow with them


def quote(instrument: Instrument, seconds: int, bid: float, ask: float) -> None:
    Tick.objects.create(
        instrument=instrument,
        ts=T0 + timedelta(seconds=seconds),
        sequence=0,
        kind="quote",
        bid=bid,
        ask=ask,
    )


def booked(desks: dict, instrument: Instrument) -> dict:
    """Each desk's orders, created a minute before T0, each filled at T0 and priced by AAPL's
    quotes (mid 100, then 100.2 from T0 + 5 s); alpha buys, beta sells; the costs refreshed.
    Carol is in both desks' groups: she sees two accounts, not all."""
    partitions.prepare_load("marketdata_tick", START - timedelta(days=1), END + timedelta(days=1))
    quote(instrument, -120, 99.9, 100.1)
    quote(instrument, 5, 100.1, 100.3)
    records = dict(desks)
    for name, side, price in (("alpha", "buy", "100.05"), ("beta", "sell", "99.9")):
        for k in range(FILLS):
            order = make_order(
                desks[name], instrument, side, "100", created_at=T0 - timedelta(minutes=1)
            )
            quantity = 50 if side == "buy" else -50
            records[f"{name}-{k}"] = fill(order, quantity, price, at=T0 + timedelta(seconds=k))
    assert refresh_now(START, END) == 2 * FILLS
    records["costs"] = {
        c.account.name: c.pk for c in ExecutionCost.objects.select_related("account")
    }
    carol = desks["alice"].__class__.objects.create_user("carol", password="pw-carol-1234")
    carol.groups.add(*Group.objects.filter(name__in=["desk-alpha", "desk-beta"]))
    records["carol"] = carol
    return records


@pytest.fixture(params=["querysets", "row-level security"])
def books(request, db_role, desks, instrument) -> dict:
    """``booked``, read as the owner (the querysets scope) and as trading_app, where
    row-level security applies as well and must agree. (``db_role``: on Citus the rows are
    committed before the role changes, tests/conftest.py.)"""
    records = booked(desks, instrument)
    if request.param == "row-level security":
        request.getfixturevalue("as_app_role")
    return records


def get(user, url: str, query: dict | None = None, status: int = 200) -> dict:
    response = client_of(user).get(url, query or {})
    assert response.status_code == status, response.content
    return response.json()


def names(books: dict, account_ids) -> set[str]:
    by_id = {books[name].pk: name for name in ("alpha", "beta")}
    return {by_id[pk] for pk in account_ids}


# --- Who reads what --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("alice", {"alpha"}),
        ("bob", {"beta"}),
        ("carol", {"alpha", "beta"}),
        ("audrey", {"alpha", "beta"}),
    ],
)
def test_each_user_reads_the_costs_of_the_accounts_they_see(books, user, expected):
    rows = get(books[user], COSTS)["results"]
    assert names(books, {r["account"] for r in rows}) == expected
    assert len(rows) == FILLS * len(expected)
    orders = get(books[user], ORDERS, RANGE)["orders"]
    assert names(books, {o["account_id"] for o in orders}) == expected
    assert len(orders) == FILLS * len(expected)


def test_another_desks_cost_is_not_found(books):
    beta_cost = books["costs"]["beta"]
    assert client_of(books["alice"]).get(f"{COSTS}{beta_cost}/").status_code == 404
    assert client_of(books["bob"]).get(f"{COSTS}{beta_cost}/").status_code == 200
    assert client_of(books["audrey"]).get(f"{COSTS}{beta_cost}/").status_code == 200


@pytest.mark.parametrize("url", [COSTS, ORDERS, SUMMARY])
def test_naming_an_account_one_may_not_see_is_refused_as_unknown(books, url):
    beta = books["beta"].pk
    body = get(books["alice"], url, {**RANGE, "account": beta}, status=400)
    assert body == {"account": [f"no account {beta} that you may see"]}
    # A number that is no account at all answers the same: nothing is revealed.
    body = get(books["alice"], url, {**RANGE, "account": 999_999}, status=400)
    assert body == {"account": ["no account 999999 that you may see"]}


def test_the_summary_of_the_accounts_one_sees(books):
    def groups(user, **query) -> set[str]:
        body = get(books[user], SUMMARY, {**RANGE, "dimension": "account", **query})
        return {row["group"] for row in body["rows"]}

    assert groups("alice") == {"alpha"}
    assert groups("bob") == {"beta"}
    assert groups("audrey") == {"alpha", "beta"}
    assert groups("carol", account=books["beta"].pk) == {"beta"}
    # Two accounts, not all: aggregated together, as one set of fills.
    assert groups("carol") == {"alpha", "beta"}
    (whole,) = {
        row["executions"]
        for row in get(books["carol"], SUMMARY, {**RANGE, "dimension": "all"})["rows"]
    }
    assert whole == 2 * FILLS
    (own,) = {
        row["executions"]
        for row in get(books["alice"], SUMMARY, {**RANGE, "dimension": "all"})["rows"]
    }
    assert own == FILLS


def test_a_user_granted_no_account_reads_nothing(books, django_user_model):
    nobody = django_user_model.objects.create_user("nobody")
    assert get(nobody, COSTS)["results"] == []
    assert get(nobody, ORDERS, RANGE)["orders"] == []
    assert get(nobody, SUMMARY, RANGE)["rows"] == []


@pytest.mark.parametrize("url", [COSTS, ORDERS, SUMMARY, f"{COSTS}1/"])
def test_anonymous_users_are_refused(client, url):
    assert client.get(url, RANGE).status_code in (401, 403)


@pytest.mark.parametrize("user", ["alice", "audrey"])
def test_nobody_writes_the_costs(books, user):
    client = client_of(books[user])
    own = books["costs"]["alpha"]
    before = list(ExecutionCost.objects.order_by("id").values())
    writes = [
        ("post", COSTS),
        ("put", f"{COSTS}{own}/"),
        ("patch", f"{COSTS}{own}/"),
        ("delete", f"{COSTS}{own}/"),
        ("post", ORDERS),
        ("post", SUMMARY),
    ]
    for method, url in writes:
        response = getattr(client, method)(url, {"slippage_bps": 0}, format="json")
        # A trader is told the method is not allowed; an auditor may be refused before that.
        allowed = {405} if user == "alice" else {403, 405}
        assert response.status_code in allowed, (method, url, response.content)
    assert list(ExecutionCost.objects.order_by("id").values()) == before


# --- What the answers hold -------------------------------------------------------------------
def test_a_cost_is_the_stored_row_with_every_field_of_the_model(books):
    row = get(books["alice"], f"{COSTS}{books['costs']['alpha']}/")
    with acting_as("test", books["alice"]):  # read as that user reads
        stored = ExecutionCost.objects.get(pk=books["costs"]["alpha"])
    # Every column of the model, so that fields added to it are served as they come.
    assert set(row) == {f.name for f in ExecutionCost._meta.concrete_fields}
    assert set(ExecutionCostSerializer.Meta.fields) == set(row)
    assert row["instrument"] == "AAPL"
    assert row["slippage_bps"] == pytest.approx(stored.slippage_bps)
    assert row["slippage_bps"] == pytest.approx(5.0)  # 100.05 against the mid of 100
    assert row["markout_source"] == "ticks"
    assert Decimal(row["notional"]) == stored.notional


def test_the_shortfall_is_the_functions(books):
    body = get(books["alice"], ORDERS, {**RANGE, "account": books["alpha"].pk})
    assert body["account"] == books["alpha"].pk
    with acting_as("test", books["alice"]):  # read as that user reads
        expected = tca.shortfall(START, END, books["alpha"].pk)
    assert [o["order_id"] for o in body["orders"]] == [e["order_id"] for e in expected]
    for got, want in zip(body["orders"], expected, strict=True):
        assert got["shortfall_bps"] == pytest.approx(want["shortfall_bps"])
        assert Decimal(got["filled"]) == want["filled"]
        assert got["arrival_source"] == "quote_mid"
        assert got["decision_source"] == want["decision_source"] == "arrival"
    # Carol's two accounts in one answer, by order id, as the auditor's of every account.
    both = get(books["carol"], ORDERS, RANGE)["orders"]
    ids = [o["order_id"] for o in both]
    assert ids == sorted(ids)
    assert ids == [o["order_id"] for o in get(books["audrey"], ORDERS, RANGE)["orders"]]


def test_a_venue_summary_groups_by_the_executions_venue(books, instrument):
    """A dimension trading.tca adds is served as it comes: the executions record no venue
    here, so they are one group, named as the function names it."""
    assert "venue" in tca.DIMENSIONS
    body = get(books["alice"], SUMMARY, {**RANGE, "dimension": "venue"})
    with acting_as("test", books["alice"]):  # read as that user reads
        expected = tca.summary("venue", START, END, books["alpha"].pk)
    assert {r["group"] for r in body["rows"]} == {e["grp"] for e in expected}
    assert len({r["group"] for r in body["rows"]}) == 1


def test_the_summary_is_the_functions(books):
    body = get(books["bob"], SUMMARY, {**RANGE, "dimension": "side"})
    assert (body["dimension"], body["account"]) == ("side", None)  # every account he sees
    with acting_as("test", books["bob"]):  # read as that user reads
        expected = tca.summary("side", START, END, books["beta"].pk)
    assert [(r["group"], r["measure"]) for r in body["rows"]] == [
        (e["grp"], e["measure"]) for e in expected
    ]
    slippage = next(r for r in body["rows"] if r["measure"] == "slippage")
    assert (slippage["group"], slippage["executions"], slippage["n"]) == ("sell", FILLS, FILLS)
    assert slippage["mean"] == pytest.approx(10.0)  # sold at 99.9 against 100


def test_the_list_filters(books, instrument):
    alice = books["alice"]
    assert len(get(alice, COSTS, {"symbol": "AAPL"})["results"]) == FILLS
    assert get(alice, COSTS, {"side": "sell"})["results"] == []
    assert len(get(alice, COSTS, {"markout_source": "ticks"})["results"]) == FILLS
    assert get(alice, COSTS, {"markout_source": ""})["results"] == []  # none without data
    first = books["alpha-0"]
    only = get(alice, COSTS, {"order": first.order_id})["results"]
    assert [r["execution"] for r in only] == [first.pk]
    later = get(alice, COSTS, {"start": iso(T0 + timedelta(seconds=1))})["results"]
    assert len(later) == FILLS - 1
    newest_first = [r["executed_at"] for r in get(alice, COSTS)["results"]]
    assert newest_first == sorted(newest_first, reverse=True)


@pytest.mark.django_db(transaction=True)
def test_the_bulk_formats_hold_the_json_rows_of_the_accounts_one_sees(desks, instrument):
    """Read on the bulk reader's own connection (committed rows): the same scope."""
    records = booked(desks, instrument)
    alice = client_of(records["alice"])
    table = bulk_table(alice, COSTS, RANGE)
    rows = json_rows(alice, COSTS, RANGE)
    assert len(rows) == FILLS
    assert_same_rows(table, rows)
    assert set(table.column("account").to_pylist()) == {records["alpha"].pk}
    csv = bulk_table(client_of(records["audrey"]), COSTS, RANGE, "csv")
    assert set(csv.column("account").to_pylist()) == {records["alpha"].pk, records["beta"].pk}


# --- Bad parameters --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("url", "query", "field"),
    [
        (ORDERS, {"end": RANGE["end"]}, "start"),
        (ORDERS, {"start": RANGE["start"]}, "end"),
        (ORDERS, {"start": "yesterday", "end": RANGE["end"]}, "start"),
        (ORDERS, {"start": RANGE["end"], "end": RANGE["start"]}, "start"),
        (ORDERS, {"start": "2023-01-01", "end": "2024-01-03"}, "end"),
        (ORDERS, {**RANGE, "known_at": "2999-01-01T00:00:00Z"}, "known_at"),
        (SUMMARY, {}, "start"),
        (SUMMARY, {"start": "2023-01-01", "end": "2024-01-03"}, "end"),
        (SUMMARY, {**RANGE, "dimension": "colour"}, "dimension"),
        (COSTS, {"side": "hold"}, "side"),
        (COSTS, {"markout_source": "vibes"}, "markout_source"),
        (COSTS, {"symbol": "NOPE"}, "symbol"),
        (COSTS, {"order": "-1"}, "order"),
        (COSTS, {"start": RANGE["end"], "end": RANGE["start"]}, "start"),
    ],
)
def test_bad_parameters_are_a_400_naming_the_field(books, url, query, field):
    body = get(books["alice"], url, query, status=400)
    assert field in body, body


def test_a_bad_dimension_is_refused_listing_the_allowed_ones(books):
    body = get(books["alice"], SUMMARY, {**RANGE, "dimension": "colour"}, status=400)
    (message,) = body["dimension"]
    assert "colour" in message
    for dimension in tca.DIMENSIONS:
        assert dimension in message


def test_a_range_of_a_year_is_read_and_a_day_more_refused(books):
    year = {"start": "2024-01-01T00:00:00Z", "end": "2025-01-01T00:00:00Z"}  # 366 days
    assert len(get(books["alice"], ORDERS, year)["orders"]) == FILLS
    longer = {**year, "end": "2025-01-01T00:00:01Z"}
    assert get(books["alice"], ORDERS, longer, status=400) == {
        "end": ["at most 366 days after start"]
    }


# --- Bounded statements ----------------------------------------------------------------------
@pytest.mark.parametrize("user", ["alice", "carol", "audrey"])
def test_the_statements_do_not_grow_with_the_rows(books, user, django_assert_max_num_queries):
    client = client_of(books[user])
    # The session and user, a savepoint and its release, the declaration, the auditors'
    # group, the accounts seen, the settled moment, the rows (the instrument joined; the
    # cursor page counts nothing): whatever the rows' number.
    with django_assert_max_num_queries(10):
        assert client.get(COSTS).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(ORDERS, RANGE).status_code == 200
    with django_assert_max_num_queries(10):
        assert client.get(SUMMARY, {**RANGE, "account": books["alpha"].pk}).status_code == 200
