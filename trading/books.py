"""Booking executions: the one way an execution enters the books, whatever the door (the API,
the admin, ``import_executions``).

The database keeps the books (``trading/sql/books/``): the owner's
``trading_book_executions`` checks each execution against its order and moves the order, the
position and the cash in the same statement, and refuses what breaks a rule, naming it. Every
door books through this module, with one call of it (the executions of ``COLUMNS`` as arrays,
in booking order; an execution booked already with the same terms is skipped, so a replay
returns no id), so they book alike and are refused alike. A batch of plain fills is checked and
replayed set-based, in one INSERT (trading/sql/books/0017.sql); a bust, a correction or a
replay is booked row by row by the trigger, which also books what is inserted into the table
directly (``INSERT``):

- ``book(row)``: one execution (the admin's add form, a bust);
- ``book_many(rows)``: executions given by value, in their order (the API's fills);
- ``book_query(cursor, values, source)``: the executions a query yields, in its order
  (``import_executions``' staged file: one statement for the whole file);
- ``bust(original)``: the execution that cancels ``original`` (the API and the admin's bust),
  refused ahead of the database, by the database's rule names, when ``original`` is a bust or
  was superseded already (``qvp_site.refusals.RuleRefusal``).

Orders are cancelled and cash is added by the owner's functions too (``cancel_order``,
``add_cash``): the application's role may not update an order nor insert a cash entry itself,
so that nothing but the books writes fills, statuses driven by fills, or trade and fee cash.
An exec id is unique within its account: every lookup by exec id names the account too.

Corporate actions are applied to the positions by the owner's ``trading_apply_actions``
(``apply_actions``; ``manage.py apply_actions`` daily): an entry per position, the position and
the cash it books, in one transaction; ``actions_left_out`` names the positions it left out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from django.db import connection
from django.utils import timezone

from qvp_site.db.quoting import ident
from qvp_site.refusals import RuleRefusal
from trading.models import Execution, Order, Side

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

# The columns an execution is inserted with; the database sets the rest (position sequence,
# where the order and position stood after it, created_at). Inserted by SQL because the
# trigger skips a replay: no row comes back, which the ORM's create() cannot take.
COLUMNS = (
    "exec_id",
    "order_id",
    "account_id",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "fee",
    "liquidity",
    "venue",
    "executed_at",
    "kind",
    "supersedes_id",
    "reason",
)
TABLE = ident(Execution._meta.db_table)
# A direct insert, booked row by row by the trigger (what the application's role may still do).
INSERT = "INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id".format(
    table=TABLE,
    columns=", ".join(ident(c) for c in COLUMNS),
    values=", ".join(["%s"] * len(COLUMNS)),
)
MAX_EXEC_ID = 64
# The SQL type of each argument of trading_book_executions (the id, then ``COLUMNS``).
TYPES = {
    "id": "bigint",
    "exec_id": "text",
    "order_id": "bigint",
    "account_id": "bigint",
    "instrument_id": "bigint",
    "side": "text",
    "quantity": "numeric",
    "price": "numeric",
    "fee": "numeric",
    "liquidity": "text",
    "venue": "text",
    "executed_at": "timestamptz",
    "kind": "text",
    "supersedes_id": "bigint",
    "reason": "text",
}
ARGUMENTS = ("id", *COLUMNS)
BOOK = "SELECT * FROM trading_book_executions({})".format(
    ", ".join(f"%s::{TYPES[c]}[]" for c in ARGUMENTS)
)


def book(row: Mapping[str, object]) -> int | None:
    """Book one execution (a value for each of ``COLUMNS``): its id, or None for a replay of
    one booked already with the same terms."""
    booked = book_many([row])
    return booked[0] if booked else None


def book_many(rows: Sequence[Mapping[str, object]]) -> list[int]:
    """Book ``rows`` (a value for each of ``COLUMNS``, and an ``id`` or not) in their order,
    in one call, all or none: the ids of those booked (a replay is skipped, no id)."""
    if not rows:
        return []
    params: list[Any] = [[row.get("id") for row in rows]]
    params += [[row[c] for row in rows] for c in COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(BOOK, params)
        return [int(found) for (found,) in cursor.fetchall()]


def book_query(cursor: CursorWrapper, values: Mapping[str, str], source: str) -> int:
    """Book the executions a query yields, in its order, in one call: ``values`` gives an SQL
    expression for each of ``COLUMNS`` (and may give the ``id``), ``source`` the query's
    ``FROM ... ORDER BY ...``. How many were booked."""
    missing = [c for c in COLUMNS if c not in values]
    if missing:
        raise ValueError(f"no value for {', '.join(missing)}")
    typed = ", ".join(
        f"({values[c]})::{TYPES[c]} AS {c}" if c in values else f"NULL::bigint AS {c}"
        for c in ARGUMENTS
    )
    # Numbered as the source's ORDER BY yields them: the arrays keep that order.
    arrays = ", ".join(f"array_agg(b.{c} ORDER BY b.n) AS {c}" for c in ARGUMENTS)
    cursor.execute(
        f"SELECT count(*) FROM (SELECT {arrays} FROM (SELECT row_number() OVER () AS n, s.*"
        f" FROM (SELECT {typed} {source}) s) b) a"
        f" CROSS JOIN LATERAL trading_book_executions({', '.join(f'a.{c}' for c in ARGUMENTS)})"
    )
    (booked,) = cursor.fetchone()
    return int(booked)


def fill_row(
    order: Order,
    exec_id: str,
    quantity: Decimal,
    price: Decimal,
    executed_at: datetime,
    **terms: object,
) -> dict[str, object]:
    """A fill of ``order``: its account, instrument and side are the order's; ``terms`` may
    give ``fee``, ``liquidity`` and ``reason``."""
    return {
        "exec_id": exec_id,
        "order_id": order.pk,
        "account_id": order.account_id,
        "instrument_id": order.instrument_id,
        "side": order.side,
        "quantity": quantity,
        "price": price,
        "fee": terms.get("fee", Decimal(0)),
        "liquidity": terms.get("liquidity", Execution.Liquidity.UNKNOWN),
        "venue": terms.get("venue", ""),
        "executed_at": executed_at,
        "kind": Execution.Kind.FILL,
        "supersedes_id": None,
        "reason": terms.get("reason", ""),
    }


def row_of(execution: Execution) -> dict[str, object]:
    """An unsaved Execution's values (the admin's add form) as a row to book."""
    return {column: getattr(execution, column) for column in COLUMNS}


def bust_row(original: Execution, exec_id: str, reason: str) -> dict[str, object]:
    """The mirror of ``original`` that cancels it (the database checks it mirrors)."""
    return {
        "exec_id": exec_id,
        "order_id": original.order_id,
        "account_id": original.account_id,
        "instrument_id": original.instrument_id,
        "side": Side.SELL if original.side == Side.BUY else Side.BUY,
        "quantity": -original.quantity,
        "price": original.price,
        "fee": -original.fee,
        "liquidity": original.liquidity,
        "venue": original.venue,
        "executed_at": timezone.now(),
        "kind": Execution.Kind.BUST,
        "supersedes_id": original.pk,
        "reason": reason,
    }


def default_bust_id(original: Execution) -> str:
    exec_id = f"{original.exec_id}-bust"
    return exec_id if len(exec_id) <= MAX_EXEC_ID else f"bust-{original.pk}"


def refuse_bust(original: Execution) -> None:
    """The database's rules on busts, ahead of it, with its rule names: the refusal names the
    execution that superseded ``original`` (which the trigger does not)."""
    if original.kind == Execution.Kind.BUST:
        message = f"execution {original.exec_id} is a bust; it cannot be busted"
        raise RuleRefusal(message, "execution_supersedes_same_order")
    later = Execution.objects.filter(supersedes=original).first()
    if later is not None:
        message = f"execution {original.exec_id} was already busted or corrected by {later.exec_id}"
        raise RuleRefusal(message, "execution_superseded_once", conflict=True)


def bust(original: Execution, exec_id: str | None = None, reason: str = "") -> str:
    """Book the bust of ``original`` (under ``exec_id``, by default ``<original>-bust``): the
    order, the position and the cash are restored. Its exec id."""
    refuse_bust(original)
    exec_id = exec_id or default_bust_id(original)
    book(bust_row(original, exec_id, reason))
    return exec_id


def cancel_order(order_id: int, reason: str = "") -> None:
    """Cancel the order by the owner's ``trading_cancel_order``, which checks that the acting
    user may trade its account; the database judges the transition
    (``order_legal_transition``). An order cancelled already is left as it is."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM trading_cancel_order(%s, %s)", [order_id, reason])


