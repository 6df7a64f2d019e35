"""Writing vectors: feature sets and their fitted scalers, binary COPY, index drop and rebuild.

Rows go in by binary COPY: a vector travels as 4-byte floats, not as text to be parsed.
``copy_columns`` builds the whole COPY payload with numpy, column by column (a structured
array whose fields are PostgreSQL's binary wire formats), instead of handing psycopg one row
at a time: the feature embeddings' bulk load went from about 12,000 rows/s to the server's
own pace (bench/vectors.py). A load that fills an empty table (or a rebuild) drops the
table's HNSW and IVFFlat indexes first and builds them after, which is several times faster
than inserting into the graph row by row; incremental loads keep them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection
from pgvector.psycopg import register_vector

from qvp_site.db.quoting import ident
from qvp_site.db.vector_indexes import BUILD_MEMORY, vector_index_definitions
from vectors.features import Scaler
from vectors.models import FeatureSet


@dataclass(frozen=True)
class SetSpec:
    """What a feature set is, before it is fitted: the pipeline's name, version and layout."""

    name: str
    version: int
    kind: str
    timeframe: str
    stride: int
    feature_names: tuple[str, ...]
    description: str

    @property
    def dimensions(self) -> int:
        return len(self.feature_names)

    def stored(self) -> FeatureSet | None:
        return FeatureSet.objects.filter(name=self.name, version=self.version).first()

    def fitted(self, raw: np.ndarray) -> FeatureSet:
        """The stored set, or a new one whose scaler is fitted on ``raw`` (its first build)."""
        found = self.stored()
        if found is not None:
            if list(found.feature_names) != list(self.feature_names):
                raise ValueError(f"{self.name} v{self.version} is stored with other features")
            return found
        scaler = Scaler.fit(raw)
        return FeatureSet.objects.create(
            name=self.name,
            version=self.version,
            kind=self.kind,
            dimensions=self.dimensions,
            timeframe=self.timeframe,
            stride=self.stride,
            feature_names=list(self.feature_names),
            center=scaler.center.tolist(),
            scale=scaler.scale.tolist(),
            fitted_rows=len(raw),
            description=self.description,
        )


def scaler_of(feature_set: FeatureSet) -> Scaler:
    return Scaler(center=np.array(feature_set.center), scale=np.array(feature_set.scale))


def copy_rows(table: str, columns: Sequence[str], types: Sequence[str], rows: Iterable) -> int:
    """Binary COPY of ``rows`` (tuples in ``columns`` order, of PostgreSQL ``types``)."""
    register_vector(connection.connection)
    names = ", ".join(ident(c) for c in columns)
    count = 0
    with connection.cursor() as wrapper:
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
class Column:
    """One column of a binary COPY, as an array of its values: ``int8`` (integers),
    ``timestamptz`` (``datetime64``, UTC), ``vector`` (rows x dimensions floats, stored as
    float4; the declared ``dimensions`` checked) or ``float8[]`` (rows x n floats; NaN and
    infinities become NULL elements: unknown)."""

    name: str
    type: str
    values: np.ndarray
    dimensions: int | None = None

    def fields(self) -> list[tuple]:
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
    names: Sequence[str], types: Sequence[str], values: Sequence, dimensions: dict[str, int]
) -> list[Column]:
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
        columns.append(Column(name, kind, array, dimensions.get(name)))
    lengths = {len(c.values) for c in columns}
    if len(lengths) > 1:
        raise ValueError(f"columns of different lengths: {sorted(lengths)}")
    return columns


def _vectors(name: str, data, dimensions: int) -> np.ndarray:
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


def encoded(columns: Sequence[Column]) -> Iterator[memoryview]:
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
        yield memoryview(words if keep is None else words[keep]).cast("B")


def _fill(rows: np.ndarray, column: Column, values: np.ndarray, keep):
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
    start = rows.dtype.fields[name][1] // 2
    elements = keep[:, start : start + 6 * width].reshape(len(rows), width, 6)
    elements[:, :, 2:] = ~null[:, :, None]  # a NULL element has no value bytes
    return keep


def copy_columns(table: str, columns: Sequence[Column]) -> int:
    """Binary COPY of ``columns`` (see ``columns_of``) into ``table``; returns the rows."""
    names = ", ".join(ident(c.name) for c in columns)
    # psycopg's COPY errors as Django's (DataError, IntegrityError), as a cursor's would be.
    with connection.wrap_database_errors, connection.cursor() as wrapper:
        statement = f"COPY {ident(table)} ({names}) FROM STDIN (FORMAT BINARY)"
        with wrapper.cursor.copy(statement) as copy:
            copy.write(SIGNATURE)
            for chunk in encoded(columns):
                copy.write(chunk)
            copy.write(TRAILER)
    return len(columns[0].values) if columns else 0


def table_is_empty(table: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT NOT EXISTS (SELECT FROM {ident(table)})")
        return cursor.fetchone()[0]


def owns(table: str) -> bool:
    """Whether this connection may drop and create the table's indexes (its owner's role)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
            " WHERE oid = %s::regclass",
            [ident(table)],
        )
        return cursor.fetchone()[0]


class SetAside:
    """What a bulk load drops from a table and restores after it (``with
    IndexesSetAside(table, when=...):``), in the caller's transaction; only the table's
    owner may, so for others it does nothing."""

    def __init__(self, table: str, *, when: bool = True):
        self.table = table
        self.active = when and owns(table)
        self.definitions: dict[str, str] = {}  # name -> what restores it

    def __enter__(self) -> SetAside:
        if self.active:
            with connection.cursor() as cursor:
                self.definitions = self.found(cursor)
                for name in self.definitions:
                    cursor.execute(self.drop(name))
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is None and self.definitions:
            with connection.cursor() as cursor:
                self.restore(cursor)

    def found(self, cursor) -> dict[str, str]:
        raise NotImplementedError

    def drop(self, name: str) -> str:
        raise NotImplementedError

    def restore(self, cursor) -> None:
        raise NotImplementedError


class IndexesSetAside(SetAside):
    """The table's vector indexes, built again after the load."""

    def found(self, cursor) -> dict[str, str]:
        return vector_index_definitions(cursor, self.table)

    def drop(self, name: str) -> str:
        return f"DROP INDEX {ident(name)}"

    def restore(self, cursor) -> None:
        # The loaded rows' deferred foreign-key checks run now: PostgreSQL refuses to build
        # an index on a table with trigger events pending.
        cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
        cursor.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
        for statement in self.definitions.values():
            cursor.execute(statement)
        cursor.execute(f"ANALYZE {ident(self.table)}")


class ForeignKeysSetAside(SetAside):
    """The table's foreign keys, added again after the load, as pg_restore does.

    Loaded with its keys in place, each row queues one deferred check per key, run one by
    one at commit: for 100,000 embeddings that was over a second, more than the COPY itself.
    Added after, each key is checked over the whole table in one query, and the load still
    fails whole if a row points nowhere. The price: from the drop to the commit, rows of the
    referenced tables (instruments, feature sets) cannot be written, so this is for first
    loads and rebuilds, like IndexesSetAside, not for incremental loads."""

    def found(self, cursor) -> dict[str, str]:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            [ident(self.table)],
        )
        return dict(cursor.fetchall())

    def drop(self, name: str) -> str:
        return f"ALTER TABLE {ident(self.table)} DROP CONSTRAINT {ident(name)}"

    def restore(self, cursor) -> None:
        for name, definition in self.definitions.items():
            cursor.execute(
                f"ALTER TABLE {ident(self.table)} ADD CONSTRAINT {ident(name)} {definition}"
            )
