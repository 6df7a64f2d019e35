"""A file's way into the market-data tables: stage -> check -> write, recorded as an Ingest.
Rows already in memory (``ingest_rows``: the API's batches) take the same way, never written to
a file for it.

Three short steps on one connection, because the partitions a load needs must be created in
their own transaction (creating one locks the parent table) before the load's:

1. stage and check (a transaction of TEMP tables only): bad rows refuse the file, or with
   ``skip_invalid`` are set aside; the intervals the good rows fall in are found;
2. on plain PostgreSQL, create the partitions of the intervals the rows fall in (and only
   those), refusing the file where they would be more new ones than a load may make (on
   TimescaleDB the same count of the chunks the rows would make);
3. write, in one transaction with the instrument's creation and the rejects file, so a
   failure leaves nothing behind; the aggregates of the range are refreshed after commit
   (``marketdata.aggregates``: the hours summed from the rows, the days from those hours).
   A file its vendor split-adjusted (``adjusted_through``) has the adjustment divided out of
   the staged rows first, by the instrument's splits known then (``writes.undo_vendor_splits``),
   and the load's record keeps the date.

A CSV file of bars for a range its instrument holds none of goes the direct road first
(``direct``): one COPY straight into the table, which refuses whatever the checks would;
anything it does not vouch for rolls its transaction back whole and takes the three steps
above, which name every bad line or merge with revisions. Every row is written once instead
of twice, and in batches (bench/ingest.py: 0.63 of psql's copy into the same table for a
million minute bars, the summaries' refresh included, where the staging road took 0.56).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path

from django.db import (
    DatabaseError,
    DataError,
    IntegrityError,
    InternalError,
    connection,
    transaction,
)
from django.utils import timezone

from marketdata import aggregates, security_master
from marketdata.ingest import checks, direct, instruments, writes
from marketdata.ingest.layouts import detect
from marketdata.ingest.targets import TARGETS
from marketdata.models import Ingest, Instrument
from qvp_site.db import partitions
from qvp_site.loading import staging
from qvp_site.loading.checks import all_rejected
from qvp_site.loading.layout import LayoutError
from qvp_site.loading.progress import NoProgress, Progress
from qvp_site.loading.readers import CsvSource, ReadError, RowsSource, Source, open_source
from qvp_site.loading.refusals import IngestRefused, refused

_UNIQUE_VIOLATION = "23505"
_INTERNAL_ERROR = "XX000"
_UNIQUE_MESSAGE = "duplicate key value violates unique constraint"
_QUOTE_CURRENCIES = ("USDT", "USDC", "BUSD", "USD", "EUR", "GBP", "JPY", "BTC", "ETH")


@dataclass
class IngestOptions:
    symbol: str
    kind: str  # an Ingest.Kind value
    asset_class: str = Instrument.AssetClass.EQUITY
    columns: dict[str, str] = field(default_factory=dict)
    delimiter: str | None = None
    tz: str = "UTC"
    skip_invalid: bool = False
    # A symbol no instrument ever bore creates one (a command's load); False refuses it (the
    # API's batches name an existing instrument).
    create_instrument: bool = True
    # The vendor split-adjusted the file's prices and volumes through this date (Yahoo's
    # Close): the load divides out the splits with ex-dates after each row and on or before
    # it, known when it runs, so that the rows are stored as traded. None: as traded already.
    adjusted_through: date | None = None


@dataclass
class IngestResult:
    record: Ingest
    layout: str = ""
    rows_read: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    unadjusted: int = 0  # rows whose vendor split adjustment was divided out
    seconds: float = 0.0
    instrument_created: bool = False
    rejects_path: Path | None = None
    first_ts: datetime | None = None
    last_ts: datetime | None = None
    phases: dict[str, float] = field(default_factory=dict)  # seconds spent in each step
    # Why the summaries of the rows committed are left to the next `maintain` (the refresh
    # after the commit failed: the server went away, say); empty when they were refreshed.
    deferred: str = ""
    committed: bool = False  # the rows are in, whatever happens after

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0


def ingest_file(
    path: Path | str,
    options: IngestOptions,
    *,
    user=None,
    os_user: str = "",
    progress: Progress | None = None,
) -> IngestResult:
    """Load ``path`` as ``options`` say; raises IngestRefused for a file with bad rows (and
    nothing written). Every call leaves an Ingest record, whatever the outcome."""
    path = Path(path)
    origin = _Origin(
        name=path.name,
        where=str(path.resolve()),
        open=lambda: open_source(path, options.delimiter),
        digest=lambda: _sha256(path),
    )
    return _load(origin, options, user, os_user, progress)


def ingest_rows(
    name: str,
    header: Sequence[str],
    rows: Iterable[Sequence[object]],
    options: IngestOptions,
    *,
    user=None,
    progress: Progress | None = None,
) -> IngestResult:
    """Load rows already in memory (values in ``header``'s order, e.g. a batch posted to the
    API) by a file's road: COPY, the same checks and write, an Ingest record named ``name``.
    A bad row is named by its number, the first row being row 1. Nothing is written to disk,
    so rejected rows cannot be set aside: ``options.skip_invalid`` is refused."""
    if options.skip_invalid:
        raise ValueError("rows in memory have no file beside which to set bad rows aside")
    source = RowsSource.of(name, header, rows)
    origin = _Origin(name=name, where="", open=lambda: source, digest=source.sha256)
    return _load(origin, options, user, "", progress)


@dataclass(frozen=True)
class _Origin:
    """Where a load's rows come from: its name, its path (if a file), how to read it, and
    the digest the Ingest record keeps."""

    name: str
    where: str
    open: Callable[[], Source]
    digest: Callable[[], str]


def _load(origin: _Origin, options: IngestOptions, user, os_user: str, progress) -> IngestResult:
    record = Ingest.objects.create(
        file_name=origin.name[:255],
        path=origin.where,
        kind=options.kind,
        symbol=options.symbol,
        user=user,
        os_user=os_user,
        adjusted_through=options.adjusted_through,
    )
    result = IngestResult(record=record)
    started = time.monotonic()
    try:
        _ingest(origin.open, options, result, progress or NoProgress())
    except IngestRefused as refusal:
        result.rejected = refusal.rejected
        _finish(result, origin, started, Ingest.Status.REFUSED, str(refusal))
        raise
    except (LayoutError, ReadError) as error:
        refusal = IngestRefused(f"refused {origin.name}: {error}")
        _finish(result, origin, started, Ingest.Status.REFUSED, str(refusal))
        raise refusal from error
    except BaseException as error:
        # Record the failure if the connection still can; the error itself matters more. One
        # after the commit (Ctrl-C during the refresh) failed nothing the rows: they stand.
        status = Ingest.Status.LOADED if result.committed else Ingest.Status.FAILED
        summary = f"{type(error).__name__}: {error}"
        if result.committed:
            summary = f"summaries left to the next maintain ({summary})"
        with contextlib.suppress(DatabaseError):
            _finish(result, origin, started, status, summary)
        raise
    _finish(result, origin, started, Ingest.Status.LOADED, result.deferred)
    return result


def _ingest(
    read: Callable[[], Source], options: IngestOptions, result: IngestResult, progress
) -> None:
    source = read()
    target = TARGETS[options.kind]
    layout = detect(source.header, source.sample, target, options.columns)
    result.layout = layout.describe()
    try:
        if _direct(source, layout, target, options, result, progress):
            return
        needs = _stage_and_check(source, layout, target, options, result, progress)
        span = None if needs is None else (needs.first, needs.last)
        if needs is not None:
            with _phase(result, "partitions"):
                _make_partitions(source.name, needs)
        _write_and_commit(
            result,
            target.table,
            span,
            lambda cursor: _write(cursor, source, layout, target, options, result, span),
        )
    finally:
        with contextlib.suppress(DatabaseError), connection.cursor() as cursor:
            staging.drop(cursor)


def _make_partitions(name: str, needs: partitions.Needs) -> None:
    """The partitions of the intervals the rows fall in, or a refusal naming the file when
    they would be more new ones than a load may make (nothing made, nothing written)."""
    try:
        partitions.make_needed(needs)
    except partitions.TooManyPartitions as error:
        raise IngestRefused(f"refused {name}: {error}") from error


@contextlib.contextmanager
def _phase(result: IngestResult, name: str):
    started = time.perf_counter()
    try:
        yield
    finally:
        result.phases[name] = result.phases.get(name, 0.0) + time.perf_counter() - started


def _stage_and_check(source, layout, target, options, result, progress):
    """Stage and check the file; returns the intervals the rows to write fall in (with
    their first and last time), None where there is none."""
    with transaction.atomic(), connection.cursor() as cursor:
        # Naive times in the file are wall-clock times in --tz; the hash of a big file's
        # keys and the window numbering ticks want more than the default work_mem.
        cursor.execute(
            "SELECT set_config('timezone', %s, true), set_config('work_mem', '256MB', true)",
            [options.tz],
        )
        with _phase(result, "stage"):
            result.rows_read = staging.load(cursor, source, layout, progress)
        # Without --skip-invalid, a time repeated in a bar file is left to the unique index,
        # which sees it for free during a straight insert; a hash of a million keys is not.
        with _phase(result, "check"):
            rejection = checks.find_bad_rows(
                cursor,
                layout,
                target,
                options.tz,
                duplicates=options.skip_invalid or not target.is_bars,
                label=source.position_label,
            )
        if rejection.total and not options.skip_invalid:
            raise refused(source.name, source.position_label, rejection)
        result.rejected = rejection.total
        if rejection.total:
            staging.drop_rejected_rows(cursor)
        # In this transaction, which reads the file's naive times in its time zone.
        needs = partitions.rows_needs(
            cursor, target.table, checks.rows_sql(layout, target, options.tz)
        )
    if needs is not None:
        result.first_ts, result.last_ts = needs.first, needs.last
    return needs


def _write_and_commit(result: IngestResult, table: str, span, write: Callable) -> None:
    """Write (``write(cursor)``: whether any row changed) in one transaction; its commit runs
    the deferred foreign-key checks, then the refresh of the aggregates over ``span``
    (TimescaleDB refuses that inside a transaction)."""
    marks = {}
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            with _phase(result, "write"):
                changed = write(cursor)
            marks["written"] = time.perf_counter()
            transaction.on_commit(lambda: _committed(result, marks))
            if changed:
                aggregates.refresh_after_commit(table, *span)
    except DatabaseError as error:
        if "committed" not in marks:
            raise
        # The rows are in; only the refresh after the commit failed. Its range was marked
        # pending in the rows' own transaction, so the next `maintain` refreshes it: the load
        # stands, and says so. A connection the failure left broken is replaced.
        result.deferred = f"summaries left to the next maintain: {error}".strip()
        connection.close_if_unusable_or_obsolete()
    done = time.perf_counter()
    committed = marks.get("committed", done)  # later, when run inside the caller's transaction
    result.phases["commit"] = committed - marks["written"]
    result.phases["aggregates"] = done - committed


# The direct road's hourly probe of its range finds every partition (chunk) of the ingest
# tables (a day wide at the least); a range of more hours than this takes the staging road.
_DIRECT_HOURS = 100_000


def _direct(source, layout, target, options, result, progress) -> bool:
    """Load a clean file of new bars by one COPY into the table (``direct``); False where the
    file is not one (nothing written, the Ingest record as it was): the staging road then
    loads it, names its bad lines or merges it with revisions."""
    plain = not options.skip_invalid and options.adjusted_through is None
    if not direct.eligible(source, layout, target, plain_options=plain):
        return False
    started = time.perf_counter()
    try:
        span = _direct_span(source, layout, options.tz)
        if span is None or not _partitions_ready(target.table, span):
            return False
        _write_and_commit(
            result,
            target.table,
            (span.first, span.last),
            lambda cursor: _write_direct(
                cursor, source, layout, target, options, result, span, progress
            ),
        )
    except (direct.NotDirect, instruments.SymbolRefused, DataError, IntegrityError):
        # Rolled back whole (a commit's failure is _write_and_commit's to handle): give way.
        result.record.instrument, result.instrument_created = None, False
        result.rows_read = result.inserted = 0
        result.first_ts = result.last_ts = None
        result.phases.pop("write", None)
        result.phases["direct, gave way"] = time.perf_counter() - started
        return False
    return True


def _direct_span(source: CsvSource, layout, tz: str) -> direct.Span | None:
    """The file's range by its first and last lines, their naive times read in ``tz``."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT set_config('timezone', %s, true)", [tz])
        span = direct.file_span(cursor, source, layout)
    if span is None or span.last - span.first > timedelta(hours=_DIRECT_HOURS):
        return None
    return span


