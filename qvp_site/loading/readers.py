"""Files, or rows in memory, as a stream of CSV bytes for COPY, plus their header and first rows.

The fast path hands PostgreSQL the file's own bytes, block by block: COPY's CSV parser splits
and types the fields (CRLF included), so Python does no work per row. ``rows()`` is the slow,
forgiving reading (Python's csv module, exact line numbers, any field count) used only when
COPY refuses the file, and to copy rejected rows out. Parquet is turned into CSV per record
batch by pyarrow, and rows already in memory (a batch posted to the API) are written as CSV
into memory, so all take the same road, and none goes through a temporary file.
"""

from __future__ import annotations

import csv
import hashlib
import io
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pyarrow as pa

BLOCK_SIZE = 1 << 20
ROWS_PER_BLOCK = 10_000  # rows in memory handed to COPY at a time
SAMPLE_ROWS = 5
DELIMITERS = (",", ";", "\t", "|")


class ReadError(ValueError):
    """The file cannot be read as CSV or Parquet (empty, no header, not UTF-8...)."""


@dataclass
class Source:
    """A file to load: its header, a sample of rows, and its data as CSV bytes."""

    path: Path | None  # None: rows in memory
    name: str  # what refusals and progress call it: the file's name
    header: list[str]
    sample: list[list[str]]
    delimiter: str
    first_position: int  # line (CSV) or row (Parquet) number of the first data row
    position_label: str  # "line" or "row"
    total: int  # for progress: the file's size in bytes (CSV) or its rows (Parquet)
    unit: str  # "B" or "rows"

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        """The data rows as CSV bytes, with the progress each block makes."""
        raise NotImplementedError

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        """Each data row as (position, fields), blank lines left out."""
        raise NotImplementedError


def open_source(path: Path, delimiter: str | None = None) -> Source:
    """A Source for a CSV file or, by its extension or magic bytes, a Parquet file."""
    path = Path(path)
    with path.open("rb") as f:
        magic = f.read(4)
    if path.suffix.lower() in (".parquet", ".pq") or magic == b"PAR1":
        return ParquetSource.open(path)
    return CsvSource.open(path, delimiter)


class CsvSource(Source):
    path: Path  # always a file
    header_end: int = 0  # byte offset where the data rows start

    @classmethod
    def open(cls, path: Path, delimiter: str | None) -> CsvSource:
        with path.open("rb") as f:
            head = f.read(BLOCK_SIZE)
        lines = head.splitlines(keepends=True)
        skipped = 0
        while lines and not lines[0].strip(b"\xef\xbb\xbf \t\r\n"):
            skipped += 1
            lines.pop(0)
        if not lines:
            raise ReadError(f"{path.name} is empty")
        header_line = _decode(lines[0], path).lstrip("\ufeff")
        delimiter = delimiter or _sniff_delimiter(header_line)
        sample_text = [_decode(line, path) for line in lines[1 : SAMPLE_ROWS + 1]]
        parsed = list(csv.reader([header_line, *sample_text], delimiter=delimiter))
        source = cls(
            path=path,
            name=path.name,
            header=parsed[0],
            sample=[row for row in parsed[1:] if row],
            delimiter=delimiter,
            first_position=skipped + 2,
            position_label="line",
            total=path.stat().st_size,
            unit="B",
        )
        source.header_end = sum(len(line) for line in head.splitlines(keepends=True)[: skipped + 1])
        return source

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        # One block of look-ahead, so that blank lines at the very end (which COPY would
        # take for a row of missing fields) can be trimmed.
        with self.path.open("rb") as f:
            f.seek(self.header_end)
            pending = f.read(BLOCK_SIZE)
            yield b"", self.header_end
            while pending:
                block = f.read(BLOCK_SIZE)
                if not block:
                    trimmed = pending.rstrip(b"\r\n \t")
                    yield (trimmed + b"\n" if trimmed else b""), len(pending)
                    break
                yield pending, len(pending)
                pending = block

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        with self.path.open("rb") as f:
            f.seek(self.header_end)
            text = io.TextIOWrapper(f, encoding="utf-8", newline="")
            reader = csv.reader(text, delimiter=self.delimiter)
            before = 0
            try:
                for fields in reader:
                    start, before = self.first_position + before, reader.line_num
                    if fields and any(v.strip() for v in fields):
                        yield start, fields
            except UnicodeDecodeError as error:
                raise ReadError(f"{self.path.name} is not UTF-8 text: {error}") from error


