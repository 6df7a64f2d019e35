"""Feature sets and their fitted scalers, and how a vector table's rows are written.

Rows in bulk go by binary COPY (``qvp_site.db.binary_copy``, built with numpy). A first
load into an empty table (``bulk_load``) sets aside what it would otherwise maintain row by
row and restores it in the same transaction, each checked over the whole table once (as
pg_restore does): the foreign keys and the vector indexes (``qvp_site.db.set_aside``), and,
for an empty table only, the B-tree indexes other than the primary key, uniqueness included
(``BTreesSetAside``).

One row at a time (``insert_embedding``, what an API or a pipeline writing as it goes
calls) is one prepared INSERT with its values in binary: no text for the server to parse,
no floats for Python to format, one round trip.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.backends.utils import CursorWrapper
from psycopg import Cursor
from psycopg.abc import Buffer
from psycopg.adapt import Dumper
from psycopg.pq import Format

from qvp_site.db import engine
from qvp_site.db.quoting import ident
from qvp_site.db.set_aside import ForeignKeysSetAside, IndexesSetAside, SetAside
from vectors.features import Scaler
from vectors.models import FEATURE_DIMENSIONS, FeatureEmbedding, FeatureSet

# Serialises builds (the scheduler's and an operator's) so two never embed the same windows.
BUILD_LOCK = 0x7665_6374_6F72_7301


def lock_builds() -> None:
    """Wait for any other build, then hold the lock to the transaction's end."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s)", [BUILD_LOCK])


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


def fitted_apart(spec: SetSpec, raw: Callable[[], list[np.ndarray]]) -> None:
    """Where the engine wants it (``engine.new_keys_need_a_commit``: on Citus), a set not
    stored yet fitted on ``raw()`` (each instrument's raw features, read for it) and stored in
    a transaction of its own, before the build's: the build's writes, as a role other than
    the owner, then see the set's key. Its windows are read twice, on a set's first build
    only. Called within a transaction (a command's ``acting_as``), the set is committed with
    it: such a caller prepares the set in a transaction before the build's (the builds'
    ``prepare_set``). A build that then fails leaves the set, fitted, for the next build."""
    if not engine.new_keys_need_a_commit() or spec.stored() is not None:
        return
    with transaction.atomic():
        lock_builds()
        if spec.stored() is not None:  # another build stored it while this one waited
            return
        found = raw()
        if found:
            spec.fitted(np.concatenate(found))


def scaler_of(feature_set: FeatureSet) -> Scaler:
    """The scaler a set was fitted with, so that later rows are scaled as its first were."""
    return Scaler(center=np.array(feature_set.center), scale=np.array(feature_set.scale))


class BTreesSetAside(SetAside):
    """The table's B-tree indexes except its primary key, unique constraints included, built
    again after the load by sorting: 100,000 embeddings measured 0.25 s of the server's time
    kept row by row against 0.16 s built after. A duplicate in the load still fails it whole
    when its unique index is built again (IntegrityError naming the key). For a table that
    was empty: rebuilding indexes over rows already there would cost more than it saves."""

    def found(self, cursor: CursorWrapper) -> dict[str, str]:
        # A unique constraint comes back as a constraint (what Django's model knows), a plain
        # index as its CREATE INDEX; a constraint's name is its index's name.
        cursor.execute(
            "SELECT i.relname, coalesce("
            "  'ALTER TABLE ' || %s || ' ADD CONSTRAINT ' || quote_ident(c.conname) || ' '"
            "   || pg_get_constraintdef(c.oid), pg_get_indexdef(i.oid))"
            " FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid"
            " JOIN pg_am a ON a.oid = i.relam"
            " LEFT JOIN pg_constraint c ON c.conindid = i.oid AND c.conrelid = x.indrelid"
            " WHERE x.indrelid = %s::regclass AND a.amname = 'btree' AND NOT x.indisprimary"
            " ORDER BY 1",
            [ident(self.table), ident(self.table)],
        )
        return dict(cursor.fetchall())

    def drop(self, name: str) -> str:
        if self.definitions[name].startswith("ALTER TABLE"):
            return f"ALTER TABLE {ident(self.table)} DROP CONSTRAINT {ident(name)}"
        return f"DROP INDEX {ident(name)}"

    def restore(self, cursor: CursorWrapper) -> None:
        for statement in self.definitions.values():
            cursor.execute(statement)