def _partitions_ready(table: str, span: direct.Span) -> bool:
    """Whether the rows of ``span`` find their partitions, made where they are missing: on
    plain PostgreSQL, every partition of the range, made in their own transaction as the
    staging road makes them, unless they are more new ones than a load may make (the staging
    road then counts only those its rows fall in); on TimescaleDB, the chunks the range could
    make are within the limit. A file whose rows skip a whole partition's interval leaves
    that one made and empty: the price of not reading the file twice."""
    hours = (
        "SELECT generate_series(%s::timestamptz, %s::timestamptz, interval '1 hour') AS ts"
        " UNION ALL SELECT %s::timestamptz"
    )
    with connection.cursor() as cursor:
        needs = partitions.rows_needs(cursor, table, hours, [span.first, span.last, span.last])
        if needs is None:
            return False
    try:
        partitions.make_needed(needs)  # on TimescaleDB it counts the chunks and makes none
    except partitions.TooManyPartitions:
        return False
    return True


def _write_direct(cursor, source, layout, target, options, result, span, progress) -> bool:
    """The direct road's write: the instrument of the range, the turn of its loads, then COPY,
    where the range holds none of its bars (else NotDirect: the rows are merged)."""
    instrument, result.instrument_created = _instrument(options, (span.first, span.last))
    result.record.instrument = instrument
    if result.instrument_created and writes.owner_writes_alone(cursor, target):
        raise direct.NotDirect("a new instrument's rows are the owner's merge's to write")
    writes.take_turn(cursor, target, instrument.id)
    if writes.holds_rows(cursor, target, instrument.id, span.first, span.last):
        raise direct.NotDirect("the range holds bars of the instrument")
    # Naive times in the file are wall-clock times in --tz (for the COPY only: the rest of the
    # transaction reads times as the staging road's does). The reference check's transition
    # table of a million new bars wants more than the default work_mem to stay in memory.
    cursor.execute(
        "SELECT current_setting('timezone'), set_config('timezone', %s, true),"
        " set_config('work_mem', '256MB', true)",
        [options.tz],
    )
    zone = cursor.fetchone()[0]
    written = direct.copy(cursor, source, layout, target, instrument.id, span, progress)
    cursor.execute("SELECT set_config('timezone', %s, true)", [zone])
    result.rows_read = result.inserted = written
    result.first_ts, result.last_ts = span.first, span.last
    return written > 0


