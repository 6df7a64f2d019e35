"""Loading a file of executions: stage -> check in SQL -> book in file order, or nothing.

The file (CSV, or Parquet through the same reader) goes by COPY into the loading engine's
TEMP staging table (``qvp_site.loading.staging``), every field as text so that COPY never
refuses a value: SQL then parses each one and finds every bad line with all its reasons
(unparseable numbers and times, unknown accounts, orders and symbols, an order of another
account or instrument, a side against the sign of the quantity...). One bad line refuses the
file. A good file is booked in one call, in line order (``trading.books.book_query``, the way
the API and the admin book too): the database books the executions in file order (order,
position, cash; a file of fills checked and replayed by statement, trading/sql/books/0017.sql)
and refuses what breaks a rule that depends on the order of the rows (a fill beyond the
order's quantity); such a refusal names the line of its execution and rolls everything back.

An exec id names an execution within its account (the line's ``account``): the same exec id
in two accounts is two executions, and a bust or correction names one of its own account.
Executions already booked with the same terms are left alone (a file imported twice books
nothing the second time); with other terms they are refused. When a bust or a correction
names an execution of an earlier line, the ids of the new executions are taken from the
sequence before the insert, so that it may name it (the statement's snapshot would not see
it); otherwise the booking takes them, in line order, as it inserts.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass
from pathlib import Path

from django.db import DatabaseError, connection, transaction

from qvp_site.acting import acting_as
from qvp_site.audit_sealer import request_seal
from qvp_site.db.quoting import ident
from qvp_site.loading import staging
from qvp_site.loading.checks import Rejection, rejection
from qvp_site.loading.layout import Layout, StageColumn
from qvp_site.loading.progress import Progress
from qvp_site.loading.readers import ReadError, Source, open_source
from qvp_site.loading.refusals import refusal_message
from trading import books

ACTOR = "import_executions"
REQUIRED = (
    "exec_id",
    "account",
    "client_order_id",
    "symbol",
    "side",
    "quantity",
    "price",
    "executed_at",
)
# venue: where it traded, the venue's MIC or name (transaction cost analysis; blank: unknown).
OPTIONAL = ("fee", "liquidity", "venue", "kind", "supersedes", "reason")
ROWS = "qvp_execution_rows"
# The columns of ROWS its lookups and the booking's selection read (ANALYZE of every column
# of 20,000 lines took 0.1 s).
ANALYZED = ("line", "exec_id", "account_id", "supersedes", "supersedes_id", "existing_id")
# The numeric columns and the (precision, scale) of their table columns.
NUMBERS = {"quantity": (20, 8), "price": (20, 8), "fee": (24, 8)}
LENGTHS = {
    "exec_id": 64,
    "client_order_id": 64,
    "venue": 16,
    "supersedes": 64,
    "reason": 200,
}


class ImportRefused(Exception):
    """Nothing was booked: the file's bad lines, or a header that cannot be read."""


@dataclass
class ImportResult:
    file_name: str
    rows_read: int
    booked: int
    seconds: float

    @property
    def already_booked(self) -> int:
        return self.rows_read - self.booked


def import_executions(path: Path | str, progress: Progress) -> ImportResult:
    """Book the executions of ``path`` in file order, all or none (ImportRefused)."""
    started = time.monotonic()
    path = Path(path)
    try:
        source = open_source(path)
    except ReadError as error:
        raise ImportRefused(f"refused {path.name}: {error}") from error
    layout = _layout(source)
    try:
        with acting_as(ACTOR), connection.cursor() as cursor:
            # Times written without a zone are UTC, whatever the server's setting.
            cursor.execute("SELECT set_config('timezone', 'UTC', true)")
            rows_read = staging.load(cursor, source, layout, progress)
            cursor.execute(_rows_sql(layout))
            # Lines find each other by exec id within an account (repeats, busts of earlier
            # lines); TEMP tables are never analysed by autovacuum: ANALYZE what is read.
            cursor.execute(
                f"CREATE INDEX ON {ROWS} (exec_id, account_id, line);"
                f" ANALYZE {ROWS} ({', '.join(ANALYZED)})"
            )
            bad = _find_bad_rows(cursor)
            if bad.total:
                raise ImportRefused(refusal_message(source.name, source.position_label, bad))
            booked = _book(cursor, source)
            if booked:
                request_seal(cursor)  # the sealer signs the batch once it commits
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            staging.drop(cursor)
            cursor.execute(f"DROP TABLE IF EXISTS {ROWS}")
    return ImportResult(path.name, rows_read, booked, time.monotonic() - started)


