"""What a bulk load drops from a table and restores after it: indexes and foreign keys.

A load that fills an empty table (or a rebuild) drops the table's HNSW and IVFFlat indexes
first and builds them after, which is several times faster than inserting into the graph row
by row, and adds its foreign keys back in one check over the table, as pg_restore does;
incremental loads keep both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db import connection

from qvp_site.db.quoting import ident
from qvp_site.db.vector_indexes import BUILD_MEMORY, vector_index_definitions

if TYPE_CHECKING:
    from types import TracebackType

    from django.db.backends.utils import CursorWrapper


def table_is_empty(table: str) -> bool:
    with connection.cursor() as cursor:
        # A select list of its own: Citus fails on an empty one over a distributed table.
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {ident(table)})")
        empty: bool = cursor.fetchone()[0]
        return empty


def owns(table: str) -> bool:
    """Whether this connection may drop and create the table's indexes (its owner's role)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_has_role(current_user, relowner, 'USAGE') FROM pg_class"
            " WHERE oid = %s::regclass",
            [ident(table)],
        )
        owner: bool = cursor.fetchone()[0]
        return owner


class SetAside:
    """What a bulk load drops from a table and restores after it (``with
    IndexesSetAside(table, when=...):``), in the caller's transaction; only the table's
    owner may, so for others it does nothing."""

    def __init__(self, table: str, *, when: bool = True) -> None:
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

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if error is None and self.definitions:
            with connection.cursor() as cursor:
                self.restore(cursor)

    def found(self, cursor: CursorWrapper) -> dict[str, str]:
        raise NotImplementedError

    def drop(self, name: str) -> str:
        raise NotImplementedError

    def restore(self, cursor: CursorWrapper) -> None:
        raise NotImplementedError


class IndexesSetAside(SetAside):
    """The table's vector indexes, built again after the load."""

    def found(self, cursor: CursorWrapper) -> dict[str, str]:
        return vector_index_definitions(cursor, self.table)

    def drop(self, name: str) -> str:
        return f"DROP INDEX {ident(name)}"

    def restore(self, cursor: CursorWrapper) -> None:
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

    def found(self, cursor: CursorWrapper) -> dict[str, str]:
        cursor.execute(
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
            " WHERE conrelid = %s::regclass AND contype = 'f' ORDER BY conname",
            [ident(self.table)],
        )
        return dict(cursor.fetchall())

    def drop(self, name: str) -> str:
        return f"ALTER TABLE {ident(self.table)} DROP CONSTRAINT {ident(name)}"

    def restore(self, cursor: CursorWrapper) -> None:
        for name, definition in self.definitions.items():
            cursor.execute(
                f"ALTER TABLE {ident(self.table)} ADD CONSTRAINT {ident(name)} {definition}"
            )
