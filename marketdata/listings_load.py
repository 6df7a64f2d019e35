"""Loading the security master from a file: stage -> check in SQL -> state each instrument's
history through ``marketdata.security_master``, all or nothing.

The file (a CSV with a header) goes by COPY into the loading engine's TEMP staging table
(``qvp_site.loading.staging``), every field as text, so that SQL finds every bad line with all
its reasons at once. Its rows are grouped into instruments: by ``instrument`` (an existing id),
else ``figi``, else ``isin``, each group matched against the current versions of the existing
instruments in one statement (a group no instrument matches is a new instrument). Within a
group, the rows sorted by ``valid_from`` are the instrument's whole history: each holds until
the next one's ``valid_from`` (the last one still holds), and before the first one the
instrument had no terms. A symbol that two listed (or suspended) instruments would bear on one
day, among the file's rows or against an instrument the file leaves alone, refuses the lines
(the database's ``listing_one_bearer_a_day`` would refuse it anyway, without lines).

A good file is applied in one transaction by ``set_terms`` and ``clear``, which keep the
versions they replace (closed, ``known_until``): stating what is known already changes
nothing, so loading a file twice changes nothing the second time.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from django.db import DatabaseError, connection, transaction
from django.db.models import Q

from marketdata import security_master
from marketdata.models import Instrument, Listing
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

ACTOR = "ingest_listings"
REQUIRED = ("valid_from", "symbol", "currency", "status")
OPTIONAL = ("name", "mic", "isin", "figi", "asset_class", "instrument")
VENDOR_PREFIX = "vendor:"
ROWS = "qvp_listing_rows"
GROUPS = "qvp_listing_groups"
PROBLEMS = "qvp_listing_problems"
BEARER_RULE = "listing_one_bearer_a_day"
# An instrument's row takes the symbol of its version of today: two live rows may not share
# one, which a load may meet halfway through (a symbol passing from one company to another).
ROW_SYMBOL_RULE = "instrument_symbol_active"
STATUSES = tuple(Listing.Status.values)
ASSET_CLASSES = tuple(Instrument.AssetClass.values)
LENGTHS = {"symbol": 64, "name": 200}


def _code_pattern(constraint_name: str) -> str:
    """The regular expression of one of Listing's CHECK constraints on a code (currency, MIC,
    ISIN, FIGI): the loader and the API check what the database will, in the same words."""
    constraint = next(c for c in Listing._meta.constraints if c.name == constraint_name)
    condition = getattr(constraint, "condition", None)
    for child in getattr(condition, "children", ()):
        if isinstance(child, tuple) and child[0].endswith("__regex"):
            return str(child[1])
    raise LookupError(f"{constraint_name} holds no regular expression")


# Each code's pattern, and how a refusal names it.
CODES: dict[str, tuple[str, str]] = {
    "currency": (_code_pattern("listing_currency_code"), "currency code"),
    "mic": (_code_pattern("listing_mic_code"), "MIC"),
    "isin": (_code_pattern("listing_isin_code"), "ISIN"),
    "figi": (_code_pattern("listing_figi_code"), "FIGI"),
}


def code_problem(name: str, value: str) -> str | None:
    """Why ``value`` is no ``name`` code (currency, mic, isin, figi), or None."""
    pattern, noun = CODES[name]
    return None if re.match(pattern, value) else f"{value!r} is not a {noun} ({pattern})"


@dataclass
class Outcome:
    """What a load did to one instrument."""

    instrument_id: int
    symbol: str
    created: bool
    changed: int = 0

    def describe(self) -> str:
        if self.created:
            what = f"created, {self.changed} versions changed"
        elif self.changed:
            what = f"{self.changed} versions changed"
        else:
            what = "unchanged"
        return f"instrument {self.instrument_id} {self.symbol}: {what}"


@dataclass
class LoadResult:
    file_name: str
    rows_read: int
    dry_run: bool
    outcomes: list[Outcome] = field(default_factory=list)

    @property
    def versions_changed(self) -> int:
        return sum(o.changed for o in self.outcomes)


@dataclass(frozen=True)
class Version:
    """One row of the file: an instrument's terms from ``valid_from`` until ``valid_until``."""

    line: int
    valid_from: date | None
    valid_until: date | None
    terms: security_master.Terms


@dataclass
class Group:
    """The rows of one instrument, in date order."""

    key: str
    instrument_id: int | None
    asset_class: str
    versions: list[Version] = field(default_factory=list)


