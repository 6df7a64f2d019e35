"""On Citus, the summary tables of a distributed table distributed beside it.

A summary table (``CreateContinuousAggregate`` on plain PostgreSQL: buckets keyed on the
aggregate's groups and the bucket) grouped by its source's distribution column holds, in each
row, one instrument's bucket: it can sit in the same shard group as the rows it sums. There a
refresh by range (``qvp_refresh_summary``, a load's rollup in marketdata/aggregates.py) is an
``INSERT ... SELECT`` that each shard runs over its own rows, all shards at once, and the
summary of one instrument is read on one shard. Left on the coordinator, every refresh
brought the range's buckets of every shard there to write them.

Which summaries are distributed is read from the catalog (``qvp_timeseries_aggregate``) when
the migration runs: every summary of the table whose groups hold the distribution column and
that is not distributed yet. Unapplied, they go back to the coordinator
(``undistribute_table``: a summary has no identity column), with their rows and the names
of their constraints. Elsewhere nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qvp_site.db import engine
from qvp_site.db.plpgsql import do_block
from qvp_site.db.quoting import literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState

# The summaries of a table (its name as the placeholder {table}) and whether each is
# distributed: those grouped by the table's distribution column, which the loop's body
# distributes beside it, or undistributes.
_SUMMARIES = """
SELECT a.view_name, d.column_name,
       EXISTS (SELECT 1 FROM pg_dist_partition x
               WHERE x.logicalrelid = to_regclass(quote_ident(a.view_name))) AS distributed
FROM qvp_timeseries_aggregate a
CROSS JOIN LATERAL (
    SELECT column_to_column_name(p.logicalrelid, p.partkey) AS column_name
    FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass(quote_ident(a.source_table))
) d
WHERE a.source_table = {table} AND d.column_name = ANY (a.group_by)
  AND to_regclass(quote_ident(a.view_name)) IS NOT NULL
ORDER BY a.view_name"""


# After undistribute_table, which makes the table again under a name of its own, its NOT NULL
# constraints keep that name ("<table>_<number>_bucket_not_null"): named back as PostgreSQL
# names them, so that the schema is the one the migrations made.
_NOT_NULL_NAMED_BACK = """
        FOR c IN SELECT n.conname, a.attname FROM pg_constraint n
                 JOIN pg_attribute a ON a.attrelid = n.conrelid AND a.attnum = n.conkey[1]
                 WHERE n.conrelid = to_regclass(quote_ident(s.view_name)) AND n.contype = 'n'
                   AND n.conname <> s.view_name || '_' || a.attname || '_not_null'
        LOOP
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', s.view_name,
                           c.conname, s.view_name || '_' || c.attname || '_not_null');
        END LOOP"""


def _loop(table: str, condition: str, statement: str) -> str:
    query = _SUMMARIES.replace("{table}", literal(table)).replace("\n", "\n        ")
    return do_block(f"""
DECLARE
    s record;
    c record;
BEGIN
    FOR s IN {query.strip()}
    LOOP
        CONTINUE WHEN {condition};
        {statement};
    END LOOP;
END""")


class DistributeSummaries(SqlOperation):
    """On Citus, the summary tables of ``model_name``'s table grouped by its distribution
    column distributed by that column, colocated with the table (see the module's
    docstring)."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def _table(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> str | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not engine.is_citus(schema_editor.connection):
            return None
        return str(model._meta.db_table)

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        distribute = (
            "PERFORM create_distributed_table(quote_ident(s.view_name), s.column_name,"
            f" colocate_with => {literal(table)})"
        )
        return [_loop(table, "s.distributed", distribute)]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        undistribute = (
            f"PERFORM undistribute_table(quote_ident(s.view_name));{_NOT_NULL_NAMED_BACK}"
        )
        return [_loop(table, "NOT s.distributed", undistribute)]

    def describe(self) -> str:
        return f"On Citus, distribute the summaries of {self.model_name} beside it"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name], {}
