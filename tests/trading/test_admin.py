"""The trading admin: auditors read every page and change nothing; operators add orders,
executions and cash, cancel and bust through actions, and see the database's refusals by
rule name, never a server error; every record links to its audit history."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, Permission
from django.contrib.messages import get_messages
from django.core.management import call_command
from django.db import connection
from django.urls import reverse
from django.utils import timezone

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.admin_access import VIEWED_PACKAGES, project_app_labels
from qvp_site.admin_bases import history_url
from qvp_site.db import partitions
from qvp_site.models import AuditEntry
from tests.fixtures.trading import T0, fill, make_order
from trading import books as trading_books
from trading import tca
from trading.models import (
    BacktestRun,
    BacktestTrade,
    CashEntry,
    Execution,
    Order,
    PortfolioSnapshot,
    Position,
)

TRADING_MODELS = [m._meta.model_name for m in apps.get_app_config("trading").get_models()]
AUDITED = ["account", "order", "execution", "position", "cashentry"]


def url(model: str, view: str = "changelist", *args, app: str = "trading") -> str:
    return reverse(f"admin:{app}_{model}_{view}", args=args)


def texts(response) -> list[str]:
    return [str(message) for message in get_messages(response.wsgi_request)]


@pytest.fixture
def books(desks, instrument):
    """Every kind of trading record, in both desks' accounts."""
    alpha, beta = desks["alpha"], desks["beta"]
    working = make_order(alpha, instrument, client_order_id="working", quantity="10")
    fill(working, 4, "100", fee="1")
    done = make_order(alpha, instrument, client_order_id="done", quantity="5")
    fill(done, 5, "101")
    fill(make_order(beta, instrument, client_order_id="beta-1"), 3, "99")
    CashEntry.objects.create(
        account=alpha, kind="deposit", amount=Decimal(10_000), currency="USD", entry_at=T0
    )
    partitions.prepare_load("trading_portfoliosnapshot", T0 - timedelta(days=1), T0)
    PortfolioSnapshot.objects.create(
        account=alpha,
        ts=T0,
        currency="USD",
        cash=Decimal(100),
        market_value=Decimal(50),
        nav=Decimal(150),
        gross_exposure=Decimal(50),
        net_exposure=Decimal(50),
    )
    # Taken again with other numbers: the first ones are kept as a revision.
    PortfolioSnapshot.objects.filter(account=alpha, ts=T0).update(
        cash=Decimal(110), nav=Decimal(160)
    )
    run = BacktestRun.objects.create(
        strategy="momentum", period_start=T0 - timedelta(days=30), period_end=T0
    )
    BacktestTrade.objects.create(
        run=run, instrument=instrument, ts=T0, side="buy", quantity=1, price=Decimal(10)
    )
    # A split the books followed, in a position of its own (the tests bust and add fills of
    # the others, which an applied action would refuse before its ex-date).
    split = Instrument.objects.create(symbol="SPLT", asset_class="equity", currency="USD")
    fill(make_order(beta, split, client_order_id="beta-split"), 3, "50")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, 2, NULL, NULL, NULL, NULL, NULL, NULL)",
            [split.pk, date(2024, 6, 3)],
        )
    with acting_as("test"):
        trading_books.apply_actions(date(2024, 6, 3))
        # Each fill's cost, as the job after the close writes them.
        tca.refresh(datetime(2000, 1, 1, tzinfo=UTC), datetime(2100, 1, 1, tzinfo=UTC))
    return {**desks, "working": working, "done": done, "instrument": instrument}


@pytest.fixture
def auditor(books, client):
    audrey = books["audrey"]
    audrey.is_staff = True
    audrey.save()
    client.force_login(audrey)
    return client


def one_of_each() -> dict[tuple[str, str], object]:
    """(app, model) -> a record, for every trading model and the audit log."""
    found = {
        ("trading", name): apps.get_model("trading", name).objects.first()
        for name in TRADING_MODELS
    }
    found["qvp_site", "auditentry"] = AuditEntry.objects.first()
    return found


# --- auditors --------------------------------------------------------------------------------


def test_the_auditors_group_may_view_every_project_model_and_nothing_more(db):
    group = Group.objects.get(name="auditors")
    granted = set(group.permissions.values_list("content_type__app_label", "codename"))
    for label in ("qvp_site", "marketdata", "trading"):
        for model in apps.get_app_config(label).get_models():
            assert (label, f"view_{model._meta.model_name}") in granted
    assert all(codename.startswith("view_") for _label, codename in granted)
    # The project's apps, and the login lockouts (staff see them; auditors only view them).
    assert {label for label, _codename in granted} <= {*project_app_labels(), *VIEWED_PACKAGES}
    assert ("axes", "view_accessattempt") in granted
    assert "auth" not in project_app_labels()


