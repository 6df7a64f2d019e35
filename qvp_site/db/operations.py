"""Migration operations for time-series tables, on TimescaleDB or plain PostgreSQL.

Written the way ``django.contrib.postgres.operations.CreateExtension`` is: reversible, with
``describe()`` and ``migration_name_fragment``, idempotent SQL with quoted names. They leave
Django's model state alone: a time-series table is still the model's table, whose database
primary key becomes ``(id, time)`` because both engines need the time in every unique key.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from django.db import router
from django.db.migrations.operations.base import Operation
from django.utils import timezone

from qvp_site.db import aggregates, engine, partitions
from qvp_site.db.catalog import CATALOG_SQL, Aggregate
from qvp_site.db.functions import INSTALL_SQL, UNINSTALL_SQL
from qvp_site.db.intervals import parse_interval
from qvp_site.db.policies import sync_retention_policy
from qvp_site.db.quoting import ident, literal
from qvp_site.db.rebuild import rebuild_table


class TimeSeriesOperation(Operation):
    """Shared plumbing: no model-state change, the model's table and columns, routing."""

    reversible = True
    reduces_to_sql = False
    model_name: str

    def state_forwards(self, app_label, state):
        pass

    def _model(self, app_label, state):
        return state.apps.get_model(app_label, self.model_name)

    def _allowed(self, schema_editor, model) -> bool:
        return self.allow_migrate_model(schema_editor.connection.alias, model)

    def _table(self, app_label, schema_editor, state) -> str | None:
        """The model's table, or None where the router keeps the model off this database."""
        model = self._model(app_label, state)
        return model._meta.db_table if self._allowed(schema_editor, model) else None

    def deconstruct(self):
        return self.__class__.__qualname__, [], self._kwargs()

    def _kwargs(self) -> dict:
        raise NotImplementedError


class InstallTimeSeriesSupport(Operation):
    """The extensions (pgvector, and TimescaleDB where the engine is in use), our catalog and
    SQL functions. Backwards drops what it installed, as ``CreateExtension`` does."""

    reversible = True
    reduces_to_sql = False

    def state_forwards(self, app_label, state):
        pass

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not router.allow_migrate(schema_editor.connection.alias, app_label):
            return
        engine.forget()
        info = engine.detect(schema_editor.connection)
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS vector")
            if info.is_timescaledb:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cursor.execute(CATALOG_SQL)
            cursor.execute(INSTALL_SQL)
        engine.forget()

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not router.allow_migrate(schema_editor.connection.alias, app_label):
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(UNINSTALL_SQL)
            cursor.execute("DROP TABLE IF EXISTS qvp_timeseries_aggregate, qvp_timeseries_table")
            cursor.execute("DROP EXTENSION IF EXISTS timescaledb")
            cursor.execute("DROP EXTENSION IF EXISTS vector")
        engine.forget()

    def describe(self):
        return "Install time-series support (extensions, catalog, functions)"

    @property
    def migration_name_fragment(self):
        return "install_timeseries_support"

    def deconstruct(self):
        return self.__class__.__qualname__, [], {}


