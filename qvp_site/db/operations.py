"""Migration operations for time-series tables, on TimescaleDB or plain PostgreSQL.

Written the way ``django.contrib.postgres.operations.CreateExtension`` is: reversible, with
``describe()`` and ``migration_name_fragment``, idempotent SQL with quoted names. They leave
Django's model state alone: a time-series table is still the model's table, whose database
primary key becomes ``(id, time)`` because both engines need the time in every unique key.

Every statement goes through ``schema_editor.execute``, so ``sqlmigrate`` shows it, and
depends on the arguments, the model state and the engine only: what depends on the rows or
the catalog is decided by the server in a DO block (``qvp_site.db.plpgsql``).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING

from django.db import models

from qvp_site.db import aggregates, engine, partitions
from qvp_site.db.catalog import Aggregate, retention_in_force
from qvp_site.db.intervals import Interval, parse_interval
from qvp_site.db.plpgsql import do_block, indent, interval, regclass
from qvp_site.db.policies import retention_policy_sql
from qvp_site.db.quoting import ident, literal
from qvp_site.db.rebuild import rebuild_plpgsql
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState
    from django.db.models import Model


def _column(model: type[models.Model], name: str) -> str:
    """The database column of the model's field ``name`` (a concrete field: one with a column)."""
    field = model._meta.get_field(name)
    if not isinstance(field, models.Field) or not field.column:
        raise ValueError(f"{model._meta.label}.{name} is not a field with a column")
    return field.column


class TimeSeriesOperation(SqlOperation):
    """Shared plumbing: the model's table and columns, routing."""

    model_name: str

    def _model(self, app_label: str, state: ProjectState) -> type[Model]:
        return state.apps.get_model(app_label, self.model_name)

    def _table(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> str | None:
        """The model's table, or None where the router keeps the model off this database."""
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        return None if model is None else model._meta.db_table

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], self._kwargs()

    def _kwargs(self) -> dict[str, Any]:
        raise NotImplementedError


class CreateHypertable(TimeSeriesOperation):
    """Make a model's table a time series chunked by ``time_column`` every ``chunk_interval``.

    TimescaleDB: ``create_hypertable``. Plain PostgreSQL: native range partitioning, with
    partitions from the oldest row to a little ahead of now, and a default partition that
    refuses rows no partition holds. Must come before triggers, policies or grants on the
    table, since the plain engine rebuilds it. Whether the table is converted already, and
    what it holds, the server reads as the SQL runs (a DO block).
    """

    def __init__(self, model_name: str, time_column: str, chunk_interval: str):
        self.model_name = model_name
        self.time_column = time_column
        self.chunk_interval = chunk_interval
        parse_interval(chunk_interval)

    def _kwargs(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "time_column": self.time_column,
            "chunk_interval": self.chunk_interval,
        }

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        model = self._model(app_label, state)
        column = _column(model, self.time_column)
        pk = model._meta.pk.column
        width = parse_interval(self.chunk_interval)
        if engine.is_timescaledb(schema_editor.connection):
            convert = _hypertable_sql(table, column, pk, width)
        else:
            convert = _partitioned_sql(table, column, pk, width)
        return [_register_sql(table, column, width), convert]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        pk = self._model(app_label, state)._meta.pk.column
        return [
            do_block(rebuild_plpgsql(table, primary_key=[pk])),
            f"DELETE FROM qvp_timeseries_table WHERE table_name = {literal(table)}",
        ]

    def describe(self) -> str:
        return (
            f"Create hypertable {self.model_name} on {self.time_column}"
            f" in chunks of {self.chunk_interval}"
        )

    @property
    def migration_name_fragment(self) -> str:
        return f"create_hypertable_{self.model_name.lower()}"


def _register_sql(table: str, column: str, width: Interval) -> str:
    values = ", ".join(literal(v) for v in (table, column, width.sql()))
    return (
        "INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval)"
        f" VALUES ({values}) ON CONFLICT (table_name) DO UPDATE"
        " SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval"
    )


