"""The Citus branch of the migrations: time-series tables spread over the workers.

On Citus a time-series table whose rows belong to an instrument is distributed by that
instrument (``create_distributed_table``), colocated with the others, so that one
instrument's rows of every table sit in the same shard group and a join or a load of one
instrument stays on one worker. On TimescaleDB and plain PostgreSQL these operations run
nothing: a released migration's SQL there does not change.

What Citus refuses on a distributed table, and what takes its place:

- statement-level triggers. The reference check by statement (``EnforceReference``)
  becomes a real foreign key, to a table of the parent's keys (``MirrorKeys``), distributed
  by those keys in the same shard group; other statement triggers are set aside in
  ``qvp_citus_set_aside``, with their definitions.
- a default partition with its refusing trigger (row triggers on shards would run on the
  workers): the default partition is dropped, and PostgreSQL itself refuses a row no
  partition holds (``check_violation``, "no partition of relation ... found for row").
- a primary key without the distribution column: ``(id, time)`` becomes
  ``(id, time, instrument)``.
- a foreign key from a distributed table to a local one: the revisions' keys to their load
  are set aside (``DistributeAlong``); only the owner's merge and delete functions write
  revisions, with a load they checked, and no role may delete a load or change its id.

Why the parent's keys and not the parent itself go to the workers: the instruments carry the
security master's history triggers, and the books' tables (orders, executions, positions:
local tables on the coordinator) hold foreign keys to them. A foreign key from a local table
to a Citus table pulls the whole graph of foreign keys around it, users included, into
Citus's metadata, where Citus refuses the books' row-level security policies. So the
instruments stay a local table and a trigger keeps a table of their ids in step, which the
distributed tables' foreign keys point at: a row for an unknown instrument is refused on the
worker, and an instrument with rows cannot be deleted.

The keys are distributed by themselves, in the shard group of the rows that refer to them,
not a reference table on every node: an instrument's key sits beside its rows, so its foreign
keys are checked on one worker, a new instrument needs only its own worker up, and a query
that starts from the keys (the latest price of each of some instruments: a lateral lookup,
``ORDER BY ts DESC LIMIT 1``, per key) runs on the shards, which Citus refuses from a
reference table or a list of values.

On Citus the distribution cannot be unapplied in place: Citus undistributes no table with an
identity column, and cannot drop a distributed table's identity first.

A transaction that creates partitions of a distributed table after a parallel query over it
deadlocks with itself (each partition's DDL reaches the shards over connections of its own):
the database's sessions run multi-shard commands over one connection per worker
(``citus.multi_shard_modify_mode = 'sequential'``), set by ``SequentialShardCommands``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlparse
from django.conf import settings
from django.db.migrations.exceptions import IrreversibleError

from qvp_site.db import engine, partitions, references
from qvp_site.db.plpgsql import do_block, regclass
from qvp_site.db.quoting import ident, literal
from qvp_site.db.sql_operation import SqlOperation

if TYPE_CHECKING:
    from typing import Any

    from django.db.backends.base.schema import BaseDatabaseSchemaEditor
    from django.db.migrations.state import ProjectState

SEQUENTIAL = "SET LOCAL citus.multi_shard_modify_mode = 'sequential'"
# qvp_citus_set_aside's table_name for the functions whose earlier definitions it keeps.
FUNCTIONS = "(functions)"
SET_ASIDE_TABLE = """
CREATE TABLE IF NOT EXISTS qvp_citus_set_aside (
    table_name text NOT NULL,
    object_name text NOT NULL,
    definition text NOT NULL,
    PRIMARY KEY (table_name, object_name)
)"""


def key_table(parent: str) -> str:
    """The table that holds ``parent``'s keys, distributed by them."""
    return f"{parent[:59]}_key"


def _on_citus(schema_editor: BaseDatabaseSchemaEditor) -> bool:
    return engine.is_citus(schema_editor.connection)


