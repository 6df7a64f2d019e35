"""Loading corporate actions: stage -> check in SQL -> state each action through the owner's
``marketdata_action_set``, all or nothing. One pipeline for both doors: ``manage.py
ingest_actions`` stages a CSV file by COPY, ``POST /api/v1/corporate-actions/`` stages the
items it read (``marketdata/api_actions.py``), and the same statements check and apply them.

Every field is staged as text, so that SQL finds every bad line with all its reasons at once,
each naming its field (``line N: field: reason``). A line names its instrument by ``symbol``
(the instrument that bore it on the ex-date, ``marketdata_resolve_symbols``; unknown or
ambiguous symbols are refused naming the symbol, the date and the candidates) or by
``instrument`` (its id); a spin-off names the new instrument by ``new_symbol`` (also as of the
ex-date) or ``new_instrument``. What each kind must and must not state mirrors the table's
CHECK constraints (``marketdata.models.action_constraints``), so that a refusal names the line
and the field before the database would refuse the whole statement without them.

A good file is applied in one statement calling ``marketdata_action_set`` per line: an action
known already is ``unchanged``, one with other terms is ``restated`` (the version it replaces
is kept, closed with ``known_until``), a new one ``inserted``; loading a file twice changes
nothing the second time.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DatabaseError, connection, models, transaction

from marketdata.listings_load import CODES
from marketdata.models import ActionKind, CorporateAction
from qvp_site.acting import acting_as
from qvp_site.audit_sealer import request_seal
from qvp_site.db.quoting import ident, literal
from qvp_site.loading import staging
from qvp_site.loading.checks import Rejection, rejection
from qvp_site.loading.layout import Layout, StageColumn
from qvp_site.loading.progress import NoProgress, Progress
from qvp_site.loading.readers import ReadError, Source, open_source
from qvp_site.loading.refusals import IngestRefused, refusal_message

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

ACTOR = "ingest_actions"
# A line names its instrument by one of these (symbol, as of the ex-date, or id).
NAMES = ("symbol", "instrument")
REQUIRED = ("kind", "ex_date")
TERMS = ("ratio", "amount", "currency", "pay_date", "new_symbol", "cost_fraction", "final_price")
OPTIONAL = (*TERMS, "new_instrument")
COLUMNS = (*NAMES, *REQUIRED, *OPTIONAL)
OUTCOMES = ("inserted", "restated", "unchanged")

ROWS = "qvp_action_rows"
SYMBOLS = "qvp_action_symbols"
PROBLEMS = "qvp_action_problems"

KINDS = tuple(ActionKind.values)
LABELS = dict(ActionKind.choices)
# What each kind states (the rest it must leave empty); pay_date a cash dividend may state.
# A spin-off's new instrument is new_symbol or new_instrument: checked as "new_symbol".
MUST: dict[str, tuple[str, ...]] = {
    ActionKind.SPLIT: ("ratio",),
    ActionKind.CASH_DIVIDEND: ("amount", "currency"),
    ActionKind.STOCK_DIVIDEND: ("ratio",),
    ActionKind.SPIN_OFF: ("ratio", "new_symbol", "cost_fraction"),
    ActionKind.DELISTING: ("final_price",),
}
MAY: dict[str, tuple[str, ...]] = {ActionKind.CASH_DIVIDEND: ("pay_date",)}
NUMBERS = ("ratio", "amount", "cost_fraction", "final_price")
# A decimal as written by people and vendors: no NaN nor infinities, which numeric accepts.
NUMBER_RE = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,3})?$"
# A split written as shares for shares: 3:2, 3-for-2, 3 for 2, 3/2 (= 1.5); 1:10 (= 0.1).
RATIO_RE = r"^([0-9]+(\.[0-9]+)?)\s*(:|/|-?\s*for\s*-?)\s*([0-9]+(\.[0-9]+)?)$"
DATE_RE = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$"
ID_RE = r"^[0-9]{1,18}$"


def column(name: str) -> models.DecimalField:
    """One of the table's number columns: a value beyond its digits and decimal places would
    be refused or rounded by the database, and a rounded one restated at every load."""
    found = CorporateAction._meta.get_field(name)
    assert isinstance(found, models.DecimalField), name
    return found


def _digits(name: str) -> tuple[int, int]:
    """The column's (max_digits, decimal_places)."""
    found = column(name)
    return int(found.max_digits or 0), int(found.decimal_places or 0)