def load_listings(
    path: Path | str, dry_run: bool = False, progress: Progress | None = None
) -> LoadResult:
    """State the histories of ``path`` (IngestRefused, naming the bad lines, when any is bad).
    A dry run checks and applies everything, then rolls it back: it reports what would
    change and writes nothing."""
    path = Path(path)
    try:
        source = open_source(path)
    except ReadError as error:
        raise IngestRefused(f"refused {path.name}: {error}") from error
    layout, vendors = _layout(source)
    result = LoadResult(source.name, 0, dry_run)
    try:
        with acting_as(ACTOR), connection.cursor() as cursor:
            result.rows_read = staging.load(cursor, source, layout, progress or NoProgress())
            _stage_rows(cursor, layout, vendors)
            bad = _find_bad_rows(cursor)
            if bad.total:
                raise IngestRefused(
                    refusal_message(source.name, source.position_label, bad), bad.total, bad.first
                )
            groups = _groups(cursor)
            result.outcomes = _apply(groups, source)
            if dry_run:
                transaction.set_rollback(True)
            elif result.versions_changed:
                request_seal(cursor)  # the sealer signs the versions once they commit
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            staging.drop(cursor)
            cursor.execute(f"DROP TABLE IF EXISTS {ROWS}, {GROUPS}, {PROBLEMS}")
    return result


# --- The header ------------------------------------------------------------------------------
def _layout(source: Source) -> tuple[Layout, dict[str, str]]:
    """One text staging column per field, and the vendor of each ``vendor:<name>`` column (by
    its staging column)."""
    known = set(REQUIRED) | set(OPTIONAL)
    columns: list[StageColumn] = []
    vendors: dict[str, str] = {}
    problems: list[str] = []
    seen: set[str] = set()
    for position, header in enumerate(source.header):
        name = header.strip().lower()
        if name.startswith(VENDOR_PREFIX):
            vendor = header.strip()[len(VENDOR_PREFIX) :].strip()
            if not vendor:
                problems.append(f"column {position + 1} names no vendor ({header!r})")
            column = f"vendor_{position}"
            vendors[column] = vendor
            name = f"{VENDOR_PREFIX}{vendor}"
        elif name in known:
            column = name
        else:
            problems.append(f"unknown column {header!r}")
            column = f"unknown_{position}"
        if name in seen:
            problems.append(f"column {name} named twice")
        seen.add(name)
        columns.append(StageColumn(column, "text", header))
    missing = [c for c in REQUIRED if c not in seen]
    if missing:
        problems.insert(0, f"missing columns {', '.join(missing)}")
    if problems:
        expected = ", ".join([*REQUIRED, *(f"[{c}]" for c in OPTIONAL), "[vendor:<name>...]"])
        raise IngestRefused(
            f"refused {source.name}: {'; '.join(problems)} (the header names {expected})"
        )
    layout = Layout(columns=tuple(columns), roles={c.name: c.name for c in columns}, ts_kind="text")
    return layout, vendors