class ParquetSource(Source):
    path: Path  # always a file

    @classmethod
    def open(cls, path: Path) -> ParquetSource:
        import pyarrow.parquet as pq

        try:
            parquet = pq.ParquetFile(path)
        except Exception as error:  # pyarrow raises several kinds for a bad file
            raise ReadError(f"{path.name} is not a readable Parquet file: {error}") from error
        header = list(parquet.schema_arrow.names)
        sample = []
        for batch in parquet.iter_batches(batch_size=SAMPLE_ROWS):
            sample = list(csv.reader(io.StringIO(_batch_csv(batch).decode(), newline="")))
            break
        return cls(
            path=path,
            name=path.name,
            header=header,
            sample=sample,
            delimiter=",",
            first_position=1,
            position_label="row",
            total=parquet.metadata.num_rows,
            unit="rows",
        )

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        import pyarrow.parquet as pq

        for batch in pq.ParquetFile(self.path).iter_batches(batch_size=65_536):
            yield _batch_csv(batch), batch.num_rows

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        # Lines split on \n and \r only, as csv expects (str.splitlines knows a dozen more).
        lines = (
            line for block, _ in self.blocks() for line in io.StringIO(block.decode(), newline="")
        )
        yield from enumerate(csv.reader(lines), start=self.first_position)


class RowsSource(Source):
    """Rows already in memory, each a sequence of values in the header's order, read as a CSV
    file of them would be (the first row is row 1), without one being written."""

    fields: list[list[str]]

    @classmethod
    def of(cls, name: str, header: Sequence[str], rows: Iterable[Sequence[object]]) -> RowsSource:
        fields = [[_as_text(value) for value in row] for row in rows]
        source = cls(
            path=None,
            name=name,
            header=list(header),
            sample=fields[:SAMPLE_ROWS],
            delimiter=",",
            first_position=1,
            position_label="row",
            total=len(fields),
            unit="rows",
        )
        source.fields = fields
        return source

    def blocks(self) -> Iterator[tuple[bytes, int]]:
        for start in range(0, len(self.fields), ROWS_PER_BLOCK):
            chunk = self.fields[start : start + ROWS_PER_BLOCK]
            yield _csv_lines(chunk), len(chunk)

    def rows(self) -> Iterator[tuple[int, list[str]]]:
        yield from enumerate(self.fields, start=self.first_position)

    def sha256(self) -> str:
        """The digest of the header and rows as CSV, as a file of them would have."""
        digest = hashlib.sha256(_csv_lines([self.header]))
        for block, _ in self.blocks():
            digest.update(block)
        return digest.hexdigest()


def _csv_lines(rows: list[list[str]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode("utf-8")


def _as_text(value: object) -> str:
    """A value as a CSV field: empty for None (COPY reads it as NULL), ISO 8601 for a time,
    a float's shortest exact text (``str`` is ``repr`` for floats)."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def _batch_csv(batch: pa.RecordBatch) -> bytes:
    """A record batch as CSV lines, no header. pyarrow writes timestamps ISO-8601 (with a Z
    when they carry a time zone) and nulls as empty fields, which COPY reads as NULL."""
    import pyarrow.csv as pacsv

    sink = io.BytesIO()
    pacsv.write_csv(batch, sink, pacsv.WriteOptions(include_header=False))
    return sink.getvalue()


def _decode(line: bytes, path: Path) -> str:
    try:
        return line.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as error:
        raise ReadError(f"{path.name} is not UTF-8 text: {error}") from error


def _sniff_delimiter(header_line: str) -> str:
    counts = {d: header_line.count(d) for d in DELIMITERS}
    best = max(counts, key=counts.__getitem__)
    return best if counts[best] else ","