def add_cash(
    account_id: int,
    kind: str,
    amount: Decimal,
    *,
    currency: str | None = None,
    entry_at: datetime | None = None,
    note: str = "",
) -> int:
    """Add a deposit, withdrawal or adjustment by the owner's ``trading_add_cash`` (the
    account's currency and now unless given), which checks that the acting user may trade the
    account; trade and fee entries are refused. The entry's id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT id FROM trading_add_cash(%s, %s, %s, %s, %s, %s)",
            [account_id, kind, amount, currency, entry_at, note],
        )
        (entry_id,) = cursor.fetchone()
    return int(entry_id)


# Current actions, their ex moments come, up to an ex-date, not applied to a position that held
# their instrument at the ex moment, and why (trading_action_blocked): what the replay cannot
# place. Positions that may have held it first (index checks), the holdings then last.
LEFT_OUT_SQL = """
WITH unapplied AS MATERIALIZED (
    SELECT p.account_id, a.instrument_id, a.kind, a.ex_date, x.ex_at,
           trading_action_blocked(p.account_id, a.instrument_id, a.new_instrument_id, a.kind,
                                  x.ex_at) AS why
    FROM marketdata_actions_known_at(NULL) a
    CROSS JOIN LATERAL (SELECT marketdata_ex_moment(a.instrument_id, a.ex_date) AS ex_at) x
    JOIN trading_position p ON p.instrument_id = a.instrument_id
    WHERE (%(through)s::date IS NULL OR a.ex_date <= %(through)s::date) AND x.ex_at <= now()
      AND trading_may_hold(p.account_id, p.instrument_id, p.quantity, x.ex_at)
      AND NOT trading_action_applied(p.account_id, a.instrument_id, a.kind, a.ex_date)
)
SELECT acc.name, i.symbol, u.kind, u.ex_date, u.why FROM unapplied u
JOIN trading_account acc ON acc.id = u.account_id
JOIN marketdata_instrument i ON i.id = u.instrument_id
WHERE u.why IS NOT NULL
  AND EXISTS (SELECT 1 FROM trading_held_at(u.account_id, u.ex_at - interval '1 us') h
              WHERE h.instrument_id = u.instrument_id)
