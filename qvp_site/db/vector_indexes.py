"""Approximate nearest-neighbour indexes on pgvector columns, as a migration operation.

``CreateVectorIndex`` is written the way ``django.contrib.postgres.operations.CreateExtension``
is: reversible, ``describe()``, ``migration_name_fragment``, idempotent SQL with quoted names.
It leaves Django's model state alone, like the time-series operations beside it, so the index
is the operation's alone: a full reload can drop it and build it again from ``index_sql``.

- HNSW (the default): a graph that needs no data to be built, so it is created at once, with
  the operator class of the distance its searches use and its ``m`` and ``ef_construction``.
- IVFFlat, for whoever asks for it: its lists are k-means centroids of the rows present when
  it is built, so on an empty table it would be useless. It is built only where the table has
  rows, with lists from the row count as pgvector's README advises (rows / 1000 up to a
  million rows, sqrt(rows) beyond), and otherwise skipped with a logged note; calling
  ``create_vector_index`` after a load builds it then.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qvp_site.db.plpgsql import do_block, warnings_logged
from qvp_site.db.quoting import ident, literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.backends.utils import CursorWrapper
    from django.db.migrations.state import ProjectState

logger = logging.getLogger(__name__)

HNSW, IVFFLAT = "hnsw", "ivfflat"
# Distance name -> pgvector operator class and the operator that searches must ORDER BY.
DISTANCES = {
    "cosine": ("vector_cosine_ops", "<=>"),
    "l2": ("vector_l2_ops", "<->"),
    "inner_product": ("vector_ip_ops", "<#>"),
}
# Memory for the build: an HNSW graph built within maintenance_work_mem is several times
# faster than one that spills.
BUILD_MEMORY = "512MB"


def ivfflat_lists(rows: int) -> int:
    """pgvector's advice: rows / 1000 lists up to a million rows, sqrt(rows) beyond."""
    if rows <= 1_000_000:
        return max(1, rows // 1000)
    return int(math.sqrt(rows))


@dataclass(frozen=True)
class VectorIndex:
    """One index on one vector column; ``lists`` None means 'from the row count'."""

    name: str
    table: str
    column: str
    method: str = HNSW
    distance: str = "cosine"
    m: int = 16
    ef_construction: int = 64
    lists: int | None = None

    def __post_init__(self) -> None:
        if self.method not in (HNSW, IVFFLAT):
            raise ValueError(f"unknown method {self.method!r} (hnsw or ivfflat)")
        if self.distance not in DISTANCES:
            raise ValueError(f"unknown distance {self.distance!r} ({', '.join(DISTANCES)})")
        if self.method == HNSW and not (2 <= self.m <= 100):
            raise ValueError("m must lie between 2 and 100")
        if self.method == HNSW and not (4 <= self.ef_construction <= 1000):
            raise ValueError("ef_construction must lie between 4 and 1000")
        if self.method == HNSW and self.ef_construction < 2 * self.m:
            raise ValueError("ef_construction must be at least twice m")
        if self.lists is not None and not (1 <= self.lists <= 32768):
            raise ValueError("lists must lie between 1 and 32768")

    def sql(self, rows: int = 0) -> str:
        """CREATE INDEX IF NOT EXISTS; ``rows`` sets an IVFFlat's lists when none were given."""
        if self.method == HNSW:
            options = f"m = {int(self.m)}, ef_construction = {int(self.ef_construction)}"
        else:
            options = f"lists = {int(self.lists or ivfflat_lists(rows))}"
        return f"{self._head()} WITH ({options})"

    def _head(self) -> str:
        """The CREATE INDEX statement up to its options."""
        opclass = DISTANCES[self.distance][0]
        return (
            f"CREATE INDEX IF NOT EXISTS {ident(self.name)} ON {ident(self.table)}"
            f" USING {self.method} ({ident(self.column)} {opclass})"
        )

    def build_sql(self) -> list[str]:
        """The statements that build the index, the same whatever the table holds: an HNSW at
        once; an IVFFlat only where the table has rows, its lists from their count unless
        given, decided by the server (a warning says so when it is skipped)."""
        memory = f"SET LOCAL maintenance_work_mem = {literal(BUILD_MEMORY)}"
        if self.method == HNSW:
            return [memory, self.sql()]
        note = (
            f"IVFFlat index {self.name} not built: {self.table} has no rows to draw its lists"
            " from; call create_vector_index after loading data"
        )
        lists = str(int(self.lists)) if self.lists else _IVFFLAT_LISTS_SQL
        return [
            do_block(f"""
DECLARE
    qvp_rows bigint := (SELECT count(*) FROM {ident(self.table)});
BEGIN
    IF qvp_rows = 0 THEN
        RAISE WARNING '%', {literal(note)};
        RETURN;
    END IF;
    {memory};
    EXECUTE {literal(self._head() + " WITH (lists = ")} || ({lists})::text || ')';
END
""")
        ]


# ivfflat_lists(qvp_rows), for the server.
_IVFFLAT_LISTS_SQL = (
    "CASE WHEN qvp_rows <= 1000000 THEN greatest(1, qvp_rows / 1000)"
    " ELSE floor(sqrt(qvp_rows))::bigint END"
)


def create_vector_index(cursor: CursorWrapper, index: VectorIndex) -> bool:
    """Build ``index`` unless it exists; an IVFFlat on an empty table is skipped (False)."""
    with warnings_logged(cursor.connection, logger):
        for statement in index.build_sql():
            cursor.execute(statement)
    cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [ident(index.name)])
    return bool(cursor.fetchone()[0])