def _hypertable_sql(table: str, column: str, pk: str, width: Interval) -> str:
    """create_hypertable, once the primary key is ``(pk, time)``; nothing where the table is
    a hypertable already."""
    return do_block(f"""
DECLARE
    qvp_constraint name;
BEGIN
    IF EXISTS (SELECT 1 FROM timescaledb_information.hypertables
               WHERE hypertable_name = {literal(table)}) THEN
        RETURN;  -- converted already
    END IF;
    FOR qvp_constraint IN
        SELECT conname FROM pg_constraint WHERE conrelid = {regclass(table)} AND contype = 'p'
    LOOP
        EXECUTE format('ALTER TABLE %I DROP CONSTRAINT %I', {literal(table)}, qvp_constraint);
    END LOOP;
    ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(table + "_pkey")}
        PRIMARY KEY ({ident(pk)}, {ident(column)});
    PERFORM create_hypertable({regclass(table)}, by_range({literal(column)}, {interval(width)}),
                              create_default_indexes => false, migrate_data => true);
END
""")


def _partitioned_sql(table: str, column: str, pk: str, width: Interval) -> str:
    """The table rebuilt partitioned by range, unless it is: partitions from its oldest row
    (or now) to ahead of now and beyond its newest, then the refusing default partition."""
    time = ident(column)

    def create_partitions(new_table: str) -> str:
        return partitions.covering_partitions_plpgsql(
            table,
            width,
            parent=new_table,
            start_sql=f"least((SELECT min({time}) FROM {ident(table)}), now())",
            end_sql=(
                f"greatest((SELECT max({time}) FROM {ident(table)}),"
                f" {partitions.ahead_of_sql(width)})"
            ),
        )

    rebuild = rebuild_plpgsql(
        table, primary_key=[pk, column], partition_column=column, before_copy=create_partitions
    )
    default = "\n".join(f"{s};" for s in partitions.refusing_default_sql(table, column))
    return do_block(f"""
BEGIN
    IF (SELECT relkind FROM pg_class WHERE oid = {regclass(table)}) = 'p' THEN
        RETURN;  -- converted already
    END IF;
{indent(rebuild)}
{indent(default)}
END
""")