def test_a_flush_gives_the_auditors_group_back(transactional_db):
    """Test flushes empty the permission tables; the post_migrate handler restores the group
    that the data migration made."""
    call_command("flush", interactive=False, verbosity=0)
    group = Group.objects.get(name="auditors")
    assert group.permissions.filter(codename="view_execution").exists()


def test_an_auditor_views_every_page(auditor):
    assert auditor.get("/admin/").status_code == 200
    for (app, model), record in one_of_each().items():
        assert record is not None, model
        changelist = auditor.get(url(model, app=app))
        assert changelist.status_code == 200, model
        assert url(model, "add", app=app).encode() not in changelist.content
        page = auditor.get(url(model, "change", record.pk, app=app))
        assert page.status_code == 200, model
        assert b'name="_save"' not in page.content, model


def test_an_auditor_sees_every_account(auditor, books):
    page = auditor.get(url("order"))
    for client_order_id in ("working", "done", "beta-1"):
        assert client_order_id.encode() in page.content


def test_every_post_of_an_auditor_is_refused(auditor, books):
    before = AuditEntry.objects.count()
    for (app, model), record in one_of_each().items():
        for view, args in (("add", ()), ("change", (record.pk,)), ("delete", (record.pk,))):
            response = auditor.post(url(model, view, *args, app=app), {"name": "x"})
            assert response.status_code == 403, (model, view)
        for action in ("delete_selected", "cancel", "bust"):
            response = auditor.post(
                url(model, app=app), {"action": action, "_selected_action": [record.pk]}
            )
            assert response.status_code == 403, (model, action)
    assert AuditEntry.objects.count() == before
    assert Order.objects.get(pk=books["working"].pk).status == "partially_filled"


# --- orders ----------------------------------------------------------------------------------


def cancel(client, order):
    return client.post(url("order"), {"action": "cancel", "_selected_action": [order.pk]})


def test_an_admin_cancels_an_order_and_the_audit_log_says_who(admin_client, books):
    order = books["working"]
    response = cancel(admin_client, order)
    assert response.status_code == 302
    assert texts(response) == ["Cancelled: 1"]
    order.refresh_from_db()
    assert order.status == "cancelled"
    assert order.status_reason == "cancelled in the admin by admin"
    entry = AuditEntry.objects.filter(table_name="trading_order", row_key=str(order.pk)).first()
    assert (entry.operation, entry.actor, entry.new_row["status"]) == (
        "UPDATE",
        "admin",
        "cancelled",
    )


def test_an_illegal_cancel_shows_the_rule_and_changes_nothing(admin_client, books):
    order = books["done"]
    response = cancel(admin_client, order)
    assert response.status_code == 302
    (message,) = texts(response)
    assert "order_legal_transition" in message
    assert f"order {order.pk}: cannot go from filled to cancelled" in message
    order.refresh_from_db()
    assert order.status == "filled"


def test_an_order_added_in_the_admin_starts_new(admin_client, books):
    data = {
        "account": books["alpha"].pk,
        "instrument": books["instrument"].pk,
        "client_order_id": "from-admin",
        "side": "buy",
        "order_type": "limit",
        "quantity": "7",
        "limit_price": "99.5",
        "time_in_force": "gtc",
    }
    assert admin_client.post(url("order", "add"), data).status_code == 302
    order = Order.objects.get(client_order_id="from-admin")
    assert (order.status, order.limit_price) == ("new", Decimal("99.5"))


def test_an_orders_change_page_is_read_only_and_links_to_its_history(admin_client, books):
    order = books["working"]
    page = admin_client.get(url("order", "change", order.pk))
    assert b'name="_save"' not in page.content
    link = history_url("trading_order", order.pk)
    assert link.replace("&", "&amp;").encode() in page.content
    history = admin_client.get(link)
    assert history.status_code == 200
    ops = [e.operation for e in history.context["cl"].result_list]
    assert ops == ["UPDATE", "INSERT"]  # newest first: the fill, then the insert


# --- executions ------------------------------------------------------------------------------


def execution_form(order, quantity: str, **extra) -> dict:
    return {
        "exec_id": "admin-1",
        "order": order.pk,
        "account": order.account_id,
        "instrument": order.instrument_id,
        "side": "buy",
        "quantity": quantity,
        "price": "100",
        "fee": "0",
        "liquidity": "unknown",
        "executed_at_0": "2024-05-14",
        "executed_at_1": "15:00:00",
        "kind": "fill",
        **extra,
    }


