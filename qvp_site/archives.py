"""Old rows of time-series tables to Parquet files, and back.

An archive is written before retention may drop the rows: the rows of [start, before) are
streamed out by ``COPY ... TO STDOUT`` into a CSV file on disk, read back in batches by
pyarrow with each column's type taken from the table (timestamps in UTC microseconds,
numerics as decimals of the column's precision), and written to a Parquet file; memory stays
bounded by the batch size whatever the number of rows. The file's SHA-256 and the range are
recorded in an ``Archive`` row. Restoring checks the checksum, then loads the rows through
``COPY`` into a temporary table and inserts those the table does not hold already.
"""

from __future__ import annotations

import getpass
import os
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from qvp_site.backups import sha256_of
from qvp_site.db import catalog
from qvp_site.db.partitions import prepare_load
from qvp_site.db.quoting import ident, literal
from qvp_site.models import Archive

BLOCK_BYTES = 16 << 20  # CSV read per Arrow batch


class ArchiveError(Exception):
    """An archive that cannot be written or restored (the message says why)."""


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    arrow_type: pa.DataType


def arrow_type(sql_type: str, precision: int | None, scale: int | None) -> pa.DataType:
    """The Arrow type that holds a PostgreSQL column's values exactly."""
    exact = {
        "bigint": pa.int64(),
        "integer": pa.int32(),
        "smallint": pa.int16(),
        "double precision": pa.float64(),
        "real": pa.float32(),
        "boolean": pa.bool_(),
        "date": pa.date32(),
        "timestamp with time zone": pa.timestamp("us", tz="UTC"),
        "timestamp without time zone": pa.timestamp("us"),
    }
    if sql_type in exact:
        return exact[sql_type]
    if sql_type == "numeric" and precision is not None and precision <= 38:
        return pa.decimal128(precision, scale or 0)
    return pa.string()  # text, varchar, jsonb, numeric without a precision: as PostgreSQL prints


def columns(cursor, table: str) -> list[Column]:
    cursor.execute(
        "SELECT a.attname, format_type(a.atttypid, NULL),"
        " information_schema._pg_numeric_precision(a.atttypid, a.atttypmod),"
        " information_schema._pg_numeric_scale(a.atttypid, a.atttypmod)"
        " FROM pg_attribute a WHERE a.attrelid = %s::regclass AND a.attnum > 0"
        " AND NOT a.attisdropped ORDER BY a.attnum",
        [table],
    )
    return [Column(n, t, arrow_type(t, p, s)) for n, t, p, s in cursor.fetchall()]


def time_series_table(cursor, table: str) -> catalog.TimeSeries:
    found = catalog.time_series(cursor, table)
    if not found:
        known = ", ".join(series.table for series in catalog.time_series(cursor))
        raise ArchiveError(f"--table {table}: not a time-series table (those are: {known})")
    return found[0]


def archive_dir() -> Path:
    return Path(settings.QVP_ARCHIVE_DIR)


def archive(table: str, before: datetime, directory: Path | None = None) -> Archive:
    """Write the rows of ``table`` older than ``before`` (after the previous archive's end)
    to a Parquet file and record it."""
    directory = Path(directory or archive_dir())
    with transaction.atomic(), connection.cursor() as cursor:
        series = time_series_table(cursor, table)
        # One archive of a table at a time: the range follows the one before it.
        cursor.execute("SELECT pg_advisory_xact_lock(hashtext('qvp-archive:' || %s))", [table])
        previous = Archive.objects.filter(table_name=table).order_by("-before").first()
        starts = previous.before if previous else None
        if starts is not None and before <= starts:
            raise ArchiveError(
                f"--before {before.isoformat()}: {table} is archived up to {starts.isoformat()}"
                " already; give a later date"
            )
        cols = columns(cursor, table)
        directory.mkdir(parents=True, exist_ok=True)
        target = directory / f"{table}-{before.astimezone(UTC):%Y%m%dT%H%M%SZ}.parquet"
        if target.exists():
            raise ArchiveError(f"{target} exists already (an archive not recorded?); move it")
        rows = _write_parquet(cursor, series, cols, starts, before, target)
        return Archive.objects.create(
            table_name=table, time_column=series.time_column, starts=starts, before=before,
            rows=rows, path=str(target), sha256=sha256_of(target),
            size_bytes=target.stat().st_size, created_by=_who(),
        )  # fmt: skip