# --- Staging and checks ----------------------------------------------------------------------
def _stage_rows(cursor: CursorWrapper, layout: Layout, vendors: dict[str, str]) -> None:
    """The staged lines typed, keyed by the identifier that groups them, matched against the
    existing instruments (one statement for all groups), and each given its end: the next
    line's valid_from within its instrument."""
    present = set(layout.roles)
    fields = ", ".join(
        f"NULLIF(btrim({ident(c)}), '') AS {c}" if c in present else f"NULL::text AS {c}"
        for c in (*REQUIRED, *OPTIONAL)
    )
    pairs = ", ".join(
        f"{literal(vendor)}, NULLIF(btrim({ident(column)}), '')"
        for column, vendor in vendors.items()
    )
    vendor_ids = f"jsonb_strip_nulls(jsonb_build_object({pairs}))" if pairs else "'{}'::jsonb"
    cursor.execute(
        f"""
        CREATE TEMP TABLE {ROWS} AS
        WITH f AS (SELECT line, bad, {fields}, {vendor_ids} AS vendor_ids FROM {staging.STAGE}),
        typed AS (
            SELECT f.*,
                   CASE WHEN valid_from ~ '^[0-9]{{4}}-[0-9]{{2}}-[0-9]{{2}}$'
                         AND pg_input_is_valid(valid_from, 'date')
                        THEN valid_from::date END AS from_d,
                   CASE WHEN instrument ~ '^[0-9]{{1,18}}$' THEN instrument::bigint END
                       AS instrument_n
            FROM f
        )
        SELECT t.*, coalesce('i:' || t.instrument_n, 'f:' || t.figi, 's:' || t.isin) AS key,
               NULL::bigint AS instrument_id, NULL::text AS gid, NULL::date AS until_d
        FROM typed t
        """
    )
    # The instruments each group's identifiers name: its id, and the current versions that
    # carry its FIGIs or ISINs (a company's history keeps them, whatever its symbol).
    cursor.execute(
        f"""
        CREATE TEMP TABLE {GROUPS} AS
        WITH matches AS (
            SELECT r.key, i.id AS instrument_id, format('instrument %s', i.id) AS how
            FROM {ROWS} r JOIN marketdata_instrument i ON i.id = r.instrument_n
            UNION
            SELECT r.key, l.instrument_id,
                   format('FIGI %s is instrument %s', l.figi, l.instrument_id)
            FROM {ROWS} r JOIN marketdata_listing l
              ON l.figi = r.figi AND l.known_until IS NULL
            UNION
            SELECT r.key, l.instrument_id,
                   format('ISIN %s is instrument %s', l.isin, l.instrument_id)
            FROM {ROWS} r JOIN marketdata_listing l
              ON l.isin = r.isin AND l.known_until IS NULL
        )
        SELECT key, array_agg(DISTINCT instrument_id) AS ids,
               string_agg(DISTINCT how, ', ') AS hows
        FROM matches WHERE key IS NOT NULL GROUP BY key
        """
    )
    cursor.execute(
        f"""
        UPDATE {ROWS} r SET instrument_id = g.ids[1]
        FROM {GROUPS} g WHERE g.key = r.key AND cardinality(g.ids) = 1;
        UPDATE {ROWS} SET gid = coalesce('n:' || instrument_id, key);
        UPDATE {ROWS} r SET until_d = n.next_from
        FROM (SELECT line, lead(from_d) OVER (PARTITION BY gid ORDER BY from_d NULLS FIRST, line)
                  AS next_from
              FROM {ROWS} WHERE gid IS NOT NULL) n
        WHERE n.line = r.line;
        CREATE INDEX ON {ROWS} (symbol); ANALYZE {ROWS};
        """
    )


def _pattern_rule(column: str) -> tuple[str, str]:
    pattern, noun = CODES[column]
    return (
        f"{column} !~ {literal(pattern)}",
        f"format('bad {noun} in {column}: %L', {column})",
    )


# The rules of a line by itself: (condition, reason) over the staged line ``r`` and its
# group's matches ``g``.
ROW_RULES: list[tuple[str, str]] = [
    ("bad IS NOT NULL", "bad"),
    ("symbol IS NULL", "'missing symbol'"),
    ("currency IS NULL", "'missing currency'"),
    ("status IS NULL", "'missing status'"),
    (
        "valid_from IS NOT NULL AND from_d IS NULL",
        "format('bad date in valid_from: %L (YYYY-MM-DD, or empty: since always)', valid_from)",
    ),
    (
        f"status NOT IN ({', '.join(map(literal, STATUSES))})",
        f"format('unknown status %L ({', '.join(STATUSES)})', status)",
    ),
    *(_pattern_rule(c) for c in CODES),
    *((f"length({c}) > {n}", f"'{c} longer than {n} characters'") for c, n in LENGTHS.items()),
    (
        f"asset_class NOT IN ({', '.join(map(literal, ASSET_CLASSES))})",
        f"format('unknown asset_class %L ({', '.join(ASSET_CLASSES)})', asset_class)",
    ),
    (
        "instrument IS NOT NULL AND instrument_n IS NULL",
        "format('bad instrument id %L', instrument)",
    ),
    (
        "instrument_n IS NOT NULL AND NOT EXISTS"
        " (SELECT 1 FROM marketdata_instrument i WHERE i.id = r.instrument_n)",
        "format('no instrument %s', instrument_n)",
    ),
    (
        "r.key IS NULL",
        "'names no instrument, figi or isin: which instrument it is cannot be told'",
    ),
    (
        "cardinality(g.ids) > 1",
        "format('matches two instruments: %s', g.hows)",
    ),
]