def test_an_overfilling_execution_in_the_admin_shows_the_rule_not_a_500(admin_client, books):
    order = books["working"]  # 4 of 10 filled
    response = admin_client.post(url("execution", "add"), execution_form(order, "7"))
    assert response.status_code == 200
    errors = response.context["adminform"].form.non_field_errors()
    (error,) = errors
    assert error.startswith("Refused by the database rule execution_within_order_quantity:")
    assert "beyond its quantity" in error
    assert not Execution.objects.filter(exec_id="admin-1").exists()
    order.refresh_from_db()
    assert order.filled_quantity == 4


def test_an_execution_of_another_order_account_shows_the_rule(admin_client, books):
    form = execution_form(books["working"], "1", account=books["beta"].pk)
    response = admin_client.post(url("execution", "add"), form)
    assert response.status_code == 200
    assert b"execution_matches_order" in response.content


def test_an_execution_added_in_the_admin_is_booked(admin_client, books):
    order = books["working"]
    response = admin_client.post(url("execution", "add"), execution_form(order, "6"))
    assert response.status_code == 302
    order.refresh_from_db()
    assert (order.filled_quantity, order.status) == (10, "filled")
    position = Position.objects.get(account=books["alpha"], instrument=books["instrument"])
    assert position.quantity == 15


def test_executions_are_never_changed_or_deleted_in_the_admin(admin_client, books):
    execution = Execution.objects.filter(order=books["working"]).get()
    assert admin_client.post(url("execution", "change", execution.pk), {}).status_code == 403
    assert admin_client.post(url("execution", "delete", execution.pk), {}).status_code == 403
    page = admin_client.get(url("execution", "change", execution.pk))
    assert b'name="_save"' not in page.content


def test_the_bust_action_writes_a_linked_bust_and_restores_the_books(admin_client, books):
    original = Execution.objects.filter(order=books["working"]).get()
    response = admin_client.post(
        url("execution"), {"action": "bust", "_selected_action": [original.pk]}
    )
    assert texts(response) == ["Busted: 1"]
    bust = Execution.objects.get(supersedes=original)
    assert (bust.kind, bust.quantity, bust.fee) == ("bust", -4, -1)
    books["working"].refresh_from_db()
    assert (books["working"].filled_quantity, books["working"].status) == (0, "new")
    position = Position.objects.get(account=books["alpha"], instrument=books["instrument"])
    assert position.quantity == 5  # the other order's fill

    again = admin_client.post(
        url("execution"), {"action": "bust", "_selected_action": [original.pk]}
    )
    (message,) = [text for text in texts(again) if "Refused" in text]
    assert "Refused by the database rule execution_superseded_once" in message
    assert Execution.objects.filter(supersedes=original).count() == 1


# --- positions, cash -------------------------------------------------------------------------


def test_positions_are_read_only_even_for_a_superuser(admin_client, books):
    position = Position.objects.first()
    assert admin_client.get(url("position", "add")).status_code == 403
    assert admin_client.post(url("position", "change", position.pk), {}).status_code == 403
    assert admin_client.post(url("position", "delete", position.pk), {}).status_code == 403
    page = admin_client.get(url("position", "change", position.pk))
    assert b'name="_save"' not in page.content
    assert b"audit entries of this record" in page.content


def cash_form(account, kind: str, amount: str, currency: str = "") -> dict:
    return {
        "account": account.pk,
        "kind": kind,
        "amount": amount,
        "currency": currency,
        "entry_at_0": "2024-05-14",
        "entry_at_1": "09:00:00",
        "note": "wire",
    }


def test_a_deposit_is_added_in_the_accounts_currency(admin_client, books):
    response = admin_client.post(
        url("cashentry", "add"), cash_form(books["alpha"], "deposit", "500")
    )
    assert response.status_code == 302
    entry = CashEntry.objects.get(note="wire")
    assert (entry.kind, entry.amount, entry.currency) == ("deposit", 500, "USD")


@pytest.mark.parametrize("kind", ["trade", "fee"])
def test_trade_and_fee_entries_cannot_be_added_by_hand(admin_client, books, kind):
    response = admin_client.post(url("cashentry", "add"), cash_form(books["alpha"], kind, "-5"))
    assert response.status_code == 200
    assert "kind" in response.context["adminform"].form.errors
    assert not CashEntry.objects.filter(note="wire").exists()


