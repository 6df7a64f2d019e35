"""Which time-series engine the database offers: TimescaleDB, Citus, or plain PostgreSQL.

Detected from the server (pg_available_extensions and shared_preload_libraries; for Citus, the
extension in the database and its workers registered), unless QVP_ENGINE names one, which is
then required. The answer is cached per database, since it cannot change while a process runs
short of installing an extension.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

TIMESCALEDB = "timescaledb"
POSTGRESQL = "postgresql"
CITUS = "citus"

_cache: dict[tuple[str, str], EngineInfo] = {}
_distributed: dict[tuple[str, str], dict[str, tuple[str, int]]] = {}


@dataclass(frozen=True)
class EngineInfo:
    """The engine in use and the versions behind it."""

    engine: str
    server_version: str
    timescaledb_version: str | None
    pgvector_version: str | None
    citus_version: str | None = None
    citus_workers: int = 0

    @property
    def is_timescaledb(self) -> bool:
        return self.engine == TIMESCALEDB

    @property
    def is_citus(self) -> bool:
        return self.engine == CITUS


_PROBE = """
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
       -- Through pg_settings, which hides the row from roles that may not read it (the
       -- application's role): the installed extension answers for them.
       (SELECT 'timescaledb' = ANY(string_to_array(replace(setting, ' ', ''), ','))
        FROM pg_settings WHERE name = 'shared_preload_libraries'),
       (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'vector'),
       (SELECT extversion FROM pg_extension WHERE extname = 'citus')
"""
# Citus's workers, where the extension is in the database (its catalog exists then); one
# disabled for a while is still one: the engine does not change under a running site.
_CITUS_WORKERS = """
SELECT count(*) FROM pg_dist_node WHERE groupid <> 0 AND noderole = 'primary'
"""


def detect(connection: BaseDatabaseWrapper | None = None) -> EngineInfo:
    """The engine of ``connection`` (default: the default database), honouring QVP_ENGINE."""
    connection = connection or connections["default"]
    key = (connection.alias, connection.settings_dict["NAME"])
    if key not in _cache:
        _cache[key] = _probe(connection)
    return _cache[key]


def forget() -> None:
    """Drop cached answers (after the extension is created or dropped, and in tests)."""
    _cache.clear()
    _distributed.clear()


def _probe(connection: BaseDatabaseWrapper) -> EngineInfo:
    with connection.cursor() as cursor:
        cursor.execute(_PROBE)
        server, ts_installed, ts_available, preloaded, vec_installed, vec_available, citus = (
            cursor.fetchone()
        )
        workers = 0
        if citus:
            cursor.execute(_CITUS_WORKERS)
            workers = cursor.fetchone()[0]
    timescaledb_usable = bool(ts_installed) or bool(ts_available and preloaded)
    engine = _choose(settings.QVP_ENGINE, timescaledb_usable, bool(citus), workers, ts_available)
    return EngineInfo(
        engine=engine,
        server_version=server,
        timescaledb_version=(ts_installed or ts_available) if engine == TIMESCALEDB else None,
        pgvector_version=vec_installed or vec_available,
        citus_version=citus if engine == CITUS else None,
        citus_workers=workers,
    )


def _choose(
    mode: str, timescaledb: bool, citus: bool, workers: int, ts_available: str | None
) -> str:
    """The engine ``mode`` (QVP_ENGINE) asks for, refused when the database cannot be it."""
    if mode == TIMESCALEDB and not timescaledb:
        reason = (
            "it is not installed on the server"
            if not ts_available
            else "it is not in shared_preload_libraries"
        )
        raise ImproperlyConfigured(
            f"QVP_ENGINE=timescaledb but TimescaleDB cannot be used: {reason}"
        )
    if mode == CITUS and not (citus and workers):
        reason = "the extension is not in the database" if not citus else "no worker is registered"
        raise ImproperlyConfigured(
            f"QVP_ENGINE=citus but Citus cannot be used: {reason} (QVP_CITUS_WORKERS names the"
            " workers a new database is prepared on)"
        )
    if mode != "auto":
        return mode
    if citus and workers:
        return CITUS
    return TIMESCALEDB if timescaledb else POSTGRESQL


def is_timescaledb(connection: BaseDatabaseWrapper | None = None) -> bool:
    return detect(connection).is_timescaledb


def is_citus(connection: BaseDatabaseWrapper | None = None) -> bool:
    return detect(connection).is_citus


def inlines_sql_functions_into_queries(connection: BaseDatabaseWrapper | None = None) -> bool:
    """Whether a query over the time-series tables may call a SQL function that PostgreSQL
    inlines into it (``marketdata_resolve_symbols``, say). Not on Citus: it refuses any query
    over distributed tables with such a function in it, its arguments constants or not."""
    return not is_citus(connection)


def distributes_market_data(connection: BaseDatabaseWrapper | None = None) -> bool:
    """Whether the market data is spread over workers by instrument (Citus), beside a table
    of the instruments' keys (``marketdata_instrument_key``) that lookups start from."""
    return is_citus(connection)


def new_keys_need_a_commit(connection: BaseDatabaseWrapper | None = None) -> bool:
    """Whether a row whose key a reference table mirrors (a feature set, an agent) must be
    committed before rows referring to it are written as a role other than the owner. On
    Citus the owner's trigger writes the key over the owner's connections to the workers, and
    a role's writes in the same transaction check their foreign keys over the role's own,
    which do not see the uncommitted key."""
    return is_citus(connection)


def local_settings_reach_the_shards(connection: BaseDatabaseWrapper | None = None) -> str:
    """The statement after which a transaction's ``SET LOCAL`` settings reach the sessions that
    run its queries on the shards (a vector search's ``hnsw.ef_search``): on Citus,
    ``citus.propagate_set_commands``, off by default; elsewhere, nothing. Send such settings in
    a message of their own: Citus sends a propagated SET's whole query string to the workers."""
    return "SET LOCAL citus.propagate_set_commands = 'local'" if is_citus(connection) else ""


# The tables Citus distributes by hash (not their partitions): each one's distribution column
# and colocation group. Citus's catalog is readable by every role.
_DISTRIBUTED_SQL = """
SELECT c.relname, column_to_column_name(p.logicalrelid, p.partkey), p.colocationid
FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid
WHERE p.partmethod = 'h' AND NOT c.relispartition
"""


def distribution(
    table: str, connection: BaseDatabaseWrapper | None = None
) -> tuple[str, int] | None:
    """On Citus, ``table``'s distribution column and colocation group; None for a table kept
    whole (on the coordinator, or a reference table), and on the other engines. Read once per
    database and process: the migrations distribute a table once, before the site serves."""
    connection = connection or connections["default"]
    if not is_citus(connection):
        return None
    key = (connection.alias, connection.settings_dict["NAME"])
    if key not in _distributed:
        with connection.cursor() as cursor:
            cursor.execute(_DISTRIBUTED_SQL)
            _distributed[key] = {name: (column, group) for name, column, group in cursor.fetchall()}
    return _distributed[key].get(table)
