"""No global queue: one account's audited transaction, still open, holds up no other
account's audited write, nor the sealer.

Until qvp_site 0010 every audited statement took the audit chain's head row (the statement
trigger ``qvp_audit_lock_head``) and kept it until its transaction ended, so a batch of 2,000
executions of one account made every other account's write wait for it (11.6 s measured).
Here the other account's writes run with a lock timeout of 2 s while the first account's
transaction stays open: with the head row lock they would fail with ``LockNotAvailable``.
Behaviour, not timing: ``bench/executions.py`` measures the latencies.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

import psycopg
import pytest
from django.db import connection, transaction
from psycopg.pq import TransactionStatus

from marketdata.models import Instrument
from qvp_site.models import AuditEntry
from tests.fixtures.trading import T0, make_order
from trading.models import Execution, Order

# What the books' trigger takes from a writer (trading/books.py inserts the same columns).
INSERT = """
INSERT INTO trading_execution (exec_id, order_id, account_id, instrument_id, side, quantity,
                               price, fee, liquidity, executed_at, kind, reason, created_at)
VALUES (%s, %s, %s, %s, 'buy', %s, 100, 0, 'unknown', %s, 'fill', '', now())
RETURNING id
"""
# Long enough for a lock wait to show as a failure, short enough to keep a regression quick.
LOCK_TIMEOUT = "2s"
BATCH = 50


@contextmanager
def acting(conn: psycopg.Connection, user) -> Iterator[None]:
    """A transaction on ``conn`` in which ``user`` acts, declared as the application does."""
    with conn.transaction():
        conn.execute(
            "SELECT set_config('qvp.user_id', %s, true), set_config('qvp.actor', %s, true)",
            [str(user.pk), user.username],
        )
        yield


def book(conn: psycopg.Connection, order: Order, exec_id: str) -> int:
    row = conn.execute(
        INSERT,
        [exec_id, order.pk, order.account_id, order.instrument_id, Decimal(1), T0],
    ).fetchone()
    assert row is not None
    return int(row[0])


def audited(table: str, row_id: int, operation: str, **new_row: object) -> bool:
    """Whether the audit log holds a committed entry of the row's ``operation``, whose new
    state has the values ``new_row`` gives."""
    lookups = {f"new_row__{column}": value for column, value in new_row.items()}
    entries = AuditEntry.objects.filter(table_name=table, row_key=str(row_id), **lookups)
    return entries.filter(operation=operation).exists()


@pytest.fixture
def orders(desks, instrument: Instrument) -> dict[str, Order]:
    """Buy orders of both desks' accounts on the same instrument, committed (the
    ``instrument`` row is one both accounts' bookings refer to)."""
    return {
        "alpha": make_order(desks["alpha"], instrument, quantity="1000"),
        "beta": make_order(desks["beta"], instrument, quantity="1000"),
        "beta-to-cancel": make_order(desks["beta"], instrument, quantity="10"),
    }


@pytest.fixture
def open_batch(desks, orders, connect_as_app) -> Iterator[list[int]]:
    """Alice's batch of alpha executions, booked and audited in a transaction left open
    while the test runs, committed afterwards; yields the executions' ids."""
    holder = connect_as_app()
    with acting(holder, desks["alice"]):
        ids = [book(holder, orders["alpha"], f"open-{n}") for n in range(BATCH)]
        assert holder.info.transaction_status == TransactionStatus.INTRANS
        yield ids


def test_another_accounts_writes_commit_while_a_batch_is_open(
    desks, orders, open_batch, connect_as_app
):
    other = connect_as_app()
    other.execute(f"SET lock_timeout = '{LOCK_TIMEOUT}'")
    with acting(other, desks["bob"]):
        booked = book(other, orders["beta"], "beside-the-batch")
    with acting(other, desks["bob"]):
        other.execute("SELECT 1 FROM trading_cancel_order(%s, 'beside the batch')",
                      [orders["beta-to-cancel"].pk])  # fmt: skip

    # Bob's writes are committed and audited; alice's batch is still open (not visible).
    assert Execution.objects.filter(pk=booked, account=desks["beta"]).exists()
    assert audited("trading_execution", booked, "INSERT")
    cancelled = Order.objects.get(pk=orders["beta-to-cancel"].pk)
    assert cancelled.status == Order.Status.CANCELLED
    assert audited("trading_order", cancelled.pk, "UPDATE", status=Order.Status.CANCELLED)
    assert not Execution.objects.filter(pk__in=open_batch).exists()


def test_the_sealer_links_around_an_open_batch(desks, orders, connect_as_app):
    holder = connect_as_app()
    with acting(holder, desks["alice"]):
        batch = [book(holder, orders["alpha"], f"open-{n}") for n in range(BATCH)]
        head_before, linked_before = link()
    assert linked_before > 0  # the committed fixtures' entries, linked around the open batch

    # Committed now: the next round links the batch's entries after those linked before.
    _, linked_after = link()
    entries = AuditEntry.objects.filter(table_name="trading_execution", row_key__in=map(str, batch))
    assert linked_after >= BATCH
    assert entries.count() == BATCH
    assert not entries.filter(seq__isnull=True).exists()
    assert not entries.filter(seq__lte=head_before).exists()


def link() -> tuple[int, int]:
    """One linking round of the sealer (the owner's ``qvp_audit_link``), under the lock
    timeout: the chain's head position after it, and how many entries it linked."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
        cursor.execute("SELECT head_seq, linked FROM qvp_audit_link()")
        head, linked = cursor.fetchone()
    return int(head), int(linked)
