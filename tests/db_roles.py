"""Switching the test connection's database role, on one node and on a Citus cluster.

Citus refuses, in one transaction, a shard written as one role and then read or written as
another: each role reaches the workers over connections of its own, which would not see the
other's uncommitted rows. So on a cluster a test that switches role runs with its fixtures
committed (a transactional test): those that ask for ``db_role`` or ``as_app_role``, or are
marked ``switches_role`` (tests/conftest.py). One node keeps the test's transaction.

In such a test on Citus there is no enclosing transaction, so ``SET LOCAL ROLE`` outside an
explicit ``transaction.atomic()`` would last one statement: ``acting`` uses SET ROLE.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.db import connection
from psycopg.pq import TransactionStatus

from qvp_site.db.quoting import ident


@contextlib.contextmanager
def acting(role: str) -> Iterator[None]:
    """The block runs as ``role``; undone by RESET ROLE, or by the rollback of a failed
    transaction (a SET made in it goes with it)."""
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {ident(role)}")
    try:
        yield
    finally:
        if _resettable():
            with connection.cursor() as cursor:
                cursor.execute("RESET ROLE")


def _resettable() -> bool:
    """Whether the connection can take RESET ROLE: not one the test closed (a new one starts
    as the owner), nor one in a transaction that failed or that Django will roll back (whose
    rollback undoes the SET); a RESET there would hide the test's own error."""
    held = connection.connection
    if held is None or held.closed or connection.needs_rollback:
        return False
    return held.info.transaction_status in (TransactionStatus.IDLE, TransactionStatus.INTRANS)
