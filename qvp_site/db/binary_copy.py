"""Binary COPY: rows into a table in PostgreSQL's binary wire format, not as text to parse.

A vector travels as 4-byte floats. ``copy_columns`` builds the whole COPY payload with numpy,
column by column (a structured array whose fields are PostgreSQL's binary wire formats),
instead of handing psycopg one row at a time: the feature embeddings' bulk load went from
about 12,000 rows/s to the server's own pace (bench/vectors.py). ``copy_rows`` is the simple
road, one tuple at a time, for loads too small to need more.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from django.db import connection
from pgvector.psycopg import register_vector

from qvp_site.db.copy_refusals import refusals_as_integrity_errors
from qvp_site.db.quoting import ident


def copy_rows(
    table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable[Sequence[Any]]
) -> int:
    """Binary COPY of ``rows`` (tuples in ``columns`` order, of PostgreSQL ``types``); its
    errors Django's, as ``copy_columns``'s are."""
    register_vector(connection.connection)
    names = ", ".join(ident(c) for c in columns)
    count = 0
    with (
        refusals_as_integrity_errors(),
        connection.wrap_database_errors,
        connection.cursor() as wrapper,
    ):
        statement = f"COPY {ident(table)} ({names}) FROM STDIN (FORMAT BINARY)"
        with wrapper.cursor.copy(statement) as copy:
            copy.set_types(list(types))
            for row in rows:
                copy.write_row(row)
                count += 1
    return count


# Binary COPY framing: the signature, flags and header extension; the trailer.
SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
TRAILER = b"\xff\xff"
EPOCH = np.datetime64("2000-01-01T00:00:00", "us")  # PostgreSQL's timestamps count from here
FLOAT8_OID = 701  # an array's element type, named in its binary form
CHUNK_ROWS = 4096  # rows encoded at a time: about 9 MB; bigger chunks measured slower


@dataclass(frozen=True)
class CopyColumn:
    """One column of a binary COPY, as an array of its values: ``int8`` (integers),
    ``timestamptz`` (``datetime64``, UTC), ``vector`` (rows x dimensions floats, stored as
    float4; the declared ``dimensions`` checked) or ``float8[]`` (rows x n floats; NaN and
    infinities become NULL elements: unknown)."""

    name: str
    type: str
    values: np.ndarray
    dimensions: int | None = None

    def fields(self) -> list[tuple[Any, ...]]:
        """The column's part of a row, as numpy structured fields (big-endian, packed)."""
        length = (f"{self.name}.length", ">i4")
        if self.type in ("int8", "timestamptz"):
            return [length, (self.name, ">i8")]
        width = self.values.shape[1]
        if self.type == "vector":
            return [
                length,
                (f"{self.name}.dim", ">i2"),
                (f"{self.name}.unused", ">i2"),
                (self.name, ">f4", (width,)),
            ]
        header = [
            (f"{self.name}.{part}", ">i4") for part in ("ndim", "flags", "oid", "size", "lbound")
        ]
        element = np.dtype([("length", ">i4"), ("value", ">f8")])
        return [length, *header, (self.name, element, (width,))]