class CreateHypertable(TimeSeriesOperation):
    """Make a model's table a time series chunked by ``time_column`` every ``chunk_interval``.

    TimescaleDB: ``create_hypertable``. Plain PostgreSQL: native range partitioning, with
    partitions from the oldest row to a little ahead of now, and a default partition that
    refuses rows no partition holds. Must come before triggers, policies or grants on the
    table, since the plain engine rebuilds it.
    """

    def __init__(self, model_name: str, time_column: str, chunk_interval: str):
        self.model_name = model_name
        self.time_column = time_column
        self.chunk_interval = chunk_interval
        parse_interval(chunk_interval)

    def _kwargs(self):
        return {
            "model_name": self.model_name,
            "time_column": self.time_column,
            "chunk_interval": self.chunk_interval,
        }

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, to_state)
        if table is None:
            return
        model = self._model(app_label, to_state)
        column = model._meta.get_field(self.time_column).column
        pk = model._meta.pk.column
        width = parse_interval(self.chunk_interval)
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO qvp_timeseries_table (table_name, time_column, chunk_interval)"
                " VALUES (%s, %s, %s) ON CONFLICT (table_name) DO UPDATE"
                " SET time_column = EXCLUDED.time_column, chunk_interval = EXCLUDED.chunk_interval",
                [table, column, width.sql()],
            )
            if engine.is_timescaledb(connection):
                self._hypertable(cursor, table, column, pk, width)
            else:
                self._partitioned(cursor, table, column, pk, width)

    @staticmethod
    def _hypertable(cursor, table, column, pk, width):
        cursor.execute(
            "SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = %s",
            [table],
        )
        if cursor.fetchone():
            return
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass AND contype = 'p'",
            [ident(table)],
        )
        for (name,) in cursor.fetchall():
            cursor.execute(f"ALTER TABLE {ident(table)} DROP CONSTRAINT {ident(name)}")
        cursor.execute(
            f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(table + '_pkey')}"
            f" PRIMARY KEY ({ident(pk)}, {ident(column)})"
        )
        cursor.execute(
            "SELECT create_hypertable(%s::regclass, by_range(%s, %s::interval),"
            " create_default_indexes => false, migrate_data => true)",
            [ident(table), column, width.sql()],
        )

    @staticmethod
    def _partitioned(cursor, table, column, pk, width):
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = %s::regclass", [ident(table)])
        if cursor.fetchone()[0] == "p":
            return

        def create_partitions(new_table: str) -> None:
            cursor.execute(f"SELECT min({ident(column)}), max({ident(column)}) FROM {ident(table)}")
            oldest, newest = cursor.fetchone()
            now = timezone.now()
            start = min(oldest or now, now)
            end = max(newest or now, partitions.ahead_of(width, now))
            partitions.create_partitions(cursor, table, width, start, end, parent=new_table)

        rebuild_table(
            cursor,
            table,
            primary_key=[pk, column],
            partition_column=column,
            before_copy=create_partitions,
        )
        partitions.create_refusing_default(cursor, table, column)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, from_state)
        if table is None:
            return
        pk = self._model(app_label, from_state)._meta.pk.column
        with schema_editor.connection.cursor() as cursor:
            rebuild_table(cursor, table, primary_key=[pk])
            cursor.execute("DELETE FROM qvp_timeseries_table WHERE table_name = %s", [table])

    def describe(self):
        return (
            f"Create hypertable {self.model_name} on {self.time_column}"
            f" in chunks of {self.chunk_interval}"
        )

    @property
    def migration_name_fragment(self):
        return f"create_hypertable_{self.model_name.lower()}"


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

    def _kwargs(self):
        kwargs = {"model_name": self.model_name, "compress_after": self.compress_after}
        if self.segment_by:
            kwargs["segment_by"] = self.segment_by
        if self.order_by:
            kwargs["order_by"] = self.order_by
        return kwargs

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, to_state)
        if table is None:
            return
        model = self._model(app_label, to_state)
        segment = [model._meta.get_field(f).column for f in self.segment_by]
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE qvp_timeseries_table SET compress_after = %s, compress_segment_by = %s,"
                " compress_order_by = %s WHERE table_name = %s",
                [self.compress_after, segment, self.order_by, table],
            )
            if not engine.is_timescaledb(schema_editor.connection):
                return
            options = ["timescaledb.compress"]
            if segment:
                options.append(f"timescaledb.compress_segmentby = {literal(','.join(segment))}")
            if self.order_by:
                options.append(f"timescaledb.compress_orderby = {literal(self.order_by)}")
            cursor.execute(f"ALTER TABLE {ident(table)} SET ({', '.join(options)})")
            cursor.execute(
                "SELECT add_compression_policy(%s::regclass, %s::interval, if_not_exists => true)",
                [ident(table), parse_interval(self.compress_after).sql()],
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, from_state)
        if table is None:
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE qvp_timeseries_table SET compress_after = NULL,"
                " compress_segment_by = '{}', compress_order_by = NULL WHERE table_name = %s",
                [table],
            )
            if not engine.is_timescaledb(schema_editor.connection):
                return
            cursor.execute(
                "SELECT remove_compression_policy(%s::regclass, if_exists => true)", [ident(table)]
            )
            cursor.execute(
                "SELECT decompress_chunk(c, if_compressed => true)"
                " FROM show_chunks(%s::regclass) c",
                [ident(table)],
            )
            cursor.execute(f"ALTER TABLE {ident(table)} SET (timescaledb.compress = false)")

    def describe(self):
        return f"Compress {self.model_name} chunks older than {self.compress_after}"

    @property
    def migration_name_fragment(self):
        return f"compress_{self.model_name.lower()}"


class AddRetentionPolicy(TimeSeriesOperation):
    """Drop chunks older than ``drop_after`` (counted back from now).

    The value here is the default; ``QVP_RETENTION`` overrides it per table and ``maintain``
    brings TimescaleDB's policy in line with the setting. Plain PostgreSQL drops partitions.
    """

    def __init__(self, model_name: str, drop_after: str):
        self.model_name = model_name
        self.drop_after = drop_after
        parse_interval(drop_after)

    def _kwargs(self):
        return {"model_name": self.model_name, "drop_after": self.drop_after}

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, to_state)
        if table is None:
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE qvp_timeseries_table SET retention_default = %s WHERE table_name = %s",
                [self.drop_after, table],
            )
            if engine.is_timescaledb(schema_editor.connection):
                sync_retention_policy(cursor, table)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        table = self._table(app_label, schema_editor, from_state)
        if table is None:
            return
        with schema_editor.connection.cursor() as cursor:
            cursor.execute(
                "UPDATE qvp_timeseries_table SET retention_default = NULL WHERE table_name = %s",
                [table],
            )
            if engine.is_timescaledb(schema_editor.connection):
                cursor.execute(
                    "SELECT remove_retention_policy(%s::regclass, if_exists => true)",
                    [ident(table)],
                )

    def describe(self):
        return f"Drop {self.model_name} chunks older than {self.drop_after}"

    @property
    def migration_name_fragment(self):
        return f"retention_{self.model_name.lower()}"