def _find_bad_rows(cursor: CursorWrapper) -> Rejection:
    """Every bad line with all its reasons, into the staging's REJECTED table: first the rules
    of a line by itself, then, among the lines that pass them, those of lines together (a
    date repeated within an instrument, a symbol two instruments would bear on a day)."""
    reasons = ", ".join(f"CASE WHEN ({cond}) IS TRUE THEN {why} END" for cond, why in ROW_RULES)
    cursor.execute(
        f"""
        CREATE TEMP TABLE {PROBLEMS} AS
        SELECT r.line, 0 AS rank, NULLIF(concat_ws('; ', {reasons}), '') AS reason
        FROM {ROWS} r LEFT JOIN {GROUPS} g ON g.key = r.key;
        DELETE FROM {PROBLEMS} WHERE reason IS NULL;
        """
    )
    cursor.execute(_cross_row_sql())
    cursor.execute(
        f"""
        DROP TABLE IF EXISTS {staging.REJECTED};
        CREATE TEMP TABLE {staging.REJECTED} AS
        SELECT line, string_agg(reason, '; ' ORDER BY rank, reason) AS reason
        FROM {PROBLEMS} GROUP BY line;
        """
    )
    cursor.execute(f"SELECT count(*) FROM {staging.REJECTED}")
    (total,) = cursor.fetchone()
    return rejection(cursor, total)


def _cross_row_sql() -> str:
    """The rules of lines together, among the lines with no problem of their own (``ok``)."""
    span = "daterange({0}.from_d, {0}.until_d)"
    live = "{0}.status <> 'delisted'"
    return f"""
    WITH ok AS (SELECT * FROM {ROWS} r
                WHERE NOT EXISTS (SELECT 1 FROM {PROBLEMS} p WHERE p.line = r.line)),
    repeated AS (
        SELECT r.line, 1, format('valid_from %s repeats line %s of the same instrument',
                                 coalesce(r.from_d::text, '(empty: since always)'), min(o.line))
        FROM ok r JOIN ok o ON o.gid = r.gid AND o.from_d IS NOT DISTINCT FROM r.from_d
                            AND o.line <> r.line
        GROUP BY r.line, r.from_d
    ),
    shared AS (
        SELECT r.line, 2, format('symbol %s would be borne by two listed instruments from %s:'
                                 ' lines %s and %s', r.symbol,
                                 coalesce(greatest(r.from_d, o.from_d)::text, 'always'),
                                 least(r.line, o.line), greatest(r.line, o.line))
        FROM ok r JOIN ok o ON o.symbol = r.symbol AND o.gid <> r.gid
        WHERE {live.format("r")} AND {live.format("o")}
          AND {span.format("r")} && {span.format("o")}
    ),
    taken AS (
        SELECT r.line, 3, format('symbol %s is borne by instrument %s (now %s) from %s until %s',
                                 r.symbol, l.instrument_id, i.symbol,
                                 coalesce(l.valid_from::text, 'always'),
                                 coalesce(l.valid_until::text, 'now'))
        FROM ok r
        JOIN marketdata_listing l ON l.symbol = r.symbol AND l.known_until IS NULL
        JOIN marketdata_instrument i ON i.id = l.instrument_id
        WHERE {live.format("r")} AND l.status <> 'delisted'
          AND daterange(l.valid_from, l.valid_until) && {span.format("r")}
          AND NOT EXISTS (SELECT 1 FROM {ROWS} f WHERE f.instrument_id = l.instrument_id)
    )
    INSERT INTO {PROBLEMS} (line, rank, reason)
    SELECT * FROM repeated UNION ALL SELECT * FROM shared UNION ALL SELECT * FROM taken
    """


# --- Applying --------------------------------------------------------------------------------
def _groups(cursor: CursorWrapper) -> list[Group]:
    """The checked lines, grouped by instrument, each group in date order."""
    cursor.execute(
        f"""
        SELECT gid, instrument_id, asset_class, line, from_d, until_d, symbol, currency, status,
               name, mic, isin, figi, vendor_ids
        FROM {ROWS} ORDER BY gid, from_d NULLS FIRST
        """
    )
    groups: dict[str, Group] = {}
    for gid, instrument_id, asset_class, line, *rest in cursor.fetchall():
        group = groups.setdefault(gid, Group(gid, instrument_id, asset_class or "equity"))
        if asset_class and group.asset_class == "equity":
            group.asset_class = asset_class
        group.versions.append(_version(line, *rest))
    return list(groups.values())


