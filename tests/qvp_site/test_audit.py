"""The audit trail: every change of the books recorded with its rows and who acted, nothing the
application's role can change (the chain and its checkpoints: test_audit_chain.py)."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, ProgrammingError, connection, transaction
from psycopg import errors

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.models import AuditEntry
from tests.fixtures.trading import fill, make_order
from trading.models import Account, CashEntry, Order, Position

HASH = re.compile(r"[0-9a-f]{64}")


@pytest.fixture
def instrument(db):
    return Instrument.objects.create(symbol="AAPL", asset_class="equity", exchange="XNAS")


@pytest.fixture
def alice(db):
    return get_user_model().objects.create_user("alice", password="pw-alice-1234")


@pytest.fixture
def account(db):
    return Account.objects.create(name="alpha")


def entries(table: str, key=None) -> list[AuditEntry]:
    found = AuditEntry.objects.filter(table_name=table).order_by("id")
    return list(found if key is None else found.filter(row_key=str(key)))


def operations(table: str, key=None) -> list[str]:
    return [entry.operation for entry in entries(table, key)]


# --- what is recorded -------------------------------------------------------------------------


def test_an_accounts_insert_update_and_delete_are_recorded_with_rows_and_user(alice):
    with acting_as("test", user=alice):
        account = Account.objects.create(name="alpha")
        account.name = "alpha-2"
        account.save()
        key = account.pk
        account.delete()
    insert, update, delete = entries("trading_account", key)
    assert (insert.operation, insert.old_row, insert.new_row["name"]) == ("INSERT", None, "alpha")
    assert update.operation == "UPDATE"
    assert (update.old_row["name"], update.new_row["name"]) == ("alpha", "alpha-2")
    assert (delete.operation, delete.old_row["name"], delete.new_row) == ("DELETE", "alpha-2", None)
    assert {e.actor for e in (insert, update, delete)} == {"alice"}
    assert {e.db_role for e in (insert, update, delete)} == {connection.settings_dict["USER"]}


def test_an_orders_insert_and_cancel_are_recorded(account, instrument, alice):
    with acting_as("test", user=alice):
        order = make_order(account, instrument)
        order.status = Order.Status.CANCELLED
        order.save(update_fields=["status"])
    insert, cancel = entries("trading_order", order.pk)
    assert insert.operation == "INSERT"
    assert insert.new_row["client_order_id"] == order.client_order_id
    assert cancel.operation == "UPDATE"
    assert (cancel.old_row["status"], cancel.new_row["status"]) == ("new", "cancelled")
    assert {insert.actor, cancel.actor} == {"alice"}


def test_an_execution_records_itself_and_the_order_position_and_cash_it_moves(
    account, instrument, alice
):
    with acting_as("test", user=alice):
        order = make_order(account, instrument, quantity="10")
        first = fill(order, 4, "100", fee="1")
        fill(order, 6, "110")
    (execution,) = entries("trading_execution", first.pk)
    assert execution.operation == "INSERT"
    assert execution.old_row is None
    assert execution.new_row["exec_id"] == first.exec_id
    assert execution.new_row["position_sequence"] == 1
    assert operations("trading_order", order.pk) == ["INSERT", "UPDATE", "UPDATE"]
    filled = entries("trading_order", order.pk)[-1]
    assert (filled.old_row["status"], filled.new_row["status"]) == ("partially_filled", "filled")

    position = Position.objects.get(account=account, instrument=instrument)
    # Made by the first fill (insert, then its step), moved by the second.
    assert operations("trading_position", position.pk) == ["INSERT", "UPDATE", "UPDATE"]
    moved = entries("trading_position", position.pk)[-1]
    assert (Decimal(str(moved.old_row["quantity"])), Decimal(str(moved.new_row["quantity"]))) == (
        4,
        10,
    )
    cash = CashEntry.objects.filter(execution=first)
    assert sorted(cash.values_list("kind", flat=True)) == ["fee", "trade"]
    for entry in cash:
        assert operations("trading_cashentry", entry.pk) == ["INSERT"]
    # The account was made before anyone was declared; the books' entries since are alice's.
    since = AuditEntry.objects.filter(table_name__startswith="trading_").exclude(
        table_name="trading_account"
    )
    assert {e.actor for e in since} == {"alice"}


def test_a_bust_is_recorded_as_a_new_execution_next_to_the_original(account, instrument, alice):
    with acting_as("test", user=alice):
        original = fill(make_order(account, instrument), 5, "10")
        bust = fill(
            original.order, -5, "10", kind="bust", supersedes=original, reason="wrong price"
        )
    assert operations("trading_execution", original.pk) == ["INSERT"]
    (entry,) = entries("trading_execution", bust.pk)
    assert entry.new_row["supersedes_id"] == original.pk
    assert entry.new_row["kind"] == "bust"
    position = Position.objects.get(account=account, instrument=instrument)
    flat = entries("trading_position", position.pk)[-1]
    assert Decimal(str(flat.new_row["quantity"])) == 0


def test_a_deposit_is_recorded(account, alice):
    with acting_as("test", user=alice):
        deposit = CashEntry.objects.create(
            account=account,
            kind="deposit",
            amount=Decimal("1000"),
            currency="USD",
            entry_at=datetime(2024, 5, 13, tzinfo=UTC),
        )
    (entry,) = entries("trading_cashentry", deposit.pk)
    assert (entry.operation, entry.new_row["kind"], entry.actor) == ("INSERT", "deposit", "alice")


def test_without_a_declared_user_the_actor_is_the_database_role(db):
    Account.objects.create(name="alpha")
    (entry,) = entries("trading_account")
    assert entry.actor == entry.db_role == connection.settings_dict["USER"]


def test_a_command_acts_under_its_system_name(db):
    with acting_as("seed_demo"):
        Account.objects.create(name="alpha")
    assert entries("trading_account")[0].actor == "system:seed_demo"


def test_a_refused_change_leaves_no_entry(account, instrument):
    order = make_order(account, instrument)
    with pytest.raises(IntegrityError, match="orders are never deleted"), transaction.atomic():
        order.delete()
    assert operations("trading_order", order.pk) == ["INSERT"]


def test_entries_refuse_update_and_delete_even_to_the_owner(account):
    entry = entries("trading_account")[0]
    for statement in (
        "UPDATE {} SET actor = 'mallory' WHERE id = %s",
        "DELETE FROM {} WHERE id = %s",
    ):
        with (
            pytest.raises(ProgrammingError, match="append-only"),
            transaction.atomic(),
            connection.cursor() as cursor,
        ):
            cursor.execute(statement.format("qvp_site_auditentry"), [entry.pk])


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE qvp_site_auditentry SET actor = 'mallory'",
        "DELETE FROM qvp_site_auditentry",
        "TRUNCATE qvp_site_auditentry",
        "INSERT INTO qvp_site_auditentry (table_name, row_key, operation, actor, db_role, at,"
        " prev_hash, hash) VALUES ('trading_order', '1', 'INSERT', 'x', 'x', now(), '', '')",
        "UPDATE qvp_audit_head SET last_hash = 'forged'",
        "ALTER TABLE qvp_site_auditentry DISABLE TRIGGER qvp_audit_append_only",
    ],
)
def test_the_application_role_cannot_change_the_audit_log(connect_as_app, statement):
    Account.objects.create(name="alpha")  # committed: an entry to aim at
    conn = connect_as_app()
    conn.execute("SELECT set_config('qvp.actor', 'system:test', false)")
    with pytest.raises((errors.InsufficientPrivilege, errors.InvalidTableDefinition)):
        conn.execute(statement)
    assert AuditEntry.objects.filter(actor="mallory").count() == 0
    assert AuditEntry.objects.filter(table_name="trading_account").count() == 1


def test_the_application_role_reads_the_log(connect_as_app):
    Account.objects.create(name="alpha")
    conn = connect_as_app()
    found = conn.execute(
        "SELECT count(*) FROM qvp_site_auditentry WHERE table_name = 'trading_account'"
    ).fetchone()
    assert found[0] == 1