class AddCompressionPolicy(TimeSeriesOperation):
    """Compress chunks older than ``compress_after`` (TimescaleDB); recorded, and reported as
    unavailable, on plain PostgreSQL. Not for tables under row-level security."""

    def __init__(
        self,
        model_name: str,
        compress_after: str,
        segment_by: Sequence[str] = (),
        order_by: str | None = None,
    ):
        self.model_name = model_name
        self.compress_after = compress_after
        self.segment_by = list(segment_by)
        self.order_by = order_by
        parse_interval(compress_after)

    def _kwargs(self) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "model_name": self.model_name,
            "compress_after": self.compress_after,
        }
        if self.segment_by:
            kwargs["segment_by"] = self.segment_by
        if self.order_by:
            kwargs["order_by"] = self.order_by
        return kwargs

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        model = self._model(app_label, state)
        segment = [_column(model, f) for f in self.segment_by]
        statements = [
            f"UPDATE qvp_timeseries_table SET compress_after = {literal(self.compress_after)},"
            f" compress_segment_by = {literal(segment)},"
            f" compress_order_by = {literal(self.order_by)} WHERE table_name = {literal(table)}"
        ]
        if engine.is_timescaledb(schema_editor.connection):
            statements += self._compression_sql(table, segment)
        return statements

    def _compression_sql(self, table: str, segment: list[str]) -> list[str]:
        options = ["timescaledb.compress"]
        if segment:
            options.append(f"timescaledb.compress_segmentby = {literal(','.join(segment))}")
        if self.order_by:
            options.append(f"timescaledb.compress_orderby = {literal(self.order_by)}")
        after = interval(parse_interval(self.compress_after))
        return [
            f"ALTER TABLE {ident(table)} SET ({', '.join(options)})",
            f"SELECT add_compression_policy({regclass(table)}, {after}, if_not_exists => true)",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        statements = [
            "UPDATE qvp_timeseries_table SET compress_after = NULL, compress_segment_by = '{}',"
            f" compress_order_by = NULL WHERE table_name = {literal(table)}"
        ]
        if engine.is_timescaledb(schema_editor.connection):
            statements += [
                f"SELECT remove_compression_policy({regclass(table)}, if_exists => true)",
                "SELECT decompress_chunk(c, if_compressed => true)"
                f" FROM show_chunks({regclass(table)}) c",
                f"ALTER TABLE {ident(table)} SET (timescaledb.compress = false)",
            ]
        return statements

    def describe(self) -> str:
        return f"Compress {self.model_name} chunks older than {self.compress_after}"

    @property
    def migration_name_fragment(self) -> str:
        return f"compress_{self.model_name.lower()}"


# The job that compresses and closes in one transaction (qvp_site/sql/compression/0009.sql).
COMPRESS_JOB = "qvp_compress_job"


class ReplaceCompressionPolicy(TimeSeriesOperation):
    """TimescaleDB: the model's compression policy (``AddCompressionPolicy``) gives way to the
    job ``qvp_compress_job``, on the same schedule and age. A chunk TimescaleDB's policy
    compressed kept the hypertable's grants until ``maintain`` closed it; the job closes it in
    the transaction that compresses it. Nothing to do on plain PostgreSQL. Every table
    compressed on TimescaleDB needs it after its ``AddCompressionPolicy``
    (tests/qvp_site/test_compression_job.py checks that no policy is left)."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def _kwargs(self) -> dict[str, Any]:
        return {"model_name": self.model_name}

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None or not engine.is_timescaledb(schema_editor.connection):
            return []
        return [
            f"SELECT add_job({literal(COMPRESS_JOB)}, j.schedule_interval,"
            " config => jsonb_build_object("
            f"'hypertable', {literal(table)}, 'compress_after', j.config->>'compress_after'),"
            f" job_name => {literal(f'Compress and close {table}')})"
            " FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_compression'"
            f" AND j.hypertable_schema = 'public' AND j.hypertable_name = {literal(table)}",
            f"SELECT remove_compression_policy({regclass(table)}, if_exists => true)",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None or not engine.is_timescaledb(schema_editor.connection):
            return []
        return [
            f"SELECT add_compression_policy({regclass(table)},"
            " (j.config->>'compress_after')::interval, schedule_interval => j.schedule_interval,"
            " if_not_exists => true)"
            f" FROM timescaledb_information.jobs j WHERE j.proc_name = {literal(COMPRESS_JOB)}"
            f" AND j.config->>'hypertable' = {literal(table)}",
            "SELECT delete_job(job_id) FROM timescaledb_information.jobs"
            f" WHERE proc_name = {literal(COMPRESS_JOB)}"
            f" AND config->>'hypertable' = {literal(table)}",
        ]

    def describe(self) -> str:
        return f"Compress {self.model_name} with {COMPRESS_JOB}, which closes what it compresses"

    @property
    def migration_name_fragment(self) -> str:
        return f"compress_job_{self.model_name.lower()}"


class AddRetentionPolicy(TimeSeriesOperation):
    """Drop chunks older than ``drop_after`` (counted back from now).

    The value here is the default; ``QVP_RETENTION`` overrides it per table (the migration
    reads the setting) and ``maintain`` brings TimescaleDB's policy in line with the setting
    later on. Plain PostgreSQL drops partitions.
    """

    def __init__(self, model_name: str, drop_after: str):
        self.model_name = model_name
        self.drop_after = drop_after
        parse_interval(drop_after)

    def _kwargs(self) -> dict[str, Any]:
        return {"model_name": self.model_name, "drop_after": self.drop_after}

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        statements = [
            f"UPDATE qvp_timeseries_table SET retention_default = {literal(self.drop_after)}"
            f" WHERE table_name = {literal(table)}"
        ]
        if engine.is_timescaledb(schema_editor.connection):
            wanted = retention_in_force(table, self.drop_after)
            statements.append(retention_policy_sql(table, wanted))
        return statements

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        statements = [
            "UPDATE qvp_timeseries_table SET retention_default = NULL"
            f" WHERE table_name = {literal(table)}"
        ]
        if engine.is_timescaledb(schema_editor.connection):
            statements.append(retention_policy_sql(table, None))
        return statements

    def describe(self) -> str:
        return f"Drop {self.model_name} chunks older than {self.drop_after}"

    @property
    def migration_name_fragment(self) -> str:
        return f"retention_{self.model_name.lower()}"


class CreateContinuousAggregate(TimeSeriesOperation):
    """An aggregate of ``model_name`` in buckets of ``bucket``, kept fresh by range.

    ``columns`` are ``(name, function, field)`` with function one of first, last, min, max,
    sum, avg, count. TimescaleDB: a continuous aggregate created WITH NO DATA (migrations run
    in transactions) plus a refresh policy. Plain PostgreSQL: a summary table keyed on
    ``group_by`` and the bucket, which ``maintain`` and loads refresh by range. Either is
    created only where no relation has its name (decided by the server).
    """

    def __init__(
        self,
        name: str,
        model_name: str,
        time_column: str,
        bucket: str,
        columns: Sequence[Sequence[str]],
        group_by: Sequence[str] = (),
        refresh_window: str = "7 days",
    ):
        self.name = name
        self.model_name = model_name
        self.time_column = time_column
        self.bucket = bucket
        self.columns = [tuple(c) for c in columns]
        self.group_by = list(group_by)
        self.refresh_window = refresh_window
        parse_interval(bucket)
        parse_interval(refresh_window)
        for alias, function, _field in self.columns:
            if function not in aggregates.FUNCTIONS:
                raise ValueError(f"aggregate column {alias!r}: unknown function {function!r}")

    def _kwargs(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_name": self.model_name,
            "time_column": self.time_column,
            "bucket": self.bucket,
            "columns": [list(c) for c in self.columns],
            "group_by": self.group_by,
            "refresh_window": self.refresh_window,
        }

    def _definition(self, model: type[Model]) -> Aggregate:
        opts = model._meta
        return Aggregate(
            name=self.name,
            source_table=opts.db_table,
            time_column=_column(model, self.time_column),
            bucket_width=parse_interval(self.bucket),
            group_by=[_column(model, f) for f in self.group_by],
            columns=[
                (alias, fn, "*" if f == "*" else _column(model, f)) for alias, fn, f in self.columns
            ],
            refresh_window=parse_interval(self.refresh_window),
        )

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None:
            return []
        timescaledb = engine.is_timescaledb(schema_editor.connection)
        definition = self._definition(model)
        select = aggregates.select_sql(definition, timescaledb=timescaledb)
        if timescaledb:
            create = self._continuous_sql(select)
        else:
            create = self._summary_sql(definition, select)
        body = "\n".join(f"{statement};" for statement in create)
        unless_present = do_block(f"""
BEGIN
    IF to_regclass({literal(ident(self.name))}) IS NULL THEN
{indent(body, 8)}
    END IF;
END
""")
        return [unless_present, _register_aggregate_sql(definition)]

    def _continuous_sql(self, select: str) -> list[str]:
        width = parse_interval(self.bucket)
        window = parse_interval(self.refresh_window)
        return [
            f"CREATE MATERIALIZED VIEW {ident(self.name)} WITH (timescaledb.continuous,"
            f" timescaledb.materialized_only = true) AS {select} WITH NO DATA",
            f"PERFORM add_continuous_aggregate_policy({regclass(self.name)},"
            f" start_offset => {interval(window)}, end_offset => {interval(width)},"
            f" schedule_interval => {interval('1 hour')}, if_not_exists => true)",
        ]

    def _summary_sql(self, definition: Aggregate, select: str) -> list[str]:
        key = ", ".join(ident(c) for c in [*definition.group_by, "bucket"])
        return [
            f"CREATE TABLE {ident(self.name)} AS {select} WITH NO DATA",
            f"ALTER TABLE {ident(self.name)} ADD CONSTRAINT"
            f" {ident(self.name[:58] + '_pkey')} PRIMARY KEY ({key})",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None:
            return []
        kind = "MATERIALIZED VIEW" if engine.is_timescaledb(schema_editor.connection) else "TABLE"
        return [
            f"DROP {kind} IF EXISTS {ident(self.name)}",
            f"DELETE FROM qvp_timeseries_aggregate WHERE view_name = {literal(self.name)}",
        ]

    def describe(self) -> str:
        return f"Create continuous aggregate {self.name} of {self.model_name} by {self.bucket}"

    @property
    def migration_name_fragment(self) -> str:
        return f"aggregate_{self.name.lower()}"


def _register_aggregate_sql(definition: Aggregate) -> str:
    values = ", ".join(
        [
            literal(definition.name),
            literal(definition.source_table),
            literal(definition.time_column),
            literal(definition.bucket_width.sql()),
            literal(definition.group_by),
            f"{literal(json.dumps([list(c) for c in definition.columns]))}::jsonb",
            literal(definition.refresh_window.sql()),
        ]
    )
    return (
        "INSERT INTO qvp_timeseries_aggregate (view_name, source_table, time_column,"
        f" bucket_width, group_by, columns, refresh_window) VALUES ({values})"
        " ON CONFLICT (view_name) DO NOTHING"
    )