class SequentialShardCommands(SqlOperation):
    """On Citus, the database's sessions send multi-shard commands over one connection per
    worker (see the module's docstring); unapplied, Citus's default again."""

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        return [
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET citus.multi_shard_modify_mode"
            " = ''sequential''', current_database()); END $$",
            # and this session's, which began before it (the test database's runs the tests)
            "SET citus.multi_shard_modify_mode = 'sequential'",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        return [
            "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I RESET"
            " citus.multi_shard_modify_mode', current_database()); END $$",
            "RESET citus.multi_shard_modify_mode",
        ]

    def describe(self) -> str:
        return "On Citus, multi-shard commands over one connection per worker"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [], {}


class NotUnappliedOnCitus:
    """An operation that distributes a model's table: not unapplied in place on Citus
    (``_no_way_back``). ``migrate`` refuses a plan that would unapply one before running any of
    it (qvp_site/management/commands/migrate.py)."""

    model_name: str

    def citus_refusal(self) -> str:
        return str(_no_way_back(self.model_name))


class MirrorKeys(SqlOperation):
    """On Citus, a table of ``model_name``'s primary keys, distributed by them in
    ``QVP_CITUS_SHARD_COUNT`` shards, kept in step by a row trigger on the model's table (a
    local table), for the distributed tables colocated with it to refer to. With
    ``reference``, a reference table on every node instead, which any distributed table may
    refer to (the agents' keys, for the signals distributed by instrument): for a small table,
    whose new rows then need every worker up."""

    def __init__(self, model_name: str, reference: bool = False):
        self.model_name = model_name
        self.reference = reference

    def _parent(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> tuple[str, str] | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return None
        return model._meta.db_table, model._meta.pk.column

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        found = self._parent(app_label, schema_editor, state)
        if found is None:
            return []
        parent, key = found
        keys = key_table(parent)
        trigger = ident(f"{parent[:50]}_mirrored")
        distribute = (
            f"SELECT create_reference_table({literal(keys)})"
            if self.reference
            else f"SELECT create_distributed_table({literal(keys)}, {literal(key)},"
            f" shard_count => {int(settings.QVP_CITUS_SHARD_COUNT)}, colocate_with => 'none')"
        )
        return [
            f"CREATE TABLE {ident(keys)} ({ident(key)} bigint PRIMARY KEY)",
            distribute,
            # No row may come or go between the copy and the trigger.
            f"LOCK TABLE {ident(parent)} IN SHARE ROW EXCLUSIVE MODE",
            f"INSERT INTO {ident(keys)} SELECT {ident(key)} FROM {ident(parent)}",
            _MIRROR_FUNCTION,
            "REVOKE ALL ON FUNCTION qvp_mirror_key() FROM PUBLIC",
            f"CREATE TRIGGER {trigger} AFTER INSERT OR DELETE OR UPDATE OF {ident(key)}"
            f" ON {ident(parent)} FOR EACH ROW EXECUTE FUNCTION qvp_mirror_key({literal(key)})",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        found = self._parent(app_label, schema_editor, state)
        if found is None:
            return []
        parent, _ = found
        return [
            f"DROP TRIGGER IF EXISTS {ident(f'{parent[:50]}_mirrored')} ON {ident(parent)}",
            f"DROP TABLE IF EXISTS {ident(key_table(parent))}",
        ]

    def describe(self) -> str:
        kind = "a reference" if self.reference else "a distributed"
        return f"On Citus, {self.model_name}'s keys as {kind} table"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"reference": True} if self.reference else {}
        return self.__class__.__qualname__, [self.model_name], kwargs


# The owner's: the keys change with the parent's rows, whoever changes those. It writes only
# the key table of the table its trigger sits on, and only in public: never a table named by
# an argument, since a role that may run it could attach it to a table of its own. EXECUTE is
# revoked from PUBLIC all the same (checked when a trigger is made, not when it fires).
_MIRROR_FUNCTION = """
CREATE OR REPLACE FUNCTION qvp_mirror_key() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = public, pg_temp AS $$
DECLARE
    keys text := left(TG_TABLE_NAME, 59) || '_key';
    old_key bigint;
    new_key bigint;
BEGIN
    IF TG_TABLE_SCHEMA <> 'public' THEN
        RAISE EXCEPTION 'qvp_mirror_key mirrors the tables of public only, not %.%',
            TG_TABLE_SCHEMA, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
    END IF;
    old_key := CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) ->> TG_ARGV[0] END;
    new_key := CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) ->> TG_ARGV[0] END;
    IF old_key IS NOT DISTINCT FROM new_key THEN
        RETURN NULL;
    END IF;
    IF old_key IS NOT NULL THEN  -- refused by the distributed tables' keys while referred to
        EXECUTE format('DELETE FROM public.%I WHERE %I = $1', keys, TG_ARGV[0]) USING old_key;
    END IF;
    IF new_key IS NOT NULL THEN
        -- A key may outlive its row: TRUNCATE (the owner's alone) is not mirrored, as one
        -- node's reference checks do not refuse it (qvp_site/db/references.py).
        EXECUTE format('INSERT INTO public.%I (%I) VALUES ($1) ON CONFLICT DO NOTHING',
                       keys, TG_ARGV[0]) USING new_key;
    END IF;
    RETURN NULL;
END
$$"""


class DistributeByInstrument(NotUnappliedOnCitus, SqlOperation):
    """On Citus, distribute the time-series table of ``model_name`` by ``field_name`` (a
    reference to a model whose keys ``MirrorKeys`` mirrors), colocated with those keys (with
    ``colocate_with``, a model of the same app, when given: the same shard group)."""

    def __init__(
        self, model_name: str, field_name: str, time_field: str, colocate_with: str | None = None
    ):
        self.model_name = model_name
        self.field_name = field_name
        self.time_field = time_field
        self.colocate_with = colocate_with

    def _names(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> dict[str, str] | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return None
        field = model._meta.get_field(self.field_name)
        parent = field.related_model._meta.db_table
        colocate = key_table(parent)
        if self.colocate_with:
            colocate = state.apps.get_model(app_label, self.colocate_with)._meta.db_table
        return {
            "table": model._meta.db_table,
            "column": field.column,
            "parent": parent,
            "key": field.target_field.column,
            "pk": model._meta.pk.column,
            "time": model._meta.get_field(self.time_field).column,
            "colocate": colocate,
        }

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        names = self._names(app_label, schema_editor, state)
        if names is None:
            return []
        table, column = names["table"], names["column"]
        return [
            SEQUENTIAL,
            *references.drop_sql(table, column, names["parent"]),
            SET_ASIDE_TABLE,
            do_block(_set_aside_plpgsql(table)),
            f"DROP TABLE IF EXISTS {ident(partitions.default_partition_name(table))}",
            f"ALTER TABLE {ident(table)} DROP CONSTRAINT {ident(f'{table}_pkey')},"
            f" ADD CONSTRAINT {ident(f'{table}_pkey')}"
            f" PRIMARY KEY ({ident(names['pk'])}, {ident(names['time'])}, {ident(column)})",
            f"SELECT create_distributed_table({literal(table)}, {literal(column)},"
            f" colocate_with => {literal(names['colocate'])})",
            f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(_fkey(table, column))}"
            f" FOREIGN KEY ({ident(column)})"
            f" REFERENCES {ident(key_table(names['parent']))} ({ident(names['key'])})",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if self._names(app_label, schema_editor, state) is None:
            return []
        raise _no_way_back(self.model_name)

    def describe(self) -> str:
        return f"On Citus, distribute {self.model_name} by {self.field_name}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        kwargs = {"colocate_with": self.colocate_with} if self.colocate_with else {}
        args = [self.model_name, self.field_name, self.time_field]
        return self.__class__.__qualname__, args, kwargs


def _no_way_back(model_name: str) -> IrreversibleError:
    # undistribute_table refuses a table with an identity column, and a distributed table's
    # identity cannot be dropped first: there is no way back in place.
    return IrreversibleError(
        f"On Citus, {model_name} cannot be undistributed in place (Citus refuses a table with"
        " an identity column): restore a dump made before this migration"
    )


def _fkey(table: str, column: str) -> str:
    """The name Django gives such a key, which ``EnforceReference``'s errors used too."""
    return f"{table}_{column}_fkey"


def _set_aside_plpgsql(table: str) -> str:
    """Keep, then drop, the table's statement-level triggers (Citus refuses them)."""
    return f"""
DECLARE
    t record;
BEGIN
    FOR t IN SELECT tgname, pg_get_triggerdef(oid) AS definition FROM pg_trigger
             WHERE tgrelid = {regclass(table)} AND NOT tgisinternal AND tgtype & 1 = 0 LOOP
        INSERT INTO qvp_citus_set_aside VALUES ({literal(table)}, t.tgname, t.definition)
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('DROP TRIGGER %I ON %s', t.tgname, {regclass(table)});
    END LOOP;
END"""


class DistributeAlong(NotUnappliedOnCitus, SqlOperation):
    """On Citus, distribute ``model_name``'s table (not partitioned: the revisions of a
    distributed table, say) by ``field_name``, colocated with ``colocate_with``, so that a
    query joining or uniting the two for one instrument runs on one shard. Its statement
    triggers, and its foreign keys to tables Citus does not hold (a distributed table may not
    refer to a local one), are set aside in ``qvp_citus_set_aside``; its primary key gains the
    distribution column."""

    def __init__(self, model_name: str, field_name: str, colocate_with: str):
        self.model_name = model_name
        self.field_name = field_name
        self.colocate_with = colocate_with

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return []
        table = model._meta.db_table
        column = model._meta.get_field(self.field_name).column
        pk = model._meta.pk.column
        colocate = state.apps.get_model(app_label, self.colocate_with)._meta.db_table
        return [
            SEQUENTIAL,
            SET_ASIDE_TABLE,
            do_block(_set_aside_plpgsql(table)),
            do_block(_set_aside_local_keys_plpgsql(table)),
            f"ALTER TABLE {ident(table)} DROP CONSTRAINT {ident(f'{table}_pkey')},"
            f" ADD CONSTRAINT {ident(f'{table}_pkey')} PRIMARY KEY ({ident(pk)}, {ident(column)})",
            f"SELECT create_distributed_table({literal(table)}, {literal(column)},"
            f" colocate_with => {literal(colocate)})",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return []
        raise _no_way_back(self.model_name)

    def describe(self) -> str:
        return f"On Citus, distribute {self.model_name} along {self.colocate_with}"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        args = [self.model_name, self.field_name, self.colocate_with]
        return self.__class__.__qualname__, args, {}


def _set_aside_local_keys_plpgsql(table: str) -> str:
    """Keep, then drop, the table's foreign keys to tables that are not Citus's."""
    return f"""
DECLARE
    k record;
BEGIN
    FOR k IN SELECT conname, pg_get_constraintdef(oid) AS definition FROM pg_constraint
             WHERE conrelid = {regclass(table)} AND contype = 'f'
               AND confrelid NOT IN (SELECT logicalrelid FROM pg_dist_partition) LOOP
        INSERT INTO qvp_citus_set_aside VALUES ({literal(table)}, k.conname,
            format('ALTER TABLE %s ADD CONSTRAINT %I %s', {regclass(table)}, k.conname,
                   k.definition))
        ON CONFLICT (table_name, object_name) DO UPDATE SET definition = EXCLUDED.definition;
        EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', {regclass(table)}, k.conname);
    END LOOP;
END"""


class SetAsideLocalKeys(SqlOperation):
    """On Citus, ``model_name``'s foreign keys to tables Citus does not hold, set aside in
    ``qvp_citus_set_aside`` (a distributed table may not refer to a local one) before the
    table is distributed; the distribution and ``ReferToKeys`` put keys to the mirrored keys in
    their place. Put back when unapplied."""

    def __init__(self, model_name: str):
        self.model_name = model_name

    def _table(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> str | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return None
        table: str = model._meta.db_table
        return table

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        return [SET_ASIDE_TABLE, do_block(_set_aside_local_keys_plpgsql(table))]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        table = self._table(app_label, schema_editor, state)
        if table is None:
            return []
        kept = f"table_name = {literal(table)} AND definition LIKE '%FOREIGN KEY%'"
        return [
            do_block(
                f"""
DECLARE
    k record;
BEGIN
    FOR k IN SELECT definition FROM qvp_citus_set_aside WHERE {kept} LOOP
        EXECUTE k.definition;
    END LOOP;
    DELETE FROM qvp_citus_set_aside WHERE {kept};
END"""
            )
        ]

    def describe(self) -> str:
        return f"On Citus, {self.model_name}'s foreign keys to local tables set aside"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name], {}


class ReferToKeys(SqlOperation):
    """On Citus, ``model_name.field_name`` a foreign key to the table of its model's keys
    (``MirrorKeys``, a reference table), in place of the key to the model's own table that
    ``SetAsideLocalKeys`` set aside: a row naming no such row is refused on its worker, and a
    row referred to cannot be deleted."""

    def __init__(self, model_name: str, field_name: str):
        self.model_name = model_name
        self.field_name = field_name

    def _names(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> tuple[str, str, str, str] | None:
        model = self.routed_model(app_label, self.model_name, schema_editor, state)
        if model is None or not _on_citus(schema_editor):
            return None
        field = model._meta.get_field(self.field_name)
        parent = field.related_model._meta.db_table
        return model._meta.db_table, field.column, key_table(parent), field.target_field.column

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        names = self._names(app_label, schema_editor, state)
        if names is None:
            return []
        table, column, keys, key = names
        return [
            f"ALTER TABLE {ident(table)} ADD CONSTRAINT {ident(_fkey(table, column))}"
            f" FOREIGN KEY ({ident(column)}) REFERENCES {ident(keys)} ({ident(key)})"
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        names = self._names(app_label, schema_editor, state)
        if names is None:
            return []
        table, column, _keys, _key = names
        return [f"ALTER TABLE {ident(table)} DROP CONSTRAINT {ident(_fkey(table, column))}"]

    def describe(self) -> str:
        return f"On Citus, {self.model_name}.{self.field_name} refers to its model's keys"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.model_name, self.field_name], {}


class ReplaceFunctionOnCitus(SqlOperation):
    """On Citus, the function ``signature`` defined by ``definition`` (a ``CREATE OR REPLACE``),
    the definition it replaces kept in ``qvp_citus_set_aside`` and put back when unapplied;
    elsewhere nothing (the function stays as the earlier migrations made it)."""

    def __init__(self, signature: str, definition: str):
        self.signature = signature
        self.definition = definition

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        return [
            SET_ASIDE_TABLE,
            "INSERT INTO qvp_citus_set_aside (table_name, object_name, definition)"
            f" SELECT {literal(FUNCTIONS)}, f::text, pg_get_functiondef(f)"
            f" FROM (SELECT {literal(self.signature)}::regprocedure AS f) AS kept"
            " ON CONFLICT DO NOTHING",
            self.definition,
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        kept = (
            f"table_name = {literal(FUNCTIONS)}"
            f" AND object_name = {literal(self.signature)}::regprocedure::text"
        )
        return [
            do_block(
                f"""
DECLARE
    kept text;
BEGIN
    SELECT definition INTO kept FROM qvp_citus_set_aside WHERE {kept};
    IF kept IS NULL THEN
        RAISE EXCEPTION 'no earlier definition of % was kept', {literal(self.signature)};
    END IF;
    EXECUTE kept;
    DELETE FROM qvp_citus_set_aside WHERE {kept};
END"""
            )
        ]

    def describe(self) -> str:
        return f"On Citus, {self.signature} defined for Citus"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.signature, self.definition], {}


# The row trigger on a distributed table that sets a withheld column on the shards.
SET_BY_THE_DATABASE_TRIGGER = "qvp_set_by_the_database"
_SET_BY_THE_DATABASE_FUNCTION = """
CREATE OR REPLACE FUNCTION qvp_known_from_now() RETURNS trigger
LANGUAGE plpgsql SET search_path = public, pg_temp AS $$
BEGIN
    -- Who may date a row: a role that may change the column of the distributed table
    -- (TG_ARGV[0]), its owner (its loads and merges), as on one node, where no other role
    -- has the column; the application's role has INSERT of it on the shards (create_db_roles)
    -- but never UPDATE. Any other role gets the moment of its transaction here. Asked of the
    -- table by name, not of the shard in pg_class, which Citus hides from sessions on a worker.
    IF NOT coalesce(has_column_privilege(TG_ARGV[0]::regclass, 'known_from', 'UPDATE'),
                    false) THEN
        NEW.known_from := now();
    END IF;
    RETURN NEW;
END
$$"""


class KnownFromSetOnTheShards(SqlOperation):
    """On Citus, ``known_from`` of each of ``tables`` set on the shards for a role that may not
    write it. On one node the application's role has no privilege on the column (the table's
    default, ``now()``, fills it), so it cannot say when a row was learnt. Citus evaluates that
    default on the coordinator and sends the value to the shards, which refuse it from that
    role. So the role is granted the column on the shards only (``create_db_roles``), the
    coordinator still refusing the column when the role names it, and a row trigger on the
    shards puts ``now()`` in its place for any role that may not change the column on the
    table (all but its owner): a session of the application's role on a worker, writing a
    shard directly or through the worker's copy of the table, cannot date a row either.
    Citus allows row triggers on distributed tables only with ``citus.enable_unsafe_triggers``:
    this one touches its row alone."""

    def __init__(self, tables: list[str]):
        self.tables = tables

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        return [
            _SET_BY_THE_DATABASE_FUNCTION,
            "SET LOCAL citus.enable_unsafe_triggers = on",
            *(
                f"CREATE TRIGGER {SET_BY_THE_DATABASE_TRIGGER} BEFORE INSERT ON {ident(table)}"
                f" FOR EACH ROW EXECUTE FUNCTION qvp_known_from_now({literal(table)})"
                for table in self.tables
            ),
            "RESET citus.enable_unsafe_triggers",
        ]

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        if not _on_citus(schema_editor):
            return []
        # The column's grant on the shards goes too (create_db_roles made it): without the
        # trigger it would let the application's role date rows there.
        revokes = "\n".join(
            f"    REVOKE INSERT (known_from) ON {ident(table)} FROM trading_app;"
            for table in self.tables
        )
        return [
            # Citus refuses to drop a distributed table's trigger too without the setting.
            "SET LOCAL citus.enable_unsafe_triggers = on",
            *(
                f"DROP TRIGGER {SET_BY_THE_DATABASE_TRIGGER} ON {ident(table)}"
                for table in self.tables
            ),
            "RESET citus.enable_unsafe_triggers",
            "DROP FUNCTION qvp_known_from_now()",
            do_block(
                "BEGIN\n"
                "IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'trading_app') THEN\n"
                f"{revokes}\n"
                "END IF;\n"
                "END"
            ),
        ]

    def describe(self) -> str:
        return f"On Citus, known_from of {', '.join(self.tables)} set on the shards"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.tables], {}


class RunOnCitus(SqlOperation):
    """On Citus, the statements of ``forwards`` (a file's text: split into single statements,
    which is how Citus passes DDL on to the workers), and of ``backwards`` when unapplied;
    elsewhere nothing. For what exists on Citus alone, such as what stands in there for the
    statement triggers it refuses."""

    def __init__(self, forwards: str, backwards: str):
        self.forwards = forwards
        self.backwards = backwards

    def forwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        return _statements(self.forwards) if _on_citus(schema_editor) else []

    def backwards_sql(
        self, app_label: str, schema_editor: BaseDatabaseSchemaEditor, state: ProjectState
    ) -> list[str]:
        return _statements(self.backwards) if _on_citus(schema_editor) else []

    def describe(self) -> str:
        return "On Citus alone, SQL"

    def deconstruct(self) -> tuple[str, list[Any], dict[str, Any]]:
        return self.__class__.__qualname__, [self.forwards, self.backwards], {}


def _statements(sql: str) -> list[str]:
    return [s.strip().rstrip(";") for s in sqlparse.split(sql) if s.strip()]