def _layout(source: Source) -> Layout:
    """One staging column per field, named by the role its header gives; all text."""
    names = [h.strip().lower() for h in source.header]
    known = set(REQUIRED) | set(OPTIONAL)
    problems = []
    missing = [c for c in REQUIRED if c not in names]
    if missing:
        problems.append(f"missing columns {', '.join(missing)}")
    unknown = [h for h, n in zip(source.header, names, strict=True) if n not in known]
    if unknown:
        problems.append(f"unknown columns {', '.join(map(repr, unknown))}")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        problems.append(f"columns named twice: {', '.join(repeated)}")
    if problems:
        expected = ", ".join([*REQUIRED, *(f"[{c}]" for c in OPTIONAL)])
        raise ImportRefused(
            f"refused {source.name}: {'; '.join(problems)} (the header names {expected})"
        )
    columns = tuple(StageColumn(n, "text", h) for n, h in zip(names, source.header, strict=True))
    return Layout(columns=columns, roles={n: n for n in names}, ts_kind="text")


def _rows_sql(layout: Layout) -> str:
    """The staged lines typed and looked up: accounts, instruments, orders, and the execution
    already booked under the same exec id."""
    present = set(layout.roles)
    fields = ", ".join(
        f"NULLIF(btrim({ident(c)}), '') AS {c}" if c in present else f"NULL::text AS {c}"
        for c in (*REQUIRED, *OPTIONAL)
    )
    numbers = ", ".join(
        f"CASE WHEN pg_input_is_valid({c}, 'numeric') THEN {c}::numeric END AS {c}_n"
        for c in NUMBERS
    )
    return f"""
    CREATE TEMP TABLE {ROWS} AS
    WITH f AS (SELECT line, bad, {fields} FROM {staging.STAGE}),
    typed AS (
        SELECT f.*, {numbers},
               -- Digits required: 'yesterday' and 'now' are timestamps to PostgreSQL.
               CASE WHEN pg_input_is_valid(executed_at, 'timestamptz') AND executed_at ~ '[0-9]'
                    THEN executed_at::timestamptz END AS executed_at_t,
               lower(side) AS side_n, coalesce(lower(kind), 'fill') AS kind_n,
               coalesce(lower(liquidity), 'unknown') AS liquidity_n
        FROM f
    ),
    -- Each symbol is the instrument that bore it on the execution's (UTC) date: the security
    -- master's rule (marketdata_resolve_symbols), once per symbol and day of the file.
    days AS (
        SELECT DISTINCT symbol, (executed_at_t AT TIME ZONE 'UTC')::date AS on_date FROM typed
        WHERE symbol IS NOT NULL AND executed_at_t IS NOT NULL
    ),
    resolved AS (
        SELECT d.symbol, d.on_date, r.instrument_id, r.problem
        FROM days d CROSS JOIN LATERAL marketdata_resolve_symbols(ARRAY[d.symbol], d.on_date) r
    )
    SELECT t.*, coalesce(t.fee_n, 0) AS fee_v, a.id AS account_id, i.instrument_id,
           i.problem AS symbol_problem, o.id AS order_id, o.side AS order_side,
           o.status AS order_status, o.instrument_id AS order_instrument_id,
           oi.symbol AS order_symbol, s.id AS supersedes_id,
           x.id AS existing_id,
           (x.order_id, x.quantity, x.price, x.fee, x.kind, x.executed_at, x.supersedes_id)
             IS DISTINCT FROM (o.id, t.quantity_n, t.price_n, coalesce(t.fee_n, 0), t.kind_n,
                               t.executed_at_t, s.id) AS existing_differs,
           NULL::bigint AS id
    FROM typed t
    LEFT JOIN trading_account a ON a.name = t.account
    LEFT JOIN resolved i
      ON i.symbol = t.symbol AND i.on_date = (t.executed_at_t AT TIME ZONE 'UTC')::date
    LEFT JOIN trading_order o ON o.account_id = a.id AND o.client_order_id = t.client_order_id
    LEFT JOIN marketdata_instrument oi ON oi.id = o.instrument_id
    LEFT JOIN trading_execution s ON s.exec_id = t.supersedes AND s.account_id = a.id
    LEFT JOIN trading_execution x ON x.exec_id = t.exec_id AND x.account_id = a.id
    """


def _number_rules(column: str, precision: int, scale: int) -> list[tuple[str, str]]:
    text, value = column, f"{column}_n"
    digits = precision - scale
    return [
        (
            f"{text} IS NOT NULL AND {value} IS NULL",
            f"format('unparseable number in {column}: %L', {text})",
        ),
        (f"abs({value}) >= 'Infinity'", f"'{column} is not a finite number'"),
        (
            f"abs({value}) < 'Infinity' AND abs({value}) >= 1e{digits}",
            f"'{column} out of range (at most {digits} digits before the point)'",
        ),
        (
            f"abs({value}) < 'Infinity' AND scale({value}) > {scale}",
            f"'{column} has more than {scale} decimal places'",
        ),
    ]