def _write_parquet(cursor, series, cols, starts, before, target: Path) -> int:
    time_col = ident(series.time_column)
    where = f"{time_col} < {literal(before)}"
    if starts is not None:
        where += f" AND {time_col} >= {literal(starts)}"
    query = (
        f"SELECT {', '.join(ident(c.name) for c in cols)} FROM {ident(series.table)}"
        f" WHERE {where} ORDER BY {time_col}"
    )
    cursor.execute("SET LOCAL TimeZone = 'UTC'")
    partial = target.with_name(target.name + ".partial")
    rows = 0
    with tempfile.NamedTemporaryFile(suffix=".csv", dir=target.parent) as csv_file:
        with cursor.cursor.copy(f"COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)") as copy:
            for data in copy:
                csv_file.write(data)
        csv_file.flush()
        schema = pa.schema([(c.name, c.arrow_type) for c in cols])
        reader = pa_csv.open_csv(
            csv_file.name,
            read_options=pa_csv.ReadOptions(block_size=BLOCK_BYTES),
            convert_options=pa_csv.ConvertOptions(
                column_types={c.name: c.arrow_type for c in cols},
                strings_can_be_null=True,
                quoted_strings_can_be_null=False,  # "" is an empty string, not NULL
                # PostgreSQL's CSV: NULL is an unquoted empty field, and nothing else (Arrow
                # would also take NA, null or NaN for NULL); booleans are t and f.
                null_values=[""],
                true_values=["t"],
                false_values=["f"],
            ),
        )
        try:
            with pq.ParquetWriter(partial, schema, compression="zstd") as writer:
                for batch in reader:
                    writer.write_batch(batch)
                    rows += batch.num_rows
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    partial.rename(target)
    return rows


@dataclass(frozen=True)
class RestoreResult:
    archive: Archive
    rows: int
    inserted: int


def restore(archive_id: int) -> RestoreResult:
    """Load an archive's rows back into its table; rows it still holds are left as they are."""
    record = Archive.objects.filter(pk=archive_id).first()
    if record is None:
        raise ArchiveError(f"--restore {archive_id}: no such archive")
    path = Path(record.path)
    if not path.exists():
        raise ArchiveError(f"archive {archive_id}: {path} is missing")
    if sha256_of(path) != record.sha256:
        raise ArchiveError(f"archive {archive_id}: {path} does not match its SHA-256 (damaged)")
    parquet = pq.ParquetFile(path)
    with transaction.atomic(), connection.cursor() as cursor:
        cols = [c.name for c in columns(cursor, record.table_name)]
        if parquet.schema_arrow.names != cols:
            raise ArchiveError(
                f"archive {archive_id}: its columns {parquet.schema_arrow.names} are not the "
                f"table's now ({cols}); restore it by hand"
            )
        if record.rows:
            bounds = pq.read_table(path, columns=[record.time_column]).column(0)
            low, high = pc.min(bounds).as_py(), pc.max(bounds).as_py()
            prepare_load(record.table_name, low, high)
        inserted = _load(cursor, record.table_name, cols, parquet)
        record.restored_at, record.restored_rows = timezone.now(), inserted
        record.save(update_fields=["restored_at", "restored_rows"])
    return RestoreResult(record, record.rows, inserted)


def _load(cursor, table: str, cols: list[str], parquet: pq.ParquetFile) -> int:
    names = ", ".join(ident(c) for c in cols)
    staging = "qvp_archive_restore"
    cursor.execute(
        f"CREATE TEMP TABLE {staging} AS SELECT {names} FROM {ident(table)} WITH NO DATA"
    )
    with cursor.cursor.copy(f"COPY {staging} ({names}) FROM STDIN (FORMAT csv)") as copy:
        for batch in parquet.iter_batches(batch_size=100_000):
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(batch, sink, pa_csv.WriteOptions(include_header=False))
            copy.write(sink.getvalue().to_pybytes())
    # Counted from RETURNING: for an INSERT ... SELECT into a distributed table Citus reports
    # the rows it sent to the shards, those ON CONFLICT skipped included.
    cursor.execute(f"WITH added AS (INSERT INTO {ident(table)} ({names}) SELECT {names}"
                   f" FROM {staging} ON CONFLICT DO NOTHING RETURNING 1)"
                   " SELECT count(*) FROM added")  # fmt: skip
    (inserted,) = cursor.fetchone()
    cursor.execute(f"DROP TABLE {staging}")
    return inserted


def _who() -> str:
    try:
        return f"os:{getpass.getuser()}"
    except (KeyError, OSError):
        return f"pid:{os.getpid()}"