def test_a_positive_withdrawal_is_refused_on_the_form(admin_client, books):
    response = admin_client.post(
        url("cashentry", "add"), cash_form(books["alpha"], "withdrawal", "5")
    )
    assert response.status_code == 200
    assert b"cash_withdrawal_negative" in response.content


# --- who sees what ---------------------------------------------------------------------------


@pytest.fixture
def alice(books, client):
    alice = books["alice"]
    alice.is_staff = True
    alice.save()
    alice.user_permissions.add(
        *Permission.objects.filter(content_type__app_label="trading", codename__startswith="view_"),
        Permission.objects.get(codename="change_order"),
        Permission.objects.get(codename="add_execution"),
    )
    client.force_login(alice)
    return client


def test_a_trader_sees_only_their_desks_records(alice, books):
    page = alice.get(url("order"))
    assert b"working" in page.content
    assert b"beta-1" not in page.content
    beta_order = Order.objects.get(client_order_id="beta-1")
    assert alice.get(url("order", "change", beta_order.pk)).status_code == 302  # "not found"
    assert alice.get(url("account")).context["cl"].result_count == 1


def test_a_trader_cannot_book_into_another_desks_order(alice, books):
    beta_order = Order.objects.get(client_order_id="beta-1")
    response = alice.post(url("execution", "add"), execution_form(beta_order, "1"))
    assert response.status_code == 200
    assert set(response.context["adminform"].form.errors) == {"order", "account"}


def test_a_traders_cancel_works_on_their_desk(alice, books):
    assert texts(cancel(alice, books["working"])) == ["Cancelled: 1"]


# --- through the application's role ----------------------------------------------------------


@pytest.fixture
def admin_as_app(admin_client, books, as_app_role):
    return admin_client


def test_the_admins_writes_fit_the_application_roles_privileges(admin_as_app, books):
    """The served site runs as trading_app: column grants and row-level security apply."""
    assert texts(cancel(admin_as_app, books["working"])) == ["Cancelled: 1"]
    response = admin_as_app.post(
        url("cashentry", "add"), cash_form(books["alpha"], "adjustment", "-3", "USD")
    )
    assert response.status_code == 302
    refused = admin_as_app.post(url("execution", "add"), execution_form(books["done"], "1"))
    assert b"execution_within_order_quantity" in refused.content


# --- the audit log in the admin --------------------------------------------------------------


def test_the_audit_log_filters_by_table_operation_actor_and_time(admin_client, books):
    base = url("auditentry", app="qvp_site")
    page = admin_client.get(base)
    filters = {spec.title: spec for spec in page.context["cl"].filter_specs}
    assert {"table", "operation", "actor", "at"} <= set(filters)
    tables = [value for value, _label in filters["table"].lookup_choices]
    assert {"trading_order", "trading_execution", "trading_position"} <= set(tables)

    def listed(query: str) -> list[AuditEntry]:
        response = admin_client.get(f"{base}?{query}")
        assert response.status_code == 200
        return list(response.context["cl"].result_list)

    inserts = listed("table_name=trading_order&operation__exact=INSERT")
    assert {e.row_key for e in inserts} == {str(o.pk) for o in Order.objects.all()}
    assert listed(f"actor={books['alice'].username}") == []
    since = (timezone.now() - timedelta(hours=1)).isoformat()
    recent = listed(urlencode({"table_name": "trading_order", "at__gte": since}))
    assert len(recent) == AuditEntry.objects.filter(table_name="trading_order").count()
    assert listed(urlencode({"at__lt": "2000-01-01T00:00:00+00:00"})) == []
    found = listed(f"q={books['working'].pk}&table_name=trading_order")
    assert {e.row_key for e in found} == {str(books["working"].pk)}


def test_an_audit_entry_shows_its_rows_as_json_and_links_to_the_rows_history(admin_client, books):
    entry = AuditEntry.objects.filter(table_name="trading_order", operation="UPDATE").first()
    page = admin_client.get(url("auditentry", "change", entry.pk, app="qvp_site"))
    assert page.status_code == 200
    content = page.content.decode()
    assert "<pre" in content
    assert "&quot;filled_quantity&quot;: " in content
    assert history_url(entry.table_name, entry.row_key).replace("&", "&amp;") in content
    assert url("order", "change", entry.row_key) in content  # the record itself
    assert "filled_quantity" in content.lower().split("changed fields")[1][:400]
    assert b'name="_save"' not in page.content
    assert admin_client.get(url("auditentry", "add", app="qvp_site")).status_code == 403