@dataclass
class ActionsLoaded:
    """What a load did: each staged line's outcome (inserted, restated, unchanged)."""

    name: str
    rows_read: int
    dry_run: bool = False
    outcomes: dict[int, str] = dataclasses.field(default_factory=dict)
    # Each line's action as now current (the id of the version it inserted or found).
    action_ids: dict[int, int] = dataclasses.field(default_factory=dict)

    @property
    def counts(self) -> Counter[str]:
        return Counter(self.outcomes.values())

    @property
    def changed(self) -> int:
        return self.counts["inserted"] + self.counts["restated"]


@dataclass(frozen=True)
class Problem:
    """A bad staged line: its position (a file's line, a batch's row from 1), the field and
    why."""

    position: int
    field: str
    reason: str


class ActionsRefused(IngestRefused):
    """The actions were not stated: every problem, by position and field."""

    def __init__(self, message: str, rejected: int, problems: list[Problem]):
        rows = [(p.position, f"{p.field}: {p.reason}" if p.field else p.reason) for p in problems]
        super().__init__(message, rejected, rows)
        self.problems = problems


# --- The doors ---------------------------------------------------------------------------
def load_actions(
    path: Path | str, dry_run: bool = False, progress: Progress | None = None
) -> ActionsLoaded:
    """State the actions of the CSV file ``path``, as the command ``ingest_actions`` acts
    (ActionsRefused, naming each bad line and field, when any line is bad). A dry run checks
    and applies everything, then rolls it back."""
    path = Path(path)
    try:
        source = open_source(path)
    except ReadError as error:
        raise IngestRefused(f"refused {path.name}: {error}") from error
    with acting_as(ACTOR):
        result = state_actions(source, progress)
        if dry_run:
            result.dry_run = True
            transaction.set_rollback(True)
    return result


def state_actions(source: Source, progress: Progress | None = None) -> ActionsLoaded:
    """Stage ``source`` (a file, or rows in memory), check every line, and state them all in
    the caller's transaction as whoever it names (a command, a request's user); refused whole
    (ActionsRefused) when any line is bad. The staging tables are dropped afterwards."""
    layout = _layout(source)
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            rows_read = staging.load(cursor, source, layout, progress or NoProgress())
            _stage_rows(cursor, layout)
            bad = _find_bad_rows(cursor)
            if bad.total:
                problems = _problems(cursor)
                message = refusal_message(source.name, source.position_label, bad)
                raise ActionsRefused(message, bad.total, problems)
            result = ActionsLoaded(source.name, rows_read, outcomes=_apply(cursor, source))
            result.action_ids = _current_ids(cursor)
            if result.changed:
                request_seal(cursor)  # the sealer signs the versions once they commit
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            staging.drop(cursor)
            cursor.execute(f"DROP TABLE IF EXISTS {ROWS}, {SYMBOLS}, {PROBLEMS}")
    return result


def describe(result: ActionsLoaded) -> str:
    """The report of a load: its counts of actions inserted, restated and unchanged."""
    counts = result.counts
    rows = "row" if result.rows_read == 1 else "rows"
    total = f"{result.name}: {result.rows_read} {rows}, " + ", ".join(
        f"{counts[o]} {o}" for o in OUTCOMES
    )
    return total + (" (dry run: nothing written)" if result.dry_run else "")


