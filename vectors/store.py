"""Writing vectors: feature sets and their fitted scalers, binary COPY, index drop and rebuild.

Rows go in by binary COPY, with pgvector's binary dumper for the vector columns: a vector
travels as 4-byte floats, not as text to be parsed. A load that fills an empty table (or a
rebuild) drops the table's HNSW and IVFFlat indexes first and builds them after, which is
several times faster than inserting into the graph row by row; incremental loads keep them.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from django.db import connection
from pgvector.psycopg import register_vector
from psycopg.types.json import Jsonb

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


def _as_is(text: str) -> str:
    return text


def raw_json(raw: np.ndarray) -> list[Jsonb]:
    """Each row of raw features as a JSON array for COPY, unknown values (NaN) as null."""
    rows = np.where(np.isfinite(raw), raw, np.nan).tolist()
    return [Jsonb(json.dumps(row).replace("NaN", "null"), dumps=_as_is) for row in rows]


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


class IndexesSetAside:
    """Drop a table's vector indexes for a bulk load and build them again after it
    (``with IndexesSetAside(table, when=...):``), in the caller's transaction."""

    def __init__(self, table: str, *, when: bool = True):
        self.table = table
        self.active = when and owns(table)
        self.definitions: dict[str, str] = {}

    def __enter__(self) -> IndexesSetAside:
        if self.active:
            with connection.cursor() as cursor:
                self.definitions = vector_index_definitions(cursor, self.table)
                for name in self.definitions:
                    cursor.execute(f"DROP INDEX {ident(name)}")
        return self

    def __exit__(self, kind, error, trace) -> None:
        if error is None and self.definitions:
            with connection.cursor() as cursor:
                # The loaded rows' deferred foreign-key checks run now: PostgreSQL refuses to
                # build an index on a table with trigger events pending.
                cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
                cursor.execute(f"SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'")
                for statement in self.definitions.values():
                    cursor.execute(statement)
                cursor.execute(f"ANALYZE {ident(self.table)}")
