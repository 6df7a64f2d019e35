"""Which time-series engine the database offers: TimescaleDB, or plain PostgreSQL.

Detected from the server (pg_available_extensions and shared_preload_libraries), unless
QVP_TIMESCALEDB forces it. The answer is cached per database, since it cannot change while a
process runs short of installing the extension.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections
from django.db.backends.base.base import BaseDatabaseWrapper

TIMESCALEDB = "timescaledb"
POSTGRESQL = "postgresql"

_cache: dict[tuple[str, str], EngineInfo] = {}


@dataclass(frozen=True)
class EngineInfo:
    """The engine in use and the versions behind it."""

    engine: str
    server_version: str
    timescaledb_version: str | None
    pgvector_version: str | None

    @property
    def is_timescaledb(self) -> bool:
        return self.engine == TIMESCALEDB


_PROBE = """
SELECT current_setting('server_version'),
       (SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'timescaledb'),
       -- Through pg_settings, which hides the row from roles that may not read it (the
       -- application's role): the installed extension answers for them.
       (SELECT 'timescaledb' = ANY(string_to_array(replace(setting, ' ', ''), ','))
        FROM pg_settings WHERE name = 'shared_preload_libraries'),
       (SELECT extversion FROM pg_extension WHERE extname = 'vector'),
       (SELECT default_version FROM pg_available_extensions WHERE name = 'vector')
"""


def detect(connection: BaseDatabaseWrapper | None = None) -> EngineInfo:
    """The engine of ``connection`` (default: the default database), honouring QVP_TIMESCALEDB."""
    connection = connection or connections["default"]
    key = (connection.alias, connection.settings_dict["NAME"])
    if key not in _cache:
        _cache[key] = _probe(connection)
    return _cache[key]


def forget() -> None:
    """Drop cached answers (after the extension is created or dropped, and in tests)."""
    _cache.clear()


def _probe(connection: BaseDatabaseWrapper) -> EngineInfo:
    with connection.cursor() as cursor:
        cursor.execute(_PROBE)
        server, ts_installed, ts_available, preloaded, vec_installed, vec_available = (
            cursor.fetchone()
        )
    usable = bool(ts_installed) or bool(ts_available and preloaded)
    mode = settings.QVP_TIMESCALEDB
    if mode == "on" and not usable:
        reason = (
            "it is not installed on the server"
            if not ts_available
            else "it is not in shared_preload_libraries"
        )
        raise ImproperlyConfigured(f"QVP_TIMESCALEDB=on but TimescaleDB cannot be used: {reason}")
    use_timescaledb = usable and mode != "off"
    return EngineInfo(
        engine=TIMESCALEDB if use_timescaledb else POSTGRESQL,
        server_version=server,
        timescaledb_version=(ts_installed or ts_available) if use_timescaledb else None,
        pgvector_version=vec_installed or vec_available,
    )


def is_timescaledb(connection: BaseDatabaseWrapper | None = None) -> bool:
    return detect(connection).is_timescaledb