# --- The header ------------------------------------------------------------------------------
def _layout(source: Source) -> Layout:
    """One text staging column per field, each a column this loader knows."""
    problems: list[str] = []
    seen: list[str] = []
    for header in source.header:
        name = header.strip().lower()
        if name not in COLUMNS:
            problems.append(f"unknown column {header!r}")
        elif name in seen:
            problems.append(f"column {name} named twice")
        seen.append(name)
    missing = [c for c in REQUIRED if c not in seen]
    if not any(n in seen for n in NAMES):
        missing.insert(0, "symbol (or instrument)")
    if missing:
        problems.insert(0, f"missing columns {', '.join(missing)}")
    if problems:
        expected = ", ".join(["symbol", *REQUIRED, *(f"[{c}]" for c in OPTIONAL)])
        raise IngestRefused(
            f"refused {source.name}: {'; '.join(problems)} (the header names {expected})"
        )
    columns = tuple(
        StageColumn(name, "text", header) for name, header in zip(seen, source.header, strict=True)
    )
    return Layout(columns=columns, roles={c.name: c.name for c in columns}, ts_kind="text")


# --- Staging ---------------------------------------------------------------------------------
def _number_sql(name: str) -> str:
    """A field's value as numeric where it is a plain decimal (a ratio also as a:b, rounded
    to the column's scale as the database would store it)."""
    plain = f"CASE WHEN {name} ~ {literal(NUMBER_RE)} THEN {name}::numeric"
    if name != "ratio":
        return f"{plain} END"
    _, scale = _digits("ratio")
    parts = f"regexp_match({name}, {literal(RATIO_RE)}, 'i')"
    return (
        f"{plain} WHEN {name} ~* {literal(RATIO_RE)} THEN"
        f" round(({parts})[1]::numeric / NULLIF(({parts})[4]::numeric, 0), {scale}) END"
    )


def _date_sql(name: str) -> str:
    return (
        f"CASE WHEN {name} ~ {literal(DATE_RE)} AND pg_input_is_valid({name}, 'date')"
        f" THEN {name}::date END"
    )


def _id_sql(name: str) -> str:
    return f"CASE WHEN {name} ~ {literal(ID_RE)} THEN {name}::bigint END"


def _stage_rows(cursor: CursorWrapper, layout: Layout) -> None:
    """The staged lines typed where they parse, their symbols resolved as of each ex-date
    (one statement for every date), and the currency each instrument traded in then."""
    present = set(layout.roles)
    fields = ", ".join(
        f"NULLIF(btrim({ident(c)}), '') AS {c}" if c in present else f"NULL::text AS {c}"
        for c in COLUMNS
    )
    numbers = ", ".join(f"{_number_sql(n)} AS {n}_n" for n in NUMBERS)
    cursor.execute(
        f"""
        CREATE TEMP TABLE {ROWS} AS
        WITH f AS (SELECT line, bad, {fields} FROM {staging.STAGE})
        SELECT f.*,
               replace(replace(lower(kind), '-', '_'), ' ', '_') AS kind_v,
               {_date_sql("ex_date")} AS ex_d, {_date_sql("pay_date")} AS pay_d,
               {_id_sql("instrument")} AS instrument_n,
               {_id_sql("new_instrument")} AS new_instrument_n,
               {numbers},
               NULL::bigint AS instrument_id, NULL::bigint AS new_id, NULL::text AS traded_in
        FROM f
        """
    )
    cursor.execute(
        f"""
        CREATE TEMP TABLE {SYMBOLS} AS
        WITH named AS (
            SELECT ex_d, symbol AS s FROM {ROWS} WHERE symbol IS NOT NULL
            UNION SELECT ex_d, new_symbol FROM {ROWS} WHERE new_symbol IS NOT NULL
        ),
        wanted AS (
            SELECT ex_d, array_agg(s) AS symbols FROM named WHERE ex_d IS NOT NULL GROUP BY ex_d
        )
        SELECT w.ex_d, r.symbol, r.instrument_id, r.problem
        FROM wanted w CROSS JOIN LATERAL marketdata_resolve_symbols(w.symbols, w.ex_d, NULL) r;

        UPDATE {ROWS} r SET instrument_id = i.id
        FROM marketdata_instrument i WHERE r.symbol IS NULL AND i.id = r.instrument_n;
        UPDATE {ROWS} r SET instrument_id = s.instrument_id
        FROM {SYMBOLS} s WHERE r.instrument IS NULL AND s.ex_d = r.ex_d AND s.symbol = r.symbol;
        UPDATE {ROWS} r SET new_id = i.id
        FROM marketdata_instrument i WHERE r.new_symbol IS NULL AND i.id = r.new_instrument_n;
        UPDATE {ROWS} r SET new_id = s.instrument_id
        FROM {SYMBOLS} s
        WHERE r.new_instrument IS NULL AND s.ex_d = r.ex_d AND s.symbol = r.new_symbol;
        -- The currency of the instrument's terms on the ex-date, else of its row today.
        UPDATE {ROWS} r SET traded_in = coalesce(
            (SELECT l.currency FROM marketdata_listing l
             WHERE l.instrument_id = r.instrument_id AND l.known_until IS NULL
               AND daterange(l.valid_from, l.valid_until) @> r.ex_d
             LIMIT 1),
            i.currency)
        FROM marketdata_instrument i WHERE i.id = r.instrument_id;
        """
    )