def _committed(result: IngestResult, marks: dict[str, float]) -> None:
    result.committed = True
    marks.setdefault("committed", time.perf_counter())


def _write(cursor, source, layout, target, options, result, span) -> bool:
    """Write the staged rows (and the rejects file); whether any row changed."""
    if span is None:  # not one row to write: no instrument to create for it either
        result.record.instrument = _bearer_today(options.symbol)
    else:
        instrument, result.instrument_created = _instrument(options, span)
        result.record.instrument = instrument
        if options.adjusted_through is not None:
            # In the write's transaction, after the instrument is known: a failure after it
            # rolls the division back with the rows.
            result.unadjusted = writes.undo_vendor_splits(
                cursor, layout, options.tz, instrument.id, options.adjusted_through
            )
        merged = result.instrument_created and writes.owner_writes_alone(cursor, target)
        written = _write_rows(
            cursor, source, layout, target, options, (instrument.id, result.record.id), span,
            merged=merged,
        )  # fmt: skip
        result.inserted, result.updated = written.inserted, written.updated
    result.unchanged = result.rows_read - result.rejected - result.inserted - result.updated
    if result.rejected:  # last, so that the file exists only if the load went through
        result.rejects_path = _write_rejects(cursor, source)
    return bool(result.inserted or result.updated)