def drop_index_sql(name: str) -> str:
    return f"DROP INDEX IF EXISTS {ident(name)}"


def vector_index_definitions(cursor: CursorWrapper, table: str) -> dict[str, str]:
    """The HNSW and IVFFlat indexes on ``table`` as {name: CREATE INDEX statement}, so that a
    bulk load can drop them and build them again as they were."""
    cursor.execute(
        "SELECT i.relname, pg_get_indexdef(i.oid) FROM pg_index x"
        " JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_am a ON a.oid = i.relam"
        " WHERE x.indrelid = %s::regclass AND a.amname IN ('hnsw', 'ivfflat') ORDER BY 1",
        [ident(table)],
    )
    return dict(cursor.fetchall())


class CreateVectorIndex(SqlOperation):
    """An HNSW (default) or IVFFlat index on ``field`` of ``model_name`` for ``distance``."""

    def __init__(
        self,
        model_name: str,
        name: str,
        field: str,
        distance: str = "cosine",
        method: str = HNSW,
        m: int = 16,
        ef_construction: int = 64,
        lists: int | None = None,
    ):
        self.model_name = model_name
        self.name = name
        self.field = field
        self.distance = distance
        self.method = method
        self.m = m
        self.ef_construction = ef_construction
        self.lists = lists
        self._index("-")  # validates the arguments now, not when the migration runs

    def _index(self, table: str, column: str | None = None) -> VectorIndex:
        return VectorIndex(
            name=self.name,
            table=table,
            column=column or self.field,
            method=self.method,
            distance=self.distance,
            m=self.m,
            ef_construction=self.ef_construction,
            lists=self.lists,
        )

    def _target(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> VectorIndex | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None:
            return None
        column = model._meta.get_field(self.field).column
        return self._index(model._meta.db_table, column)

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        index = self._target(app_label, schema_editor, state)
        return [] if index is None else index.build_sql()

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        index = self._target(app_label, schema_editor, state)
        return [] if index is None else [drop_index_sql(index.name)]

    def database_forwards(
        self,
        app_label: str,
        schema_editor: BaseDatabaseSchemaEditor,
        from_state: ProjectState,
        to_state: ProjectState,
    ) -> None:
        # An IVFFlat index on an empty table is skipped with a server WARNING: logged here.
        connection = schema_editor.connection
        connection.ensure_connection()
        with warnings_logged(connection.connection, logger):
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def describe(self) -> str:
        if self.method == HNSW:
            how = f"m={self.m}, ef_construction={self.ef_construction}"
        else:
            how = f"lists={self.lists}" if self.lists else "lists from the row count"
        return (
            f"Create {self.method} index {self.name} on {self.model_name}.{self.field}"
            f" for {self.distance} distance ({how})"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"{self.method}_{self.name.lower()}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "name": self.name,
            "field": self.field,
        }
        defaults = {"distance": "cosine", "method": HNSW, "m": 16, "ef_construction": 64}
        for key, default in defaults.items():
            if getattr(self, key) != default:
                kwargs[key] = getattr(self, key)
        if self.lists is not None:
            kwargs["lists"] = self.lists
        return self.__class__.__qualname__, [], kwargs
