"""CSV export of an admin changelist: the rows of the page's filters and search, under the
user's visibility (account scoping and row-level security), streamed in a bounded number of
queries, with formulas neutralised; auditors export and change nothing."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from marketdata.models import Instrument, MinuteBar
from qvp_site.admin_export import neutralised
from qvp_site.db import partitions, roles
from qvp_site.models import AuditEntry
from tests.fixtures.trading import T0, make_order
from trading.models import CashEntry, Order

ORDERS = reverse("admin:trading_order_changelist")
ORDERS_CSV = reverse("admin:trading_order_export_csv")


def read_csv(response) -> list[dict[str, str]]:
    assert response.status_code == 200, response
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    body = b"".join(response.streaming_content).decode()
    return list(csv.DictReader(io.StringIO(body)))


def ids(rows) -> list[int]:
    return [int(row["id"]) for row in rows]


@pytest.fixture
def msft(db):
    return Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")


@pytest.fixture
def book(desks, instrument, msft):
    """Orders of both desks in two instruments, buys and sells."""
    alpha, beta = desks["alpha"], desks["beta"]
    orders = [
        make_order(alpha, instrument, "buy", client_order_id="a-aapl-buy"),
        make_order(alpha, instrument, "sell", client_order_id="a-aapl-sell"),
        make_order(alpha, msft, "buy", client_order_id="a-msft-buy"),
        make_order(beta, instrument, "buy", client_order_id="b-aapl-buy"),
        make_order(beta, msft, "sell", client_order_id="b-msft-sell"),
    ]
    return {**desks, "orders": orders}


def staff_with_view(user, *codenames: str):
    user.is_staff = True
    user.save()
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return user


def test_the_export_holds_exactly_the_rows_of_the_filters_and_search(admin_client, book):
    query = {"side__exact": "buy", "q": "AAPL", "o": "-1"}
    rows = read_csv(admin_client.get(ORDERS_CSV, query))
    expected = Order.objects.filter(side="buy", instrument__symbol="AAPL").order_by("-id")
    assert ids(rows) == list(expected.values_list("id", flat=True))
    assert len(rows) == 2
    assert {row["client_order_id"] for row in rows} == {"a-aapl-buy", "b-aapl-buy"}
    assert {row["instrument"] for row in rows} == {"AAPL"}
    assert {row["account"] for row in rows} == {"alpha", "beta"}


def test_the_columns_are_the_lists_fields_with_names_of_related_records(admin_client, book):
    response = admin_client.get(ORDERS_CSV, {"q": "a-msft-buy"})
    disposition = response["Content-Disposition"]
    assert disposition.startswith('attachment; filename="trading-order-')
    assert disposition.endswith('Z.csv"')
    (row,) = read_csv(response)
    assert list(row)[:7] == [
        "id",
        "created_at",
        "account_id",
        "account",
        "client_order_id",
        "instrument_id",
        "instrument",
    ]
    order = Order.objects.get(client_order_id="a-msft-buy")
    assert row["account_id"] == str(book["alpha"].pk)
    assert row["instrument"] == "MSFT"
    assert Decimal(row["quantity"]) == order.quantity
    assert row["created_at"] == order.created_at.isoformat()  # UTC, ISO 8601
    assert "status_reason" not in row  # not a column of the list


def test_the_changelist_links_to_the_export_of_what_it_shows(admin_client, book):
    response = admin_client.get(ORDERS, {"side__exact": "sell", "q": "MSFT", "o": "2", "p": "1"})
    url = response.context["csv_export_url"]
    assert url.startswith(ORDERS_CSV + "?")
    assert "side__exact=sell" in url
    assert "q=MSFT" in url
    assert "o=2" in url
    assert "p=" not in url  # the export is of every page
    assert b"Export CSV" in response.content
    assert ids(read_csv(admin_client.get(url))) == [book["orders"][4].pk]


def test_a_trader_exports_only_the_accounts_they_may_see(client, book):
    client.force_login(staff_with_view(book["alice"], "view_order"))
    rows = read_csv(client.get(ORDERS_CSV))
    assert {row["account"] for row in rows} == {"alpha"}
    assert len(rows) == 3
    # Filtering on another desk's account gives nothing of it.
    assert read_csv(client.get(ORDERS_CSV, {"account": book["beta"].pk})) == []


@pytest.fixture
def as_app_role_for_the_session(transactional_db, app_role_password):
    """The site's connection as trading_app for the whole session: each request's
    transaction commits as served, and row-level security applies to what follows it."""
    yield
    with connection.cursor() as cursor:
        cursor.execute("RESET ROLE")


def test_rows_are_read_under_row_level_security_after_the_request_has_ended(
    as_app_role_for_the_session, client, book
):
    """The response is streamed after the request's transaction ended: the export names the
    user to the database again, or row-level security would show it nothing."""
    client.force_login(staff_with_view(book["alice"], "view_order"))
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.APP_ROLE}")
    rows = read_csv(client.get(ORDERS_CSV))
    assert sorted(row["client_order_id"] for row in rows) == [
        "a-aapl-buy",
        "a-aapl-sell",
        "a-msft-buy",
    ]


def test_an_auditor_exports_everything_and_changes_nothing(client, book):
    audrey = book["audrey"]
    audrey.is_staff = True
    audrey.save()
    client.force_login(audrey)
    rows = read_csv(client.get(ORDERS_CSV))
    assert {row["account"] for row in rows} == {"alpha", "beta"}
    assert len(rows) == 5
    order = book["orders"][0]
    change = reverse("admin:trading_order_change", args=[order.pk])
    assert client.post(change, {"quantity": "1"}).status_code == 403
    cancel = {"action": "cancel", "_selected_action": [order.pk]}
    assert client.post(ORDERS, cancel).status_code == 403
    assert Order.objects.get(pk=order.pk).status == Order.Status.NEW


def test_exporting_needs_the_view_permission(client, book):
    client.force_login(staff_with_view(book["bob"]))  # staff, without any permission
    assert client.get(ORDERS_CSV).status_code == 403
    client.logout()
    response = client.get(ORDERS_CSV)
    assert response.status_code == 302
    assert "login" in response["Location"]


def test_a_filter_that_cannot_apply_returns_to_the_list_flagged(admin_client, book):
    response = admin_client.get(ORDERS_CSV, {"created_at__gte": "not a date"})
    assert response.status_code == 302
    assert response["Location"] == f"{ORDERS}?e=1"


def test_text_a_spreadsheet_would_run_is_neutralised(admin_client, book):
    alpha = book["alpha"]
    notes = ['=HYPERLINK("http://x")', "+1+2", "-2+3", "@SUM(A1)", "\tTAB", "plain"]
    for note in notes:
        CashEntry.objects.create(
            account=alpha,
            kind="deposit",
            amount=Decimal("100.5"),
            currency="USD",
            entry_at=T0,
            note=note,
        )
    CashEntry.objects.create(
        account=alpha, kind="withdrawal", amount=Decimal(-7), currency="USD", entry_at=T0
    )
    rows = read_csv(admin_client.get(reverse("admin:trading_cashentry_export_csv")))
    assert sorted(row["note"] for row in rows if row["note"]) == sorted(
        ['\'=HYPERLINK("http://x")', "'+1+2", "'-2+3", "'@SUM(A1)", "'\tTAB", "plain"]
    )
    amounts = {row["amount"] for row in rows}
    assert sorted(Decimal(a) for a in amounts) == [Decimal(-7), Decimal("100.5")]  # as numbers


def test_cells_are_written_as_their_type_asks():
    assert neutralised(Decimal("-5.25")) == Decimal("-5.25")
    assert neutralised(-3) == -3
    assert neutralised("-3") == "'-3"
    assert neutralised(None) == ""
    assert neutralised({"b": 1, "a": "=x"}) == '{"a": "=x", "b": 1}'
    assert neutralised(["=x"]) == '["=x"]'  # JSON never starts a formula


@pytest.fixture
def bars(instrument):
    partitions.prepare_load("marketdata_minutebar", T0 - timedelta(days=1), T0 + timedelta(days=5))

    def load(count: int) -> None:
        MinuteBar.objects.bulk_create(
            MinuteBar(instrument=instrument, ts=T0 + timedelta(minutes=i), open=1, high=2,
                      low=1, close=2, volume=i)
            for i in range(count)
        )  # fmt: skip

    return load


def export_queries(client, url: str) -> tuple[list[dict], list[str]]:
    with CaptureQueriesContext(connection) as queries:
        rows = read_csv(client.get(url, {"q": "AAPL"}))
    return rows, [q["sql"] for q in queries.captured_queries]


def test_many_rows_stream_in_a_bounded_number_of_queries_without_a_count(
    admin_client, bars, django_assert_max_num_queries
):
    url = reverse("admin:marketdata_minutebar_export_csv")
    bars(10)
    few, few_queries = export_queries(admin_client, url)
    MinuteBar.objects.all().delete()
    bars(5_000)  # more than two chunks of the server-side cursor
    with django_assert_max_num_queries(len(few_queries)):
        many, statements = export_queries(admin_client, url)
    assert len(few) == 10
    assert len(many) == 5_000
    assert [row["ts"] for row in many[:2]] == [
        (T0 + timedelta(minutes=4999)).isoformat(),
        (T0 + timedelta(minutes=4998)).isoformat(),
    ]  # the list's ordering, newest first
    assert not [s for s in statements if "COUNT(" in s.upper()], statements
    assert len(statements) <= 10, statements


def test_admin_pages_use_no_inline_style(admin_client, book):
    """The content security policy refuses inline style: the audit entry's JSON is styled by
    the admin's stylesheet, and the export link is a plain link."""
    entry = AuditEntry.objects.filter(table_name="trading_order").first()
    pages = [
        admin_client.get(reverse("admin:qvp_site_auditentry_change", args=[entry.pk])),
        admin_client.get(ORDERS),
    ]
    for page in pages:
        html = page.content.decode()
        assert page.status_code == 200
        assert "style=" not in html
        assert "qvp/admin.css" in html
    assert '<pre class="qvp-json">' in pages[0].content.decode()
