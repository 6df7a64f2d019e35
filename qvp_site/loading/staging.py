"""The staging table: a file's rows, typed, with the line each came from.

Fast road: COPY ... FORMAT csv straight from the file's bytes into a TEMP table whose columns
already have the types the roles need, and an identity column numbering the lines; PostgreSQL
parses every field, Python only passes blocks along. If COPY refuses the file, the savepoint
is rolled back and a more forgiving road is taken: a field that does not parse -> COPY every
field as text, then one statement types what parses and writes down, per row, what does not;
a row COPY cannot split (a field more or less, a blank line) -> Python's csv module feeds the
same text table, with exact line numbers. (A quoted field spanning lines would shift the
identity's numbering on the fast roads: market data has none.)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import DataError, connection, transaction

from qvp_site.db.quoting import ident, literal
from qvp_site.loading.layout import Layout, StageColumn
from qvp_site.loading.progress import Progress
from qvp_site.loading.readers import Source

if TYPE_CHECKING:
    from django.db.backends.utils import CursorWrapper

STAGE = "qvp_ingest_stage"
RAW = "qvp_ingest_raw"
REJECTED = "qvp_ingest_rejected"

# What to call a value that does not parse, by the type it should have had.
_WHAT = {
    "timestamp with time zone": "time",
    "numeric": "time",
    "date": "date",
    "time": "time of day",
    "integer": "integer",
    "bigint": "integer",
}


def drop(cursor: CursorWrapper) -> None:
    cursor.execute(f"DROP TABLE IF EXISTS {STAGE}, {RAW}, {REJECTED}")


def load(cursor: CursorWrapper, source: Source, layout: Layout, progress: Progress) -> int:
    """Stage every data row of ``source``; returns how many rows were staged."""
    drop(cursor)
    for attempt in (_copy_typed, _copy_text):
        try:
            with transaction.atomic():
                return attempt(cursor, source, layout, progress)
        except DataError:
            continue  # rolled back to the savepoint: try the next, more forgiving road
    return _copy_forgiving(cursor, source, layout, progress)


def _copy_typed(cursor: CursorWrapper, source: Source, layout: Layout, progress: Progress) -> int:
    """COPY parses every field into its type: a clean file needs nothing more."""
    definitions = ", ".join(f"{ident(c.name)} {c.type}" for c in layout.columns)
    cursor.execute(f"CREATE TEMP TABLE {STAGE} ({_line(source)}, {definitions}, bad text)")
    names = ", ".join(ident(c.name) for c in layout.columns)
    progress.start(f"loading {source.name}", source.total, source.unit)
    return _copy_blocks(cursor, source, progress, f"{STAGE} ({names})")


def _copy_text(cursor: CursorWrapper, source: Source, layout: Layout, progress: Progress) -> int:
    """A field that does not parse: COPY the fields as text, then type them in SQL."""
    cursor.execute(f"CREATE TEMP TABLE {RAW} ({_line(source)}, {_raw_columns(layout)})")
    names = ", ".join(f"f{i}" for i in range(layout.field_count))
    progress.start(f"loading {source.name} as text", source.total, source.unit)
    staged = _copy_blocks(cursor, source, progress, f"{RAW} ({names})")
    _type_raw(cursor, layout)
    return staged


def _copy_forgiving(
    cursor: CursorWrapper, source: Source, layout: Layout, progress: Progress
) -> int:
    """Rows COPY cannot split (a field more or less, a blank line, a stray quote): Python's
    csv module reads them, with exact line numbers, and SQL types them."""
    count = layout.field_count
    cursor.execute(f"CREATE TEMP TABLE {RAW} (line bigint, {_raw_columns(layout)})")
    progress.start(f"reading {source.name} line by line", None, "rows")
    staged = 0
    with connection.wrap_database_errors, cursor.copy(f"COPY {RAW} FROM STDIN") as copy:
        for position, row in source.rows():
            padded = row[:count] + [None] * (count - len(row))
            copy.write_row((position, len(row), *_without_nul(padded, layout)))
            staged += 1
            if staged % 10_000 == 0:
                progress.update(10_000)
    _type_raw(cursor, layout)
    return staged


def _without_nul(fields: list[str | None], layout: Layout) -> list[str | None]:
    """The fields, a NUL byte's (which no text column holds, and which COPY refuses for the
    whole file) emptied, and last the reason naming the first such field, else None."""
    found = next((i for i, f in enumerate(fields) if f is not None and "\x00" in f), None)
    if found is None:
        return [*fields, None]
    columns = layout.columns
    label = (columns[found].header or columns[found].name) if found < len(columns) else ""
    label = label or f"field {found + 1}"
    cleaned = [None if f is not None and "\x00" in f else f for f in fields]
    return [*cleaned, f"a NUL byte in {label}"]


def _line(source: Source) -> str:
    # Rows arrive in file order, so an identity numbers them with their line in the file.
    start = int(source.first_position)
    return f"line bigint GENERATED BY DEFAULT AS IDENTITY (START WITH {start})"


def _raw_columns(layout: Layout) -> str:
    count = layout.field_count
    fields = (f"f{i} text" for i in range(count))
    # ``nul``: why a row read line by line held a NUL byte (_without_nul), else NULL.
    return ", ".join([f"fields integer DEFAULT {count}", *fields, "nul text"])


def _copy_blocks(cursor: CursorWrapper, source: Source, progress: Progress, into: str) -> int:
    statement = f"COPY {into} FROM STDIN (FORMAT csv, DELIMITER {literal(source.delimiter)})"
    with connection.wrap_database_errors, cursor.copy(statement) as copy:
        for block, advance in source.blocks():
            if block:
                copy.write(block)
            progress.update(advance)
    copied: int = cursor.rowcount
    return copied


def _type_raw(cursor: CursorWrapper, layout: Layout) -> None:
    cursor.execute(_typed_from_raw_sql(layout))
    cursor.execute(f"DROP TABLE {RAW}")


def _typed_from_raw_sql(layout: Layout) -> str:
    """Type each field where it parses (NULL where not) and say why a row is bad."""
    values, reasons = [], []
    count = layout.field_count
    reasons.append(
        f"CASE WHEN fields <> {count} THEN format('%s fields where the header has {count}',"
        " fields) END"
    )
    reasons.append("nul")
    for i, column in enumerate(layout.columns):
        raw = f"f{i}"
        if column.type == "text":
            values.append(f"{raw} AS {ident(column.name)}")
            continue
        valid = f"pg_input_is_valid({raw}, {literal(column.type)})"
        values.append(f"CASE WHEN {valid} THEN {raw}::{column.type} END AS {ident(column.name)}")
        reasons.append(
            f"CASE WHEN {raw} IS NOT NULL AND NOT {valid} THEN"
            f" format('unparseable {_what(column)} in {_label(column)}: %L', {raw}) END"
        )
    trimmed = ", ".join(f"NULLIF(btrim(f{i}), '') AS f{i}" for i in range(count))
    return (
        f"CREATE TEMP TABLE {STAGE} AS SELECT line, {', '.join(values)},"
        f" NULLIF(concat_ws('; ', {', '.join(reasons)}), '') AS bad"
        f" FROM (SELECT line, fields, nul, {trimmed} FROM {RAW}) AS raw"
    )


def _what(column: StageColumn) -> str:
    return _WHAT.get(column.type, "number")


def _label(column: StageColumn) -> str:
    # The header's own name, as the user knows it; format() would read a % in it.
    return (column.header or "time").replace("'", "''").replace("%", "%%")


def drop_rejected_rows(cursor: CursorWrapper) -> None:
    cursor.execute(f"DELETE FROM {STAGE} AS s USING {REJECTED} AS r WHERE s.line = r.line")