@contextmanager
def bulk_load(table: str, *, rebuild: bool, empty: bool) -> Iterator[IndexesSetAside]:
    """Set aside, for the load in the block (in the caller's transaction), what a first load
    (``empty``) or a rebuild restores after it, checked; yields the vector indexes' set-aside
    (its ``definitions``: the indexes built again). Restored innermost first: the B-trees
    (uniqueness), the vector indexes, then the foreign keys, which lock the referenced
    tables' writes from the drop to the commit and so come back last."""
    bulk = rebuild or empty
    with ExitStack() as stack:
        stack.enter_context(ForeignKeysSetAside(table, when=bulk))
        vector_indexes = stack.enter_context(IndexesSetAside(table, when=bulk))
        stack.enter_context(BTreesSetAside(table, when=empty))
        yield vector_indexes


# The vector travels as a float4[] in binary and is cast by pgvector (exactly: float4 in,
# float4 out); the column's type checks its dimensions. Both arrays are built in
# PostgreSQL's binary form by numpy (psycopg would dump a list element by element: half the
# client's time a row). Prepared on each connection's first use (later rows skip parsing
# and planning), except behind a pooler in transaction mode, where the next transaction may
# find another server connection without it.
INSERT_EMBEDDING = (
    f"INSERT INTO {ident(FeatureEmbedding._meta.db_table)}"
    " (instrument_id, feature_set_id, ts, embedding, raw)"
    " VALUES (%b, %b, %b, %b::vector, %b) RETURNING id"
)


class Float4Array(bytes):
    """A one-dimensional float4[] in PostgreSQL's binary form."""


class Float8Array(bytes):
    """A one-dimensional float8[] in PostgreSQL's binary form."""


class Float4ArrayDumper(Dumper):
    format = Format.BINARY
    oid = 1021  # float4[]

    def dump(self, obj: bytes) -> Buffer:
        return obj


class Float8ArrayDumper(Float4ArrayDumper):
    oid = 1022  # float8[]


# The array's class and its element type's oid, by numpy type.
ARRAYS: dict[np.dtype[Any], tuple[type[bytes], int]] = {
    np.dtype(np.float32): (Float4Array, 700),
    np.dtype(np.float64): (Float8Array, 701),
}


def binary_array(values: np.ndarray) -> bytes:
    """``values`` (float32 or float64, one dimension) as PostgreSQL sends an array, NaN and
    infinities as NULL elements (unknown)."""
    kind, element_oid = ARRAYS[values.dtype]
    null = ~np.isfinite(values)
    width = values.dtype.itemsize
    elements = np.empty(len(values), dtype=[("length", ">i4"), ("value", f">f{width}")])
    elements["length"] = np.where(null, -1, width)
    elements["value"] = values
    header = np.array([1, int(null.any()), element_oid, len(values), 1], dtype=">i4")
    body = elements.view(np.uint8).reshape(len(values), 4 + width)
    if null.any():  # a NULL element is its length alone
        keep = np.ones(body.shape, dtype=bool)
        keep[null, 4:] = False
        return kind(header.tobytes() + body[keep].tobytes())
    return kind(header.tobytes() + body.tobytes())


def insert_embedding(
    instrument_id: int, feature_set_id: int, ts: datetime, embedding: np.ndarray, raw: np.ndarray
) -> int:
    """Store one window's embedding (in the caller's transaction, or its own in autocommit);
    returns its id. A vector of the wrong dimensions or not finite, or raw features of the
    wrong count, is a ValueError naming the field; NaN and infinite raw features are stored
    as unknown (NULL), as the bulk load stores them."""
    vector = _checked("embedding", embedding, np.float32, finite=True)
    values = _checked("raw", raw, np.float64, finite=False)
    params = (instrument_id, feature_set_id, ts, binary_array(vector), binary_array(values))
    connection.ensure_connection()
    with connection.wrap_database_errors, Cursor(connection.connection) as cursor:
        cursor.adapters.register_dumper(Float4Array, Float4ArrayDumper)
        cursor.adapters.register_dumper(Float8Array, Float8ArrayDumper)
        cursor.execute(INSERT_EMBEDDING, params, prepare=not settings.QVP_TRANSACTION_POOLING)
        row = cursor.fetchone()
    assert row is not None  # INSERT ... RETURNING gives its row
    return int(row[0])


def _checked(field: str, values: np.ndarray, dtype: type, *, finite: bool) -> np.ndarray:
    with np.errstate(over="ignore"):  # too large for a float4: infinite, refused below
        array = np.asarray(values, dtype=dtype)
    if array.shape != (FEATURE_DIMENSIONS,):
        raise ValueError(f"{field} has shape {array.shape}, not ({FEATURE_DIMENSIONS},)")
    if finite and not np.isfinite(array).all():
        raise ValueError(f"{field} has NaN or infinite values")
    return array