# The rules of a line's values and references, after the missing and malformed fields.
RULES = [
    (
        "executed_at IS NOT NULL AND executed_at_t IS NULL",
        "format('unparseable time in executed_at: %L', executed_at)",
    ),
    (
        "executed_at_t < '1900-01-01' OR executed_at_t > now() + interval '1 day'",
        "format('time %s out of range', executed_at_t)",
    ),
    ("side_n NOT IN ('buy', 'sell')", "format('unknown side %L (buy or sell)', side)"),
    ("quantity_n = 0", "'quantity is zero'"),
    (
        "(side_n = 'buy' AND quantity_n < 0) OR (side_n = 'sell' AND quantity_n > 0)",
        "format('side %s does not match quantity %s (buys are positive)', side_n, quantity_n)",
    ),
    ("price_n <= 0", "format('price %s is not positive', price_n)"),
    ("fee_n < 0 AND kind_n <> 'bust'", "'negative fee (only a bust refunds one)'"),
    (
        "kind_n NOT IN ('fill', 'bust', 'correction')",
        "format('unknown kind %L (fill, bust or correction)', kind)",
    ),
    (
        "liquidity_n NOT IN ('added', 'removed', 'routed', 'auction', 'unknown')",
        "format('unknown liquidity %L', liquidity)",
    ),
    ("account IS NOT NULL AND account_id IS NULL", "format('unknown account %L', account)"),
    (
        "symbol IS NOT NULL AND executed_at_t IS NOT NULL AND instrument_id IS NULL",
        "coalesce(symbol_problem, format('unknown symbol %L', symbol))",
    ),
    (
        "account_id IS NOT NULL AND client_order_id IS NOT NULL AND order_id IS NULL",
        "format('no order %L in account %L', client_order_id, account)",
    ),
    (
        "instrument_id IS NOT NULL AND order_instrument_id <> instrument_id",
        "format('order %L is for %s, not %s', client_order_id, order_symbol, symbol)",
    ),
    (
        "kind_n <> 'bust' AND side_n <> order_side",
        "format('order %L is a %s order', client_order_id, order_side)",
    ),
    (
        "kind_n = 'fill' AND order_status IN ('cancelled', 'rejected', 'expired')",
        "format('order %L is %s and takes no fills', client_order_id, order_status)",
    ),
    ("kind_n = 'fill' AND supersedes IS NOT NULL", "'a fill supersedes nothing'"),
    (
        "kind_n IN ('bust', 'correction') AND supersedes IS NULL",
        "format('a %s names the execution it supersedes', kind_n)",
    ),
    (
        "supersedes IS NOT NULL AND supersedes_id IS NULL AND NOT EXISTS (SELECT 1 FROM"
        f" {ROWS} e WHERE e.exec_id = r.supersedes AND e.account_id = r.account_id"
        " AND e.line < r.line)",
        "format('supersedes %L, which is neither booked nor on an earlier line', supersedes)",
    ),
    (
        "existing_id IS NOT NULL AND existing_differs",
        "format('exec_id %s is booked already with other terms', exec_id)",
    ),
    (
        "first.line IS NOT NULL",
        "format('exec_id %s is on line %s with other terms', exec_id, first.line)",
    ),
]


def _rules() -> list[tuple[str, str]]:
    """(condition, reason) over the typed lines; a line is bad when a condition holds."""
    missing = ", ".join(f"CASE WHEN {c} IS NULL THEN '{c}' END" for c in REQUIRED)
    rules = [
        ("bad IS NOT NULL", "bad"),
        (
            f"bad IS NULL AND num_nulls({', '.join(REQUIRED)}) > 0",
            f"format('missing %s', concat_ws(', ', {missing}))",
        ),
    ]
    for column, (precision, scale) in NUMBERS.items():
        rules += _number_rules(column, precision, scale)
    for column, length in LENGTHS.items():
        rules.append((f"length({column}) > {length}", f"'{column} longer than {length}'"))
    return [*rules, *RULES]


