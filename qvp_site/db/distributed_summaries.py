"""On Citus, the summary tables of a distributed table distributed beside it.

A summary table (``CreateContinuousAggregate`` on plain PostgreSQL: buckets keyed on the
aggregate's groups and the bucket) grouped by its source's distribution column holds, in each
row, one instrument's bucket: it can sit in the same shard group as the rows it sums. There a
refresh by range (``qvp_refresh_summary``, after a load or by ``maintain``) is an ``INSERT ...
SELECT`` that each shard runs over its own rows (the workers at once, each over its shards in
turn, as ``citus.multi_shard_modify_mode = 'sequential'`` has it), and the
summary of one instrument is read on one shard. Left on the coordinator, every refresh
brought the range's buckets of every shard there to write them.

The migration names the summaries; those of them the catalog (``qvp_timeseries_aggregate``)
has grouped by the distribution column are distributed, unless they are already (a summary
distributed otherwise is refused). Unapplied, they go back to the coordinator
(``undistribute_table``: a summary has no identity column), with their rows and the names of
their constraints. Elsewhere nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qvp_site.db import engine
from qvp_site.db.plpgsql import do_block
from qvp_site.db.quoting import ident, literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState

# The summaries named (the placeholder {names}) of a table ({table}) grouped by its distribution
# column, and whether each is distributed, and so beside it: hash-distributed in its
# colocation group. What the loop's body distributes beside it, or undistributes.
_SUMMARIES = """
SELECT a.view_name, d.column_name, x.logicalrelid IS NOT NULL AS distributed,
       coalesce(x.partmethod = 'h' AND x.colocationid = d.colocationid, false) AS beside
FROM qvp_timeseries_aggregate a
CROSS JOIN LATERAL (
    SELECT column_to_column_name(p.logicalrelid, p.partkey) AS column_name, p.colocationid
    FROM pg_dist_partition p WHERE p.logicalrelid = to_regclass(quote_ident(a.source_table))
) d
LEFT JOIN pg_dist_partition x ON x.logicalrelid = to_regclass(quote_ident(a.view_name))
WHERE a.source_table = {table} AND a.view_name = ANY ({names})
  AND d.column_name = ANY (a.group_by) AND to_regclass(quote_ident(a.view_name)) IS NOT NULL
ORDER BY a.view_name"""

# PostgreSQL 18 names NOT NULL constraints ("<table>_<column>_not_null"). undistribute_table
# makes the table again under a name of its own, whose NOT NULL constraints keep that name
# ("<table>_<number>_bucket_not_null"): named back, so that the schema is the one the
# migrations made (the summaries' names are short: PostgreSQL would cut a long one to fit).
_NOT_NULL_NAMED_BACK = """
        FOR c IN SELECT n.conname, a.attname FROM pg_constraint n
                 JOIN pg_attribute a ON a.attrelid = n.conrelid AND a.attnum = n.conkey[1]
                 WHERE n.conrelid = to_regclass(quote_ident(s.view_name)) AND n.contype = 'n'
                   AND n.conname <> s.view_name || '_' || a.attname || '_not_null'
        LOOP
            EXECUTE format('ALTER TABLE %I RENAME CONSTRAINT %I TO %I', s.view_name,
                           c.conname, s.view_name || '_' || c.attname || '_not_null');
        END LOOP"""


def _loop(table: str, summaries: list[str], body: str) -> str:
    """A DO block running ``body`` for each of ``summaries`` of ``table`` that ``_SUMMARIES``
    finds (as ``s``)."""
    query = _SUMMARIES.replace("{table}", literal(table))
    query = query.replace("{names}", f"{literal(summaries)}::text[]").replace("\n", "\n        ")
    return do_block(f"""
DECLARE
    s record;
    c record;
BEGIN
    FOR s IN {query.strip()}
    LOOP
        {body.strip()};
    END LOOP;
END""")


class DistributeSummaries(SqlOperation):
    """On Citus, the ``summaries`` of ``model_name``'s table, where grouped by its distribution
    column, distributed by that column, colocated with the table (see the module's
    docstring). A summary distributed otherwise is refused."""

    def __init__(self, model_name: str, summaries: list[str]) -> None:
        self.model_name = model_name
        self.summaries = list(summaries)

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
        body = f"""
        IF s.distributed AND NOT s.beside THEN
            RAISE EXCEPTION '% is distributed, but not beside %', s.view_name, {literal(table)}
                USING ERRCODE = 'object_not_in_prerequisite_state';
        END IF;
        CONTINUE WHEN s.beside;
        PERFORM create_distributed_table(quote_ident(s.view_name), s.column_name,
                                         colocate_with => {literal(ident(table))})"""
        return [_loop(table, self.summaries, body)]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        body = f"""
        CONTINUE WHEN NOT s.beside;
        PERFORM undistribute_table(quote_ident(s.view_name));{_NOT_NULL_NAMED_BACK}"""
        return [_loop(table, self.summaries, body)]

    def describe(self) -> str:
        return f"On Citus, distribute {', '.join(self.summaries)} beside {self.model_name}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name, self.summaries], {}
