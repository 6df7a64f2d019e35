"""The bulk formats a list answers in besides JSON: Apache Arrow IPC (stream), Parquet and CSV.

Each is written batch by batch as the rows arrive (``write``): what leaves the server is a
few megabytes ahead of what the database has sent, never the whole answer in memory. DRF's
content negotiation picks one from ``Accept`` or ``?format=`` (the renderers below; they
render nothing themselves: a bulk list answers with a stream, ``qvp_site.api.bulk.views``,
and a refusal in JSON).

CSV is for spreadsheets as much as programs: text cells a spreadsheet would run as a formula
(starting with = + - @, a tab or a carriage return) get a leading apostrophe, as the admin's
CSV export does (``qvp_site.admin_export``); numbers are written as numbers, vectors as their
text ``[x,y,...]`` (``csv_text``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from rest_framework.renderers import BaseRenderer, JSONRenderer

FORMULA_START = r"^[=+\-@\t\r]"


class Sink:
    """A write-only file that hands back what was written since the last ``take``: pyarrow's
    writers write into it, the response sends what it took."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []
        self._position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self._parts.append(chunk)
        self._position += len(chunk)
        return len(chunk)

    def take(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data

    def tell(self) -> int:
        return self._position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True


Writer = Callable[[pa.Schema, Iterable[pa.RecordBatch]], Iterator[bytes]]


def arrow_stream(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """Arrow's IPC stream: the schema, then each batch as it comes."""
    sink = Sink()
    writer = pa.ipc.new_stream(sink, schema)
    yield sink.take()
    for batch in batches:
        writer.write_batch(batch)
        yield sink.take()
    writer.close()
    yield sink.take()


def parquet_file(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """A Parquet file, a row group per batch, its footer last (zstd: smaller than snappy at
    about its speed for prices and times)."""
    sink = Sink()
    writer = pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, compression="zstd")
    for batch in batches:
        writer.write_batch(batch)
        yield sink.take()
    writer.close()
    yield sink.take()


def csv_text(schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> Iterator[bytes]:
    """CSV with a header line; formulas neutralised (see the module)."""
    sink = Sink()
    writer = pa_csv.CSVWriter(sink, schema)
    for batch in batches:
        writer.write_batch(neutralised(batch))
        yield sink.take()
    writer.close()
    yield sink.take()
    if not sink.tell():  # pyarrow writes the header with the first batch: none came
        yield (",".join(_quoted(name) for name in schema.names) + "\n").encode()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def neutralised(batch: pa.RecordBatch) -> pa.RecordBatch:
    """``batch`` with each text cell a spreadsheet would read as a formula prefixed by '."""
    columns = []
    for column in batch.columns:
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            formula = pc.match_substring_regex(column, FORMULA_START)
            column = pc.if_else(formula, pc.binary_join_element_wise("'", column, ""), column)
        columns.append(column)
    return pa.RecordBatch.from_arrays(columns, schema=batch.schema)


@dataclass(frozen=True)
class Format:
    name: str  # ?format=
    media_type: str
    extension: str
    write: Writer


ARROW = Format("arrow", "application/vnd.apache.arrow.stream", "arrows", arrow_stream)
PARQUET = Format("parquet", "application/vnd.apache.parquet", "parquet", parquet_file)
CSV = Format("csv", "text/csv", "csv", csv_text)
FORMATS = {f.name: f for f in (ARROW, PARQUET, CSV)}


class BulkRenderer(BaseRenderer):
    """Offers a bulk format to DRF's content negotiation. A bulk list answers with a stream
    of its own and a refusal is rendered as JSON (``BulkFormats.finalize_response``): should
    anything else reach this renderer, it is written as JSON too, never a half format."""

    bulk: Format

    def render(
        self,
        data: Any,
        accepted_media_type: str | None = None,
        renderer_context: Mapping[str, Any] | None = None,
    ) -> bytes:
        rendered: bytes = JSONRenderer().render(data, accepted_media_type, renderer_context)
        return rendered


def _renderer(fmt: Format) -> type[BulkRenderer]:
    name = f"{fmt.name.title()}Renderer"
    attributes = {"bulk": fmt, "media_type": fmt.media_type, "format": fmt.name}
    if fmt is CSV:
        attributes["charset"] = "utf-8"
    return type(name, (BulkRenderer,), attributes)


ArrowRenderer, ParquetRenderer, CsvRenderer = (_renderer(f) for f in (ARROW, PARQUET, CSV))
RENDERERS: list[type[BaseRenderer]] = [ArrowRenderer, ParquetRenderer, CsvRenderer]