def _version(
    line: int,
    valid_from: date | None,
    valid_until: date | None,
    symbol: str,
    currency: str,
    status: str,
    name: str | None,
    mic: str | None,
    isin: str | None,
    figi: str | None,
    vendor_ids: dict[str, str] | str,
) -> Version:
    terms = security_master.Terms(
        symbol=symbol,
        currency=currency,
        status=status,
        name=name or "",
        mic=mic or "",
        isin=isin or "",
        figi=figi or "",
        # Django's connection reads jsonb as text, for JSONField to decode.
        vendor_ids=json.loads(vendor_ids) if isinstance(vendor_ids, str) else vendor_ids,
    )
    return Version(line, valid_from, valid_until, terms)


def _apply(groups: list[Group], source: Source) -> list[Outcome]:
    """Create the new instruments, then state every history: what takes symbols away first
    (the time before each history, delistings), then the listed and suspended versions."""
    created = _create_instruments([g for g in groups if g.instrument_id is None])
    outcomes = {
        _id(g): Outcome(_id(g), g.versions[-1].terms.symbol, g.key in created) for g in groups
    }
    for group in groups:
        first = group.versions[0].valid_from
        if first is not None:
            outcomes[_id(group)].changed += security_master.clear(_id(group), None, first)
    owned = [(g, v) for g in groups for v in g.versions]
    for group, version in owned:
        if version.terms.status == Listing.Status.DELISTED:
            try:
                outcomes[_id(group)].changed += _set(group, version, source)
            except Blocked as blocked:  # a delisting bears no symbol: not expected
                raise _line_refusal(source, version.line, blocked.message) from blocked
    listed = [(g, v) for g, v in owned if v.terms.status != Listing.Status.DELISTED]
    _set_listed(listed, outcomes, source)
    # Today's terms, as the versions gave them to the instrument's row.
    symbols = dict(Instrument.objects.filter(id__in=outcomes).values_list("id", "symbol"))
    for outcome in outcomes.values():
        outcome.symbol = symbols.get(outcome.instrument_id, outcome.symbol)
    return sorted(outcomes.values(), key=lambda o: o.instrument_id)


def _id(group: Group) -> int:
    assert group.instrument_id is not None, "created before its versions are set"
    return group.instrument_id


def _create_instruments(groups: list[Group]) -> set[str]:
    """One INSERT for the new instruments, inactive: the first version the database gives
    each (since always) is delisted and so takes no symbol from another; their versions
    then give them their true terms."""
    made = Instrument.objects.bulk_create(
        Instrument(
            symbol=g.versions[-1].terms.symbol,
            asset_class=g.asset_class,
            exchange=g.versions[-1].terms.mic,
            currency=g.versions[-1].terms.currency,
            active=False,
        )
        for g in groups
    )
    for group, instrument in zip(groups, made, strict=True):
        group.instrument_id = instrument.pk
    return {g.key for g in groups}