def _write_rows(
    cursor, source, layout, target, options, ids, span, *, merged: bool = False
) -> writes.Written:
    """Write the rows of the instrument and load ``ids``: inserted where the range holds none,
    merged (revisions kept) where it holds some, or where the merge must write them
    (``merged``: writes.owner_writes_alone)."""
    instrument_id, ingest_id = ids
    writes.take_turn(cursor, target, instrument_id)
    upsert = merged or writes.holds_rows(cursor, target, instrument_id, *span)
    checked = options.skip_invalid or not target.is_bars
    if upsert and not checked:
        # An upsert meets a repeated key only where it changes the row: look for them first.
        _refuse_duplicates(cursor, source, layout, target, options)
    try:
        with transaction.atomic():
            return writes.write(
                cursor, layout, target, options.tz, instrument_id, upsert=upsert,
                ingest_id=ingest_id,
            )  # fmt: skip
    except (IntegrityError, InternalError) as error:
        if upsert or not _unique_violation(error):
            raise
        # The unique index met a key twice in the file (loads of the instrument take turns,
        # and this one found no stored row in its range): which rows?
        _refuse_duplicates(cursor, source, layout, target, options)
        raise


def _unique_violation(error: DatabaseError) -> bool:
    """Whether a unique index refused the write. Citus's INSERT ... SELECT into a distributed
    table writes the shards by COPY and reports a worker's refusal as an internal error
    (XX000), the worker's message kept."""
    cause = error.__cause__
    state = getattr(cause, "sqlstate", None)
    if state == _UNIQUE_VIOLATION:
        return True
    message = getattr(getattr(cause, "diag", None), "message_primary", None) or ""
    return state == _INTERNAL_ERROR and message.startswith(_UNIQUE_MESSAGE)