def columns_of(
    names: Sequence[str], types: Sequence[str], values: Sequence[Any], dimensions: dict[str, int]
) -> list[CopyColumn]:
    """Checked columns for ``copy_columns``: every vector of the declared dimensions and
    finite, or a ValueError naming the first row that is not (counted from 0)."""
    columns = []
    for name, kind, data in zip(names, types, values, strict=True):
        if kind == "timestamptz":
            array = np.asarray(data)
            if array.dtype.kind != "M":  # datetime objects carry zones numpy would drop
                raise TypeError(f"{name}: timestamptz values must be datetime64 in UTC")
            array = (array.astype("M8[us]") - EPOCH).astype(np.int64)
        elif kind == "int8":
            array = np.asarray(data, dtype=np.int64)
        elif kind == "vector":
            array = _vectors(name, data, dimensions[name])
        elif kind == "float8[]":
            array = np.asarray(data, dtype=np.float64)
        else:
            raise ValueError(f"{name}: no columnar COPY for type {kind}")
        columns.append(CopyColumn(name, kind, array, dimensions.get(name)))
    lengths = {len(c.values) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return columns


def _vectors(name: str, data: Sequence[Any] | np.ndarray, dimensions: int) -> np.ndarray:
    try:
        with np.errstate(over="ignore"):  # too large for a float4: infinite, refused below
            array = np.asarray(data, dtype=np.float32)
    except ValueError:  # ragged: name the first row whose length differs
        sizes = np.array([len(v) for v in data])
        row = int(np.argmax(sizes != dimensions))
        raise ValueError(
            f"row {row}: {name} has {sizes[row]} dimensions, not {dimensions}"
        ) from None
    if array.ndim != 2 or array.shape[1] != dimensions:
        got = array.shape[1] if array.ndim == 2 else array.shape[1:]
        raise ValueError(f"row 0: {name} has {got} dimensions, not {dimensions}")
    bad = ~np.isfinite(array).all(axis=1)  # float4 overflow included: it became infinity
    if bad.any():
        raise ValueError(f"row {int(np.argmax(bad))}: {name} has NaN or infinite values")
    return array


def encoded(columns: Sequence[CopyColumn]) -> Iterator[memoryview]:
    """The rows of ``columns`` in PostgreSQL's binary COPY format, a chunk at a time."""
    layout = np.dtype([("count", ">i2")] + [f for c in columns for f in c.fields()])
    for start in range(0, len(columns[0].values), CHUNK_ROWS):
        part = [(c, c.values[start : start + CHUNK_ROWS]) for c in columns]
        rows = np.empty(len(part[0][1]), dtype=layout)  # every byte is set below
        rows["count"] = len(columns)
        keep = None  # words to send, when some array element is NULL (sent as its length alone)
        for column, values in part:
            keep = _fill(rows, column, values, keep)
        # Every field is a whole number of 2-byte words: masking words halves the work.
        words = rows.view(np.uint16).reshape(len(rows), layout.itemsize // 2)
        yield (words if keep is None else words[keep]).data.cast("B")


def _fill(
    rows: np.ndarray, column: CopyColumn, values: np.ndarray, keep: npt.NDArray[np.bool_] | None
) -> npt.NDArray[np.bool_] | None:
    name = column.name
    if column.type in ("int8", "timestamptz"):
        rows[f"{name}.length"], rows[name] = 8, values
        return keep
    width = values.shape[1]
    if column.type == "vector":
        rows[f"{name}.length"], rows[f"{name}.dim"], rows[name] = 4 + 4 * width, width, values
        rows[f"{name}.unused"] = 0
        return keep
    null = ~np.isfinite(values)
    nulls = null.sum(axis=1)
    rows[f"{name}.length"] = 20 + 12 * width - 8 * nulls
    rows[f"{name}.ndim"], rows[f"{name}.flags"] = 1, nulls > 0
    rows[f"{name}.oid"], rows[f"{name}.size"], rows[f"{name}.lbound"] = FLOAT8_OID, width, 1
    rows[name]["value"] = values  # a NULL element's bytes are dropped below
    if not nulls.any():
        rows[name]["length"] = 8
        return keep
    rows[name]["length"] = np.where(null, -1, 8)
    if keep is None:
        keep = np.ones((len(rows), rows.dtype.itemsize // 2), dtype=bool)
    fields = rows.dtype.fields
    assert fields is not None  # a structured dtype: its fields are named
    start = fields[name][1] // 2
    elements = keep[:, start : start + 6 * width].reshape(len(rows), width, 6)
    elements[:, :, 2:] = ~null[:, :, None]  # a NULL element has no value bytes
    return keep


def copy_columns(table: str, columns: Sequence[CopyColumn]) -> int:
    """Binary COPY of ``columns`` (see ``columns_of``) into ``table``; returns the rows."""
    names = ", ".join(ident(c.name) for c in columns)
    # psycopg's COPY errors as Django's (DataError, IntegrityError), as a cursor's would be;
    # on Citus a worker's refusal too (copy_refusals).
    with (
        refusals_as_integrity_errors(),
        connection.wrap_database_errors,
        connection.cursor() as wrapper,
    ):
        statement = f"COPY {ident(table)} ({names}) FROM STDIN (FORMAT BINARY)"
        with wrapper.cursor.copy(statement) as copy:
            copy.write(SIGNATURE)
            for chunk in encoded(columns):
                copy.write(chunk)
            copy.write(TRAILER)
    return len(columns[0].values) if columns else 0