ORDER BY u.ex_date, acc.name, i.symbol, u.kind
"""


def apply_actions(through: date | None = None, refused: list[str] | None = None) -> int:
    """Apply the current corporate actions whose ex moments have come, with an ex-date up to
    ``through`` (default: any), to the positions not applied yet, by the owner's
    ``trading_apply_actions`` (entries, positions and cash in the database;
    trading/sql/actions/0014.sql). How many entries; an action the books refused (each alone,
    the others still applied) is named in ``refused``, from the function's WARNING."""
    warnings: list[str] = []

    def heard(diagnostic: Any) -> None:
        if diagnostic.severity_nonlocalized == "WARNING":
            warnings.append(str(diagnostic.message_primary))

    connection.ensure_connection()
    raw = connection.connection
    raw.add_notice_handler(heard)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT trading_apply_actions(%s)", [through])
            (written,) = cursor.fetchone()
    finally:
        raw.remove_notice_handler(heard)
    if refused is not None:
        refused.extend(warnings)
    return int(written)


def actions_left_out(through: date | None = None) -> list[tuple[str, str, str, date, str]]:
    """(account, symbol, kind, ex-date, why) of the actions whose ex moments have come, with an
    ex-date up to ``through`` (default: any), that the books cannot apply to a position that
    held their instrument at the ex moment (``trading_action_blocked`` says why)."""
    with connection.cursor() as cursor:
        cursor.execute(LEFT_OUT_SQL, {"through": through})
        return [tuple(row) for row in cursor.fetchall()]