class CreateContinuousAggregate(TimeSeriesOperation):
    """An aggregate of ``model_name`` in buckets of ``bucket``, kept fresh by range.

    ``columns`` are ``(name, function, field)`` with function one of first, last, min, max,
    sum, avg, count. TimescaleDB: a continuous aggregate created WITH NO DATA (migrations run
    in transactions) plus a refresh policy. Plain PostgreSQL: a summary table keyed on
    ``group_by`` and the bucket, which ``maintain`` and loads refresh by range.
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

    def _kwargs(self):
        return {
            "name": self.name,
            "model_name": self.model_name,
            "time_column": self.time_column,
            "bucket": self.bucket,
            "columns": [list(c) for c in self.columns],
            "group_by": self.group_by,
            "refresh_window": self.refresh_window,
        }

    def _definition(self, model) -> Aggregate:
        opts = model._meta
        return Aggregate(
            name=self.name,
            source_table=opts.db_table,
            time_column=opts.get_field(self.time_column).column,
            bucket_width=parse_interval(self.bucket),
            group_by=[opts.get_field(f).column for f in self.group_by],
            columns=[
                (alias, fn, "*" if f == "*" else opts.get_field(f).column)
                for alias, fn, f in self.columns
            ],
            refresh_window=parse_interval(self.refresh_window),
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = self._model(app_label, to_state)
        if not self._allowed(schema_editor, model):
            return
        timescaledb = engine.is_timescaledb(schema_editor.connection)
        definition = self._definition(model)
        select = aggregates.select_sql(definition, timescaledb=timescaledb)
        groups = definition.group_by
        with schema_editor.connection.cursor() as cursor:
            cursor.execute("SELECT to_regclass(%s)", [ident(self.name)])
            if cursor.fetchone()[0] is None:
                if timescaledb:
                    self._create_continuous(cursor, select)
                else:
                    key = ", ".join(ident(c) for c in [*groups, "bucket"])
                    cursor.execute(f"CREATE TABLE {ident(self.name)} AS {select} WITH NO DATA")
                    cursor.execute(
                        f"ALTER TABLE {ident(self.name)} ADD CONSTRAINT"
                        f" {ident(self.name[:58] + '_pkey')} PRIMARY KEY ({key})"
                    )
            cursor.execute(
                "INSERT INTO qvp_timeseries_aggregate (view_name, source_table, time_column,"
                " bucket_width, group_by, columns, refresh_window) VALUES (%s, %s, %s, %s, %s,"
                " %s::jsonb, %s) ON CONFLICT (view_name) DO NOTHING",
                [
                    self.name,
                    definition.source_table,
                    definition.time_column,
                    definition.bucket_width.sql(),
                    groups,
                    json.dumps([list(c) for c in definition.columns]),
                    definition.refresh_window.sql(),
                ],
            )

    def _create_continuous(self, cursor, select):
        width = parse_interval(self.bucket)
        cursor.execute(
            f"CREATE MATERIALIZED VIEW {ident(self.name)} WITH (timescaledb.continuous,"
            f" timescaledb.materialized_only = true) AS {select} WITH NO DATA"
        )
        cursor.execute(
            "SELECT add_continuous_aggregate_policy(%s::regclass, start_offset => %s::interval,"
            " end_offset => %s::interval, schedule_interval => %s::interval,"
            " if_not_exists => true)",
            [ident(self.name), parse_interval(self.refresh_window).sql(), width.sql(), "1 hour"],
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = self._model(app_label, from_state)
        if not self._allowed(schema_editor, model):
            return
        with schema_editor.connection.cursor() as cursor:
            if engine.is_timescaledb(schema_editor.connection):
                cursor.execute(f"DROP MATERIALIZED VIEW IF EXISTS {ident(self.name)}")
            else:
                cursor.execute(f"DROP TABLE IF EXISTS {ident(self.name)}")
            cursor.execute("DELETE FROM qvp_timeseries_aggregate WHERE view_name = %s", [self.name])

    def describe(self):
        return f"Create continuous aggregate {self.name} of {self.model_name} by {self.bucket}"

    @property
    def migration_name_fragment(self):
        return f"aggregate_{self.name.lower()}"
