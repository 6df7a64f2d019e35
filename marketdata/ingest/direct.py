"""A bar file into a range its instrument holds nothing of: one COPY straight into the table.

The staging road (COPY into a TEMP table, checks, INSERT ... SELECT) writes every row twice and
inserts the second time row by row; COPY into the partitioned table itself inserts in batches.
For a clean file of new bars, that is all a load needs, because the table refuses everything
the checks would: a field that does not parse, a missing price, a price not positive, a high
below the others, a NaN or an infinity (CHECKs and NOT NULLs), a time seen twice (the unique
key). What no constraint holds - a time outside [1900, now + 1 year], or outside the range the
load took for the file's (its first and last lines' times, which the instrument is resolved by
and which the partitions are made for and the summaries refreshed over) - is left out by COPY's
WHERE clause, and a count of rows short of the file's lines says so. On Citus, whose COPY
takes no WHERE, every line is written and the rows the range then holds are counted instead
(it held none before): one line outside it, and the count falls short the same way.

So the road is a try: anything it does not vouch for (a refused row, a row left out, a range
that holds bars, a layout COPY cannot map onto the table's columns) gives way, with the whole
transaction rolled back, to the staging road, which names every bad line or merges with
revisions. Nothing is half-written either way.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from django.db import connection

from marketdata.ingest.targets import BAR_ROLES, Target
from qvp_site.db.filtered_copy import filtered_copy
from qvp_site.db.quoting import ident, literal
from qvp_site.loading.layout import Layout
from qvp_site.loading.progress import Progress
from qvp_site.loading.readers import CsvSource, Source

# How far back from a file's end to look for its last line.
TAIL_BYTES = 1 << 16


# The rows' times that no market had: the checks' range rule (marketdata.ingest.checks).
def _in_history(column: str) -> str:
    earliest, latest = "timestamptz '1900-01-01 00:00+00'", "now() + interval '1 year'"
    return f"{column} >= {earliest} AND {column} <= {latest}"


class NotDirect(Exception):
    """The direct road does not vouch for this file: take the staging road."""


@dataclass(frozen=True)
class Span:
    """The file's first and last lines' times, both within history (``file_span`` makes no
    other): the range the direct road loads."""

    first: datetime
    last: datetime


def eligible(source: Source, layout: Layout, target: Target, *, plain_options: bool) -> bool:
    """Whether the file can go straight into the table: a CSV file of bars whose every field is
    a time written as text or a bar value (COPY maps each onto the table's column of that
    name), loaded as it is (``plain_options``: no rows set aside, no adjustment divided out)."""
    if not (plain_options and target.is_bars and isinstance(source, CsvSource)):
        return False
    if layout.ts_kind != "text":
        return False
    names = {"ts", *BAR_ROLES}
    return all(column.name in names for column in layout.columns)


def file_span(cursor, source: CsvSource, layout: Layout) -> Span | None:
    """The times of the file's first and last data lines, read in the session's time zone;
    None where either line does not read as a time within history (the staging road will say
    why)."""
    first, last = _edge_lines(source)
    if first is None or last is None:
        return None
    at = next(i for i, column in enumerate(layout.columns) if column.name == "ts")
    times = [fields[at] if len(fields) == layout.field_count else "" for fields in (first, last)]
    if not all(t.strip() for t in times):
        return None
    cursor.execute(
        "SELECT pg_input_is_valid(%s, 'timestamptz') AND pg_input_is_valid(%s, 'timestamptz')",
        times,
    )
    if not cursor.fetchone()[0]:
        return None
    # As UTC wall times: Django reads a time back as UTC whatever the session's zone is. Both
    # within history, else no span: its partitions would be made for a file the staging road
    # then refuses (a last line of 2099, say).
    cursor.execute(
        "SELECT a AT TIME ZONE 'UTC', b AT TIME ZONE 'UTC',"
        f" {_in_history('a')} AND {_in_history('b')}"
        " FROM (SELECT %s::timestamptz AS a, %s::timestamptz AS b) edges",
        times,
    )
    *walls, in_history = cursor.fetchone()
    if not in_history:
        return None
    # A file in descending order runs from its last line's time to its first's.
    first, last = sorted(wall.replace(tzinfo=UTC) for wall in walls)
    return Span(first, last)


def _edge_lines(source: CsvSource) -> tuple[list[str] | None, list[str] | None]:
    first = source.sample[0] if source.sample else None
    with source.path.open("rb") as f:
        size = f.seek(0, 2)
        start = max(source.header_end, size - TAIL_BYTES)
        f.seek(start)
        tail = f.read().rstrip(b"\r\n \t")
    cut = tail.rfind(b"\n")
    if cut < 0 and start > source.header_end:
        return first, None  # a last line longer than the tail: not a bar file's
    try:
        line = tail[cut + 1 :].decode("utf-8")
    except UnicodeDecodeError:
        return first, None
    rows = list(csv.reader([line], delimiter=source.delimiter))
    return first, (rows[0] if rows else None)


def copy(
    cursor,
    source: CsvSource,
    layout: Layout,
    target: Target,
    instrument_id: int,
    span: Span,
    progress: Progress,
) -> int:
    """COPY the file into the table, each line given the instrument; the rows written. Raises
    NotDirect when COPY left a line out (a time outside ``span`` or history); the database's
    own errors (a refused row, a repeated time) propagate for the caller to give way on."""
    names = ", ".join(["instrument_id", *(ident(c.name) for c in layout.columns)])
    # Within history too: ``file_span`` made the span only of edges within it, and now() has
    # not moved back since. The rule is not asked again of each row: a stable expression
    # (now() + 1 year) is computed per row, about 0.1 s of a million.
    where = f"ts BETWEEN {literal(span.first)} AND {literal(span.last)}"
    into = filtered_copy(
        cursor,
        target.table,
        names,
        f"FORMAT csv, DELIMITER {literal(source.delimiter)}",
        where,
        f"instrument_id = {int(instrument_id)}",
    )
    prefix = f"{int(instrument_id)}{source.delimiter}".encode()
    progress.start(f"loading {source.name}", source.total, source.unit)
    lines = 0
    try:
        with connection.wrap_database_errors, cursor.copy(into.statement) as stream:
            for block, advance in _prefixed(source, prefix):
                if block:
                    stream.write(block)
                    lines += block.count(b"\n")
                progress.update(advance)
    except into.refusals as error:
        raise NotDirect(f"a row refused: {error}") from error
    written: int = cursor.rowcount
    if into.recount:  # the range held none of the instrument's bars: now the file's lines
        cursor.execute(into.recount)
        written = cursor.fetchone()[0]
    if written != lines:
        raise NotDirect(f"{lines - written:,} of {lines:,} lines outside the file's range")
    return written


def _prefixed(source: CsvSource, prefix: bytes) -> Iterator[tuple[bytes, int]]:
    """The file's blocks with ``prefix`` (the instrument and a delimiter) at the start of
    every line: a C-level replace per block of a megabyte, not a step per row. A block ending
    in a newline leaves the next line's prefix to the next block (the last block, which ends
    in one, to none)."""
    at_line_start = True
    for block, advance in source.blocks():
        if block:
            head = prefix if at_line_start else b""
            at_line_start = block.endswith(b"\n")
            body = block[:-1] if at_line_start else block
            block = head + body.replace(b"\n", b"\n" + prefix) + (b"\n" if at_line_start else b"")
        yield block, advance