def _find_bad_rows(cursor) -> Rejection:
    """Every bad line, with all its reasons, into the staging's REJECTED table."""
    rules = _rules()
    reasons = ", ".join(f"CASE WHEN {cond} THEN {reason} END" for cond, reason in rules)
    where = " OR ".join(f"({cond}) IS TRUE" for cond, _ in rules)
    terms = ("order_id", "quantity_n", "price_n", "fee_v", "kind_n", "executed_at_t", "supersedes")
    earlier, this = (", ".join(f"{row}.{t}" for t in terms) for row in ("e", "r"))
    cursor.execute(f"DROP TABLE IF EXISTS {staging.REJECTED}")
    # ``first``: the first line of an exec id repeated with other terms (the same execution
    # twice is booked once, like a re-import).
    cursor.execute(
        f"""
        CREATE TEMP TABLE {staging.REJECTED} AS
        SELECT r.line, concat_ws('; ', {reasons}) AS reason
        FROM {ROWS} r
        LEFT JOIN LATERAL (
            SELECT e.line FROM {ROWS} e
            WHERE e.exec_id = r.exec_id AND e.account_id = r.account_id AND e.line < r.line
              AND ({earlier}) IS DISTINCT FROM ({this})
            ORDER BY e.line LIMIT 1
        ) AS first ON true
        WHERE {where}
        """
    )
    return rejection(cursor, cursor.rowcount)


def _book(cursor, source: Source) -> int:
    """Book the new executions in file order (``trading.books``, as every door books them);
    a trigger's refusal names its line."""
    if _names_earlier_lines(cursor):
        _take_ids(cursor)
    try:
        with transaction.atomic():
            return books.book_query(cursor, BOOKED_VALUES, BOOKED_FROM)
    except DatabaseError as error:
        raise ImportRefused(_trigger_refusal(cursor, source, error)) from error


def _names_earlier_lines(cursor) -> bool:
    """Whether a new line supersedes an execution of an earlier line (not booked yet)."""
    cursor.execute(
        f"SELECT EXISTS (SELECT 1 FROM {ROWS} WHERE existing_id IS NULL"
        " AND supersedes IS NOT NULL AND supersedes_id IS NULL)"
    )
    (found,) = cursor.fetchone()
    return bool(found)


def _take_ids(cursor) -> None:
    """Ids for the new executions from the sequence, in line order, before the insert, for
    busts and corrections to name (``BOOKED_VALUES``' supersedes_id). Without them the booking
    takes the ids as it inserts, in the same order (trading_book_executions)."""
    # Ids in line order: the table's rows are in whatever order its joins produced them, and
    # the executions' ids (their booking order, as the admin and the API list them) follow.
    cursor.execute(
        f"""
        UPDATE {ROWS} r SET id = n.id
        FROM (SELECT line, nextval(pg_get_serial_sequence('trading_execution', 'id')) AS id
              FROM (SELECT line FROM {ROWS} WHERE existing_id IS NULL ORDER BY line) o) n
        WHERE r.line = n.line
        """
    )


# Each booked column from a staged line (``r``); a bust or a correction may name the
# execution of an earlier line, by the id taken for it from the sequence.
BOOKED_VALUES = {
    "id": "r.id",
    "exec_id": "r.exec_id",
    "order_id": "r.order_id",
    "account_id": "r.account_id",
    "instrument_id": "r.instrument_id",
    "side": "r.side_n",
    "quantity": "r.quantity_n",
    "price": "r.price_n",
    "fee": "r.fee_v",
    "liquidity": "r.liquidity_n",
    # Booked where the books name the column (trading.books.COLUMNS).
    "venue": "coalesce(r.venue, '')",
    "executed_at": "r.executed_at_t",
    "kind": "r.kind_n",
    "supersedes_id": (
        f"coalesce(r.supersedes_id, (SELECT e.id FROM {ROWS} e"
        " WHERE e.exec_id = r.supersedes AND e.account_id = r.account_id"
        " ORDER BY e.line LIMIT 1))"
    ),
    "reason": "coalesce(r.reason, '')",
}
# The new lines (an execution booked already with the same terms is left alone).
BOOKED_FROM = f"FROM {ROWS} r WHERE r.existing_id IS NULL ORDER BY r.line"


def _trigger_refusal(cursor, source: Source, error: DatabaseError) -> str:
    """The database's message, with the line of the execution it names (``execution X:``)."""
    diag = getattr(error.__cause__, "diag", None)
    message = (diag and diag.message_primary) or str(error)
    cursor.execute(
        f"SELECT min(line) FROM {ROWS} WHERE starts_with(%s, 'execution ' || exec_id || ':')",
        [message],
    )
    (line,) = cursor.fetchone()
    if line is None:
        return f"refused {source.name}: {message}; nothing written"
    only = Rejection(total=1, first=[(line, message)])
    return refusal_message(source.name, source.position_label, only)