def _refuse_duplicates(cursor, source, layout, target, options) -> None:
    rejection = checks.find_bad_rows(
        cursor, layout, target, options.tz, duplicates=True, label=source.position_label
    )
    if rejection.total:
        raise refused(source.name, source.position_label, rejection)


def _instrument(options: IngestOptions, span) -> tuple[Instrument, bool]:
    """The instrument that bore the symbol over the rows' dates (``span``: the first and last
    row's time), created for a symbol never borne where the load may."""
    create = None
    if options.create_instrument:
        create = {
            "asset_class": options.asset_class,
            "currency": _currency(options.symbol, options.asset_class),
        }
    return instruments.rows_instrument(options.symbol, *span, create=create)


def _bearer_today(symbol: str) -> Instrument | None:
    """The record's instrument when no row was written: the symbol's today, if one."""
    try:
        return security_master.resolve(symbol)
    except security_master.SymbolNotResolved:
        return None


def _currency(symbol: str, asset_class: str) -> str:
    """The quote currency an FX pair (GBPUSD) or a crypto pair (BTCUSDT) names; else USD."""
    pair = symbol.split(".")[0].upper()
    if asset_class == Instrument.AssetClass.FX and len(pair) == 6 and pair.isalpha():
        return pair[3:]
    if asset_class == Instrument.AssetClass.CRYPTO:
        for currency in _QUOTE_CURRENCIES:
            if pair.endswith(currency) and len(pair) > len(currency):
                return currency
    return "USD"


def _write_rejects(cursor, source: Source) -> Path:
    """``<name>.rejected.csv`` beside the file: each rejected row, its reason, its fields."""
    reasons = dict(all_rejected(cursor))
    path = source.path.with_name(f"{source.path.stem}.rejected.csv")
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow([source.position_label, "reason", *source.header])
        for position, fields in source.rows():
            if position in reasons:
                writer.writerow([position, reasons.pop(position), *fields])
                if not reasons:
                    break
    return path


def _finish(
    result: IngestResult, origin: _Origin, started: float, status: str, error: str = ""
) -> None:
    result.seconds = time.monotonic() - started
    record = result.record
    record.status = status
    record.error_summary = error
    record.finished_at = timezone.now()
    for name in ("rows_read", "inserted", "updated", "unchanged", "rejected"):
        setattr(record, name, getattr(result, name))
    record.instrument_created = result.instrument_created
    record.rejects_file = str(result.rejects_path or "")
    if status != Ingest.Status.LOADED:
        record.inserted = record.updated = record.unchanged = 0
        if result.instrument_created:  # its creation was rolled back with the load
            record.instrument, record.instrument_created = None, False
    with contextlib.suppress(OSError):
        record.sha256 = origin.digest()
    record.save()


def _sha256(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()
