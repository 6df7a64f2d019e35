"""The checks a staged file passes before anything is written: one set-based statement that
finds every bad row, with its line and all its reasons, into a TEMP table.

The rules are the tables' own CHECK constraints, restated so that a refusal names the line,
plus what a constraint cannot see: unparseable fields, NaN and infinities (NaN compares above
every number in PostgreSQL, so ``open > 0`` lets it through), times far outside any market's
history, and the same time twice in one file.
"""

from __future__ import annotations

from marketdata.ingest.targets import ROLE_TYPES, Target
from qvp_site.db.quoting import ident
from qvp_site.loading.checks import Rejection, rejection
from qvp_site.loading.layout import Layout
from qvp_site.loading.staging import REJECTED, STAGE

_SIDE_SQL = (
    "CASE COALESCE(lower(btrim({c})), '') WHEN 'buy' THEN 'buy' WHEN 'b' THEN 'buy'"
    " WHEN 'sell' THEN 'sell' WHEN 's' THEN 'sell' WHEN '' THEN '' WHEN 'unknown' THEN '' END"
)

_COMMON_RULES = [
    ("bad IS NOT NULL", "bad"),
    ("ts IS NULL AND bad IS NULL", "'no time'"),
    (
        "ts < timestamptz '1900-01-01 00:00+00' OR ts > now() + interval '1 year'",
        "format('time %s out of range', ts)",
    ),
]

_BAR_RULES = [
    *[(f"{r} IS NULL AND bad IS NULL", f"'no {r}'") for r in ("open", "high", "low", "close")],
    # NaN sorts above Infinity, so one comparison finds both.
    (
        "GREATEST(open, high, low, close, volume, vwap) >= 'Infinity'",
        "'a value is not a finite number'",
    ),
    ("LEAST(open, high, low, close) <= 0", "'price not positive'"),
    ("high < GREATEST(open, close, low)", "'high below open, close or low'"),
    ("low > LEAST(open, close)", "'low above open or close'"),
    ("volume < 0", "'negative volume'"),
    ("vwap <= 0", "'vwap not positive'"),
    ("trade_count < 0", "'negative trade count'"),
]

_TICK_RULES = [
    (
        "GREATEST(price, size, bid, ask, bid_size, ask_size) >= 'Infinity'",
        "'a value is not a finite number'",
    ),
    ("LEAST(price, bid, ask) <= 0", "'price not positive'"),
    ("LEAST(size, bid_size, ask_size) < 0", "'negative size'"),
    ("bid > ask", "'bid above ask'"),
    (
        "price IS NULL AND bid IS NULL AND ask IS NULL AND bad IS NULL",
        "'no price, bid or ask'",
    ),
    ("price IS NOT NULL AND size IS NULL AND bad IS NULL", "'trade without a size'"),
    ("side IS NULL", "format('unknown side %L', side_raw)"),
]


def rows_sql(layout: Layout, target: Target, tz: str) -> str:
    """The staged rows as the target's roles: one column per role, NULL where the file has
    none, the time computed and the side normalised."""
    items = ["line", "bad", f"{layout.ts_sql(tz)} AS ts"]
    for role in target.roles:
        column = layout.roles.get(role)
        if role == "side":
            source = ident(column) if column else "NULL::text"
            items += [f"{_SIDE_SQL.format(c=source)} AS side", f"{source} AS side_raw"]
        elif column:
            items.append(f"{ident(column)} AS {role}")
        else:
            items.append(f"NULL::{ROLE_TYPES[role]} AS {role}")
    return f"SELECT {', '.join(items)} FROM {STAGE}"


def find_bad_rows(
    cursor, layout: Layout, target: Target, tz: str, *, duplicates: bool, label: str = "line"
) -> Rejection:
    """Find every bad row into the REJECTED table (position, reason) and summarise them.

    ``duplicates`` adds the search for a key seen twice in the file, which costs a hash of
    every key; the caller may leave it to the unique index when nothing is to be skipped.
    """
    cursor.execute(f"DROP TABLE IF EXISTS {REJECTED}")
    rules = _rules(layout, target)
    ctes = [f"s AS ({rows_sql(layout, target, tz)})"]
    join = ""
    dup_key = _duplicate_key(layout, target) if duplicates else None
    if dup_key:
        key, what = dup_key
        # d's columns are renamed so that the rules' unqualified names stay s's own.
        renamed = ", ".join(f"{k} AS dup_{k}" for k in key)
        ctes.append(
            f"d AS (SELECT {renamed}, min(line) AS first_line FROM s"
            f" GROUP BY {', '.join(key)} HAVING count(*) > 1)"
        )
        on = " AND ".join(f"d.dup_{k} = s.{k}" for k in key)
        join = f" LEFT JOIN d ON {on} AND s.line > d.first_line"
        rules.append(
            ("d.first_line IS NOT NULL", f"format('{what}, first at {label} %s', d.first_line)")
        )
    reasons = ", ".join(f"CASE WHEN {cond} THEN {reason} END" for cond, reason in rules)
    where = " OR ".join(f"({cond}) IS TRUE" for cond, _ in rules)
    cursor.execute(
        f"CREATE TEMP TABLE {REJECTED} AS WITH {', '.join(ctes)}"
        f" SELECT s.line, concat_ws('; ', {reasons}) AS reason FROM s{join} WHERE {where}"
    )
    return rejection(cursor, cursor.rowcount)


def _rules(layout: Layout, target: Target) -> list[tuple[str, str]]:
    rules = list(_COMMON_RULES)
    if target.is_bars:
        rules += _BAR_RULES
    else:
        rules += _TICK_RULES
        if "sequence" in layout.roles:
            rules.append(("sequence IS NULL AND bad IS NULL", "'no trade id'"))
    return rules


def _duplicate_key(layout: Layout, target: Target) -> tuple[tuple[str, ...], str] | None:
    """(key columns, what a repeated key is called), or None when the file cannot repeat a
    key (ticks numbered by their position among rows of the same time)."""
    if target.is_bars:
        return ("ts",), "duplicate time"
    if "sequence" in layout.roles:
        return ("ts", "sequence"), "duplicate trade id at the same time"
    return None
