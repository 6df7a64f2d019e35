"""Rows straight into Arrow: the ADBC PostgreSQL driver reads a statement by binary COPY and
decodes it column by column in C++, with no Python object per row (psycopg's COPY hands over
one row at a time: 756,000 minute bars took 1.7 s that way, 0.54 s by the driver).

The driver opens its own connection, so everything Django's connection carries for a request
is applied to it here, in its one transaction per read:

- the database: the one the list's queryset reads (a replica when the request was routed to
  one, ``qvp_site.replicas``), with the same settings (user, password, host, TLS options);
- the role: the one Django's connection acts as (``current_user``), so that a connection
  that switched role (``SET ROLE``, Django's ``assume_role``) reads as that role;
- who acts: ``qvp.user_id`` and ``qvp.actor`` as ``qvp_site.acting.declare`` sets them, which
  row-level security reads;
- the time limit: the stream's (``QVP_STREAM_STATEMENT_TIMEOUT``), not the request's;
- read only, and rolled back at the end: a read leaves nothing behind.

Idle connections are kept for the next read (a few per database: a sync worker serves one
request at a time), since opening one costs about 0.1 s (the driver reads the server's type
catalogue); one is closed when a read ends early (a client that went away mid-stream) or
fails, and by ``close_all`` (tests, before their database is emptied or dropped).
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any

import adbc_driver_postgresql.dbapi as adbc
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from adbc_driver_manager import DatabaseError as AdbcError
from django.db import connections
from psycopg.conninfo import make_conninfo

from qvp_site.api.bulk.columns import ReadColumn

APPLICATION_NAME = "qvp bulk read"
# Django's OPTIONS that are psycopg's, not libpq connection parameters.
NOT_CONNINFO = {
    "assume_role",
    "context",
    "cursor_factory",
    "isolation_level",
    "pool",
    "prepare_threshold",
    "server_side_binding",
}

KEPT_PER_DATABASE = 4  # idle connections kept: a sync worker reads one stream at a time
_idle: dict[str, list[Any]] = {}  # connection string -> idle connections
_lock = threading.Lock()


def conninfo(alias: str) -> str:
    """libpq's connection string for the database ``alias`` names."""
    settings = connections[alias].settings_dict
    options = {k: v for k, v in settings.get("OPTIONS", {}).items() if k not in NOT_CONNINFO}
    parameters = {
        "dbname": settings["NAME"],
        "user": settings["USER"],
        "password": settings["PASSWORD"],
        "host": settings["HOST"],
        "port": settings["PORT"],
        "application_name": APPLICATION_NAME,
        **options,
    }
    return make_conninfo(**{k: v for k, v in parameters.items() if v not in ("", None)})


def _checkout(info: str) -> tuple[Any, bool]:
    """A connection to ``info``'s database, and whether it was kept from an earlier read."""
    with _lock:
        idle = _idle.get(info)
        if idle:
            return idle.pop(), True
    return adbc.connect(info), False


def begun(info: str) -> Any:
    """A connection whose read-only transaction has begun. A kept one the server has closed
    since (a restart or failover, an idle timeout, a pooler, an operator) fails its first
    statement: it is dropped and a new one opened, before anything was read."""
    connection, kept = _checkout(info)
    try:
        connection.cursor().execute("SET TRANSACTION READ ONLY")
    except (AdbcError, OSError):
        close(connection)
        if not kept:
            raise
        connection = adbc.connect(info)
        connection.cursor().execute("SET TRANSACTION READ ONLY")
    return connection


def give_back(info: str, connection: Any) -> None:
    """Keep ``connection`` for the next read of ``info`` (up to ``KEPT_PER_DATABASE``), else
    close it. Only a connection whose transaction is over (``rolled_back``) is given back."""
    with _lock:
        idle = _idle.setdefault(info, [])
        if len(idle) < KEPT_PER_DATABASE:
            idle.append(connection)
            return
    close(connection)


def close(connection: Any) -> None:
    """Close ``connection``, broken or not."""
    with suppress(AdbcError):  # already broken: nothing to give back
        connection.close()


def close_all() -> None:
    """Close the idle connections (tests, before their database is emptied or dropped)."""
    with _lock:
        idle = [c for kept in _idle.values() for c in kept]
        _idle.clear()
    for connection in idle:
        close(connection)


@contextmanager
def reading(alias: str, preamble: Sequence[str], sql: str) -> Iterator[pa.RecordBatchReader]:
    """The batches of ``sql`` on ``alias``, after the ``preamble`` statements (role, user,
    time limit) in the same read-only transaction."""
    info = conninfo(alias)
    connection = begun(info)
    finished = False
    try:
        cursor = connection.cursor()
        for statement in preamble:
            cursor.execute(statement)
        cursor.execute(sql)
        yield cursor.fetch_record_batch()
        finished = True
    finally:
        if finished and rolled_back(connection):
            give_back(info, connection)
        else:
            close(connection)


def rolled_back(connection: Any) -> bool:
    """End the read's transaction: False when the connection is broken (not to be kept)."""
    try:
        connection.rollback()
    except AdbcError:
        return False
    return True


def converted(
    batch: pa.RecordBatch, columns: Sequence[ReadColumn], schema: pa.Schema
) -> pa.RecordBatch:
    """``batch`` as the driver read it, in the columns' Arrow types (``schema``)."""
    arrays = [_convert(batch.column(i), column) for i, column in enumerate(columns)]
    return pa.RecordBatch.from_arrays(arrays, schema=schema)


def _convert(array: pa.Array, column: ReadColumn) -> pa.Array:
    if isinstance(array, pa.ExtensionArray):  # NUMERIC as text, a vector as its bytes, JSON
        array = array.storage
    if column.kind == "decimal":
        return pc.cast(array, column.type)
    if column.kind == "vector":
        return vectors(array, column.type)
    return array if array.type == column.type else pc.cast(array, column.type)


def vectors(array: pa.Array, kind: pa.FixedSizeListType) -> pa.Array:
    """pgvector's binary form (dimensions and a reserved field, two int16s, then big-endian
    float4s) into a fixed-size list of float32, all rows at once: the values of the rows
    that are not NULL lie end to end in the array's data, each of the same width."""
    dimensions = kind.list_size
    width = 4 + 4 * dimensions
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)
    offsets = offsets[array.offset : array.offset + len(array) + 1]
    valid = array.is_valid().to_numpy(zero_copy_only=False)
    data = np.frombuffer(array.buffers()[2] or b"", dtype=np.uint8)[offsets[0] : offsets[-1]]
    count = int(valid.sum())
    if data.size != count * width:
        raise ValueError(f"a vector is not of {dimensions} dimensions")
    values = np.zeros((len(array), dimensions), dtype=np.float32)
    values[valid] = np.ascontiguousarray(data.reshape(count, width)[:, 4:]).view(">f4")
    flat = pa.array(values.reshape(-1), type=pa.float32())
    mask = None if count == len(array) else pa.array(~valid)
    return pa.FixedSizeListArray.from_arrays(flat, dimensions, mask=mask)