class Blocked(Exception):
    """A version's symbol is borne by another listed instrument on some of its days."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def _set(group: Group, version: Version, source: Source) -> int:
    """``set_terms`` for one line, in a savepoint; a refusal by the database names the line
    (Blocked: another instrument bears the symbol then, which may pass later)."""
    try:
        with transaction.atomic():
            return security_master.set_terms(
                _id(group), version.valid_from, version.valid_until, version.terms
            )
    except DatabaseError as error:
        if _constraint(error) in (BEARER_RULE, ROW_SYMBOL_RULE):
            words = bearers_of(
                version.terms.symbol, version.valid_from, version.valid_until, _id(group)
            )
            raise Blocked(words) from error
        raise _line_refusal(source, version.line, _message(error)) from error


def _set_listed(
    pending: list[tuple[Group, Version]], outcomes: dict[int, Outcome], source: Source
) -> None:
    """The listed and suspended versions. One may need a symbol that another instrument of
    the file still bears in its old history until its own lines are set: it waits for the
    next round. A round with no progress is a cycle (two companies swapping symbols), broken
    by delisting the old versions of the file's instruments in its way (their own lines then
    state those days again); a second one in a row refuses the line."""
    cleared = False
    while pending:
        waiting: list[tuple[Group, Version, Blocked]] = []
        for group, version in pending:
            try:
                outcomes[_id(group)].changed += _set(group, version, source)
            except Blocked as blocked:
                waiting.append((group, version, blocked))
        stalled = len(waiting) == len(pending)
        if stalled and cleared:
            first = waiting[0]
            raise _line_refusal(source, first[1].line, first[2].message)
        if stalled:
            for stuck in waiting:
                _delist_blockers(*stuck, outcomes, source)
        cleared = stalled
        pending = [(g, v) for g, v, _ in waiting]


def _delist_blockers(
    group: Group, version: Version, blocked: Blocked, outcomes: dict[int, Outcome], source: Source
) -> None:
    """Delist, on the days ``version`` needs, the old versions by which the file's other
    instruments still bear its symbol (their own lines state those days again later);
    refuse the line if an instrument outside the file bears it. Delisted, not cleared: the
    instrument's row gives the symbol up too (a row keeps its latest version's symbol)."""
    blockers = list(
        _bearers(version.terms.symbol, version.valid_from, version.valid_until, _id(group))
    )
    if not blockers or any(b.instrument_id not in outcomes for b in blockers):
        raise _line_refusal(source, version.line, blocked.message)
    for blocker in blockers:
        start = _later(blocker.valid_from, version.valid_from)
        end = _earlier(blocker.valid_until, version.valid_until)
        delisted = security_master.Terms(
            symbol=blocker.symbol,
            currency=blocker.currency,
            status=Listing.Status.DELISTED,
            name=blocker.name,
            mic=blocker.mic,
            isin=blocker.isin,
            figi=blocker.figi,
            vendor_ids=blocker.vendor_ids,
        )
        outcomes[blocker.instrument_id].changed += security_master.set_terms(
            blocker.instrument_id, start, end, delisted
        )


def _later(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: date | None, b: date | None) -> date | None:
    return b if a is None else a if b is None else min(a, b)


# --- Conflicts, in words ---------------------------------------------------------------------
def _bearers(
    symbol: str, valid_from: date | None, valid_until: date | None, instrument_id: int | None
) -> Iterable[Listing]:
    """The current listed or suspended versions of other instruments bearing ``symbol`` on a
    day of [valid_from, valid_until)."""
    overlapping = Q()
    if valid_until is not None:
        overlapping &= Q(valid_from__isnull=True) | Q(valid_from__lt=valid_until)
    if valid_from is not None:
        overlapping &= Q(valid_until__isnull=True) | Q(valid_until__gt=valid_from)
    found = (
        Listing.objects.filter(overlapping, symbol=symbol, known_until__isnull=True)
        .exclude(status=Listing.Status.DELISTED)
        .select_related("instrument")
        .order_by("valid_from")
    )
    if instrument_id is not None:
        found = found.exclude(instrument_id=instrument_id)
    return found


def bearer_conflict(symbol: str, bearers: Iterable[Listing]) -> str:
    """The words for a symbol another listed instrument bears on those days."""
    named = [
        f"instrument {b.instrument_id} (now {b.instrument.symbol}) from"
        f" {b.valid_from or 'always'} until {b.valid_until or 'now'}"
        for b in bearers
    ]
    if not named:
        return f"symbol {symbol} is borne by another listed instrument on those days"
    return f"symbol {symbol} is borne on those days by {'; '.join(named)}"


def bearers_of(
    symbol: str, valid_from: date | None, valid_until: date | None, instrument_id: int | None
) -> str:
    """``bearer_conflict`` for the versions in the way of stating ``symbol`` over a range."""
    return bearer_conflict(symbol, _bearers(symbol, valid_from, valid_until, instrument_id))


def _constraint(error: DatabaseError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return (diag and diag.constraint_name) or ""


def _message(error: DatabaseError) -> str:
    diag = getattr(error.__cause__, "diag", None)
    return (diag and diag.message_primary) or str(error)


def _line_refusal(source: Source, line: int, message: str) -> IngestRefused:
    only = Rejection(total=1, first=[(line, message)])
    return IngestRefused(refusal_message(source.name, source.position_label, only), 1, only.first)


def describe(result: LoadResult) -> list[str]:
    """The report of a load: one line per instrument, then the total."""
    lines = [o.describe() for o in result.outcomes]
    total = f"{result.file_name}: {result.rows_read} rows, {len(result.outcomes)} instruments,"
    total += f" {result.versions_changed} versions changed"
    if result.dry_run:
        total += " (dry run: nothing written)"
    return [*lines, total]