# --- Checks ----------------------------------------------------------------------------------
def _kind_rules() -> list[tuple[str, str, str]]:
    """What each kind must state, and must not, as the CHECK constraints say. A spin-off's
    new instrument is ``new_symbol`` or ``new_instrument``: a refusal names the one given."""
    rules: list[tuple[str, str, str]] = []
    for name in TERMS:
        stating = [k for k in KINDS if name in MUST[k] or name in MAY.get(k, ())]
        only = " and ".join(f"{LABELS[k]}s" for k in stating)
        given = {name: f"{name} IS NOT NULL"}
        if name == "new_symbol":
            given["new_instrument"] = "new_instrument IS NOT NULL"
        what = "new_symbol (or new_instrument)" if name == "new_symbol" else name
        for kind in KINDS:
            label = LABELS[kind]
            if name in MUST[kind]:
                absent = " AND ".join(f"NOT ({g})" for g in given.values())
                rules.append(
                    (name, f"kind_v = '{kind}' AND {absent}", f"'a {label} states its {what}'")
                )
            elif kind not in stating:
                rules += [
                    (
                        column,
                        f"kind_v = '{kind}' AND {g}",
                        f"'a {label} has no {column} (only {only} do)'",
                    )
                    for column, g in given.items()
                ]
    return rules


def _digit_rules() -> list[tuple[str, str, str]]:
    """Numbers the column holds exactly: at most its decimal places and its whole digits."""
    rules = []
    for name in NUMBERS:
        digits, scale = _digits(name)
        hint = " (write a split of shares for shares as 3:2)" if name == "ratio" else ""
        rules += [
            (
                name,
                f"scale({name}_n) > {scale}",
                f"format('%s has more than {scale} decimal places{hint}', {name})",
            ),
            (
                name,
                f"abs({name}_n) >= 1e{digits - scale}",
                f"format('%s is too large (below 1e{digits - scale})', {name})",
            ),
        ]
    return rules


def _symbol_rule(column: str, id_column: str, resolved: str) -> list[tuple[str, str, str]]:
    """A symbol that names no single instrument on the ex-date, by the security master's own
    words (the symbol, the date, the candidates); an id that names none."""
    return [
        (
            column,
            f"{column} IS NOT NULL AND {id_column} IS NOT NULL",
            f"'give {column} or {id_column}, not both'",
        ),
        (
            column,
            f"{column} IS NOT NULL AND {id_column} IS NULL AND {resolved} IS NULL"
            " AND ex_d IS NOT NULL",
            f"(SELECT s.problem FROM {SYMBOLS} s WHERE s.ex_d = r.ex_d AND s.symbol = r.{column})",
        ),
        (
            id_column,
            f"{id_column} IS NOT NULL AND {id_column}_n IS NULL",
            f"format('%L is not an instrument id', {id_column})",
        ),
        (
            id_column,
            f"{id_column}_n IS NOT NULL AND {column} IS NULL AND {resolved} IS NULL",
            f"format('no instrument %s', {id_column}_n)",
        ),
    ]


CURRENCY_PATTERN, _ = CODES["currency"]

# The rules of a line by itself: (field, condition, reason) over the staged line ``r``.
ROW_RULES: list[tuple[str, str, str]] = [
    ("", "bad IS NOT NULL", "bad"),
    ("symbol", "symbol IS NULL AND instrument IS NULL", "'missing: give symbol (or instrument)'"),
    *_symbol_rule("symbol", "instrument", "instrument_id"),
    ("kind", "kind IS NULL", "'missing'"),
    (
        "kind",
        f"kind_v NOT IN ({', '.join(map(literal, KINDS))})",
        f"format('unknown kind %L ({', '.join(KINDS)})', kind)",
    ),
    ("ex_date", "ex_date IS NULL", "'missing'"),
    (
        "ex_date",
        "ex_date IS NOT NULL AND ex_d IS NULL",
        "format('bad date %L (YYYY-MM-DD)', ex_date)",
    ),
    (
        "pay_date",
        "pay_date IS NOT NULL AND pay_d IS NULL",
        "format('bad date %L (YYYY-MM-DD)', pay_date)",
    ),
    (
        "pay_date",
        "pay_d < ex_d",
        "format('%s is before ex_date %s (paid on or after it)', pay_d, ex_d)",
    ),
    (
        "ratio",
        "ratio IS NOT NULL AND ratio_n IS NULL",
        "format('not a ratio: %L (a number, or shares for shares: 3:2, 3-for-2, 1:10)', ratio)",
    ),
    *(
        (n, f"{n} IS NOT NULL AND {n}_n IS NULL", f"format('not a number: %L', {n})")
        for n in NUMBERS
        if n != "ratio"
    ),
    *_digit_rules(),
    ("ratio", "ratio_n <= 0", "format('%s is not positive', ratio)"),
    (
        "ratio",
        "ratio_n > 0 AND (ratio_n < 0.0001 OR ratio_n > 10000)",
        "format('%s is out of range: a ratio lies between 1:10000 and 10000:1', ratio)",
    ),
    ("ratio", "kind_v = 'split' AND ratio_n = 1", "'a split of 1 for 1 changes nothing'"),
    ("amount", "amount_n <= 0", "format('%s is not positive', amount)"),
    (
        "cost_fraction",
        "cost_fraction_n <= 0 OR cost_fraction_n >= 1",
        "format('%s is not between 0 and 1 (both excluded)', cost_fraction)",
    ),
    ("final_price", "final_price_n < 0", "format('%s is negative', final_price)"),
    (
        "currency",
        f"currency !~ {literal(CURRENCY_PATTERN)}",
        f"format('%L is not a currency code ({CURRENCY_PATTERN})', currency)",
    ),
    (
        "currency",
        f"kind_v = 'cash_dividend' AND currency ~ {literal(CURRENCY_PATTERN)}"
        " AND currency <> traded_in",
        "format('%s, but instrument %s (%s) trades in %s on %s', currency, instrument_id,"
        " coalesce(symbol, (SELECT i.symbol FROM marketdata_instrument i"
        " WHERE i.id = r.instrument_id)), traded_in, ex_d)",
    ),
    *_symbol_rule("new_symbol", "new_instrument", "new_id"),
    (
        "new_symbol",
        "new_id = instrument_id",
        "format('instrument %s is the instrument spun off from itself', new_id)",
    ),
    *_kind_rules(),
]


def _find_bad_rows(cursor: CursorWrapper) -> Rejection:
    """Every bad line with all its reasons, field by field, into PROBLEMS; their summary (one
    line each, ``field: reason; ...``) into the staging's REJECTED table."""
    reasons = " UNION ALL ".join(
        f"SELECT {rank}, {literal(name)}, ({why})::text WHERE ({cond}) IS TRUE"
        for rank, (name, cond, why) in enumerate(ROW_RULES)
    )
    cursor.execute(
        f"""
        CREATE TEMP TABLE {PROBLEMS} AS
        SELECT r.line, p.rank, p.field, p.reason
        FROM {ROWS} r CROSS JOIN LATERAL ({reasons}) AS p (rank, field, reason);
        {_repeated_sql()};
        CREATE TEMP TABLE {staging.REJECTED} AS
        SELECT line, string_agg(concat_ws(': ', NULLIF(field, ''), reason), '; '
                                ORDER BY rank, reason) AS reason
        FROM {PROBLEMS} GROUP BY line;
        """
    )
    cursor.execute(f"SELECT count(*) FROM {staging.REJECTED}")
    (total,) = cursor.fetchone()
    return rejection(cursor, total)


def _repeated_sql() -> str:
    """Two lines of one action (instrument, kind, ex-date): each names the other. Lines whose
    fields could not be told apart (a field more or less) take no part."""
    return f"""
    INSERT INTO {PROBLEMS} (line, rank, field, reason)
    SELECT r.line, {len(ROW_RULES)}, 'ex_date',
           format('a second %s of %s (instrument %s) on %s: line %s states it too', r.kind_v,
                  coalesce(r.symbol, i.symbol), r.instrument_id, r.ex_d,
                  string_agg(o.line::text, ', ' ORDER BY o.line))
    FROM {ROWS} r
    JOIN {ROWS} o
      ON o.instrument_id = r.instrument_id AND o.kind_v = r.kind_v AND o.ex_d = r.ex_d
     AND o.line <> r.line AND o.bad IS NULL
    JOIN marketdata_instrument i ON i.id = r.instrument_id
    WHERE r.bad IS NULL
    GROUP BY r.line, r.kind_v, r.symbol, i.symbol, r.instrument_id, r.ex_d
    """


def _problems(cursor: CursorWrapper) -> list[Problem]:
    """Every problem, by line and field (the API answers each item's fields)."""
    cursor.execute(f"SELECT line, field, reason FROM {PROBLEMS} ORDER BY line, rank, reason")
    return [Problem(*row) for row in cursor.fetchall()]


# --- Applying --------------------------------------------------------------------------------
def _apply(cursor: CursorWrapper, source: Source) -> dict[int, str]:
    """One statement states every line through the owner's function (the lines are checked:
    no two state one action, so their order does not matter). A refusal the checks missed
    names the database's rule."""
    try:
        with transaction.atomic():
            cursor.execute(
                f"""
                SELECT line, marketdata_action_set(instrument_id, kind_v, ex_d, ratio_n,
                           amount_n, coalesce(currency, ''), pay_d, new_id, cost_fraction_n,
                           final_price_n)
                FROM {ROWS} ORDER BY line
                """
            )
            return dict(cursor.fetchall())
    except DatabaseError as error:
        diag = getattr(error.__cause__, "diag", None)
        words = (diag and diag.message_primary) or str(error)
        raise IngestRefused(f"refused {source.name}: {words}, nothing written") from error


def _current_ids(cursor: CursorWrapper) -> dict[int, int]:
    """The id of each line's action as now current: one statement by the table's key."""
    cursor.execute(
        f"""
        SELECT r.line, a.id FROM {ROWS} r
        JOIN marketdata_corporateaction a
          ON a.instrument_id = r.instrument_id AND a.kind = r.kind_v AND a.ex_date = r.ex_d
         AND a.known_until IS NULL
        """
    )
    return dict(cursor.fetchall())


def staged_rows(items: list[dict[str, object]]) -> tuple[list[str], list[list[object]]]:
    """Items (the API's, by column name) as a header and rows for ``RowsSource.of``."""
    header = list(COLUMNS)
    return header, [[item.get(c) for c in header] for item in items]
