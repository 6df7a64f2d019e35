"""Backups with pg_dump and restores with pg_restore, each checked against a manifest.

A backup is two files: ``<name>.dump`` (pg_dump's custom format, restorable in parallel) and
``<name>.json``, its manifest: the server and engine it came from, the dump's SHA-256, and
the row count of every table *in the same snapshot as the dump* (pg_dump runs on a snapshot
exported by the transaction that counts). A restore checks the file against the checksum,
restores into a new database, then compares every table's row count with the manifest and
walks the audit chain: a restore that does not match is reported, never taken for good.

TimescaleDB: a hypertable's chunks and catalog must be restored with the extension's restore
mode on (``timescaledb_pre_restore()`` before, ``timescaledb_post_restore()`` after), into a
database where the same extension version is installed first.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from django.conf import settings
from django.db import connections
from psycopg import sql
from psycopg.conninfo import make_conninfo

from qvp_site.audit_keys import read_keyring
from qvp_site.audit_report import Report
from qvp_site.audit_verify import chain_problems, checkpoint_problems, pin_search_path
from qvp_site.db import postmaster, roles


class BackupError(Exception):
    """A backup or restore that cannot be done or did not come out right (the message says)."""


# --- Connections and binaries ------------------------------------------------------------------
def connect_with(params: dict[str, str], **options: Any) -> psycopg.Connection[Any]:
    """A connection with libpq's ``params`` (as ``libpq_params`` gives them)."""
    return psycopg.connect(make_conninfo(**params), **options)


def one_row(cursor: psycopg.Cursor[Any]) -> tuple[Any, ...]:
    """The one row a query returns (a query that always returns one)."""
    found = cursor.fetchone()
    if found is None:
        raise BackupError("the server returned no row")
    return found


def _first(cursor: psycopg.Cursor[Any]) -> Any:
    """The first value of the one row a query returns."""
    return one_row(cursor)[0]


def libpq_params(using: str = "default", dbname: str | None = None) -> dict[str, str]:
    """libpq keywords for the Django database ``using`` (or another database on its server)."""
    db = connections[using].settings_dict
    params = {
        "host": str(db.get("HOST") or ""),
        "port": str(db.get("PORT") or ""),
        "user": str(db.get("USER") or ""),
        "password": str(db.get("PASSWORD") or ""),
        "dbname": dbname or db["NAME"],
    }
    # sslmode, sslrootcert and the like from DATABASE_URL's query string.
    params.update({k: str(v) for k, v in db.get("OPTIONS", {}).items() if k.startswith("ssl")})
    return {k: v for k, v in params.items() if v}


def libpq_env(params: dict[str, str]) -> dict[str, str]:
    """The same, as the PG* variables of a client program (no password on its command line)."""
    names = {"host": "PGHOST", "port": "PGPORT", "user": "PGUSER", "password": "PGPASSWORD",
             "dbname": "PGDATABASE", "sslmode": "PGSSLMODE", "sslrootcert": "PGSSLROOTCERT",
             "sslcert": "PGSSLCERT", "sslkey": "PGSSLKEY"}  # fmt: skip
    return {**os.environ, **{names[k]: v for k, v in params.items() if k in names}}


def tool_major(path: str) -> int:
    out = subprocess.run([path, "--version"], capture_output=True, text=True, check=True).stdout
    found = re.search(r"\(PostgreSQL\) (\d+)", out)
    if not found:
        raise BackupError(f"cannot read the version of {path}: {out.strip()!r}")
    return int(found.group(1))


def pg_tool(name: str, server_major: int) -> str:
    """The path of ``name`` (pg_dump, pg_restore) suited to a server of ``server_major``.

    The embedded server's own programs first when it is the database; with DATABASE_URL the
    PATH's first (they are the ones the operator installed for that server), then the wheel's.
    The first of the server's major version wins, else the first newer one (pg_dump reads older
    servers); an older one cannot dump or restore for a newer server, which is an error.
    """
    wheel = str(postmaster.bin_dir() / name)
    on_path = shutil.which(name)
    candidates = [wheel, on_path] if settings.EMBEDDED_DATABASE else [on_path, wheel]
    found = [(path, tool_major(path)) for path in candidates if path and Path(path).exists()]
    for wanted in (lambda major: major == server_major, lambda major: major > server_major):
        for path, major in found:
            if wanted(major):
                return path
    versions = ", ".join(f"{path} is {major}" for path, major in found) or "none found"
    raise BackupError(
        f"{name} for a PostgreSQL {server_major} server: no {name} of version {server_major} "
        f"or later ({versions}); install the PostgreSQL {server_major} client programs"
    )


def server_major(conn: psycopg.Connection) -> int:
    return conn.info.server_version // 10000


# --- What the database holds --------------------------------------------------------------------
# Every table of the public schema that holds rows of its own or through its partitions (a
# partition is counted with its parent, a hypertable's chunks with it).
TABLES = (
    "SELECT c.relname FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace"
    " AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY c.relname"
)


def row_counts(conn: psycopg.Connection) -> dict[str, int]:
    """Rows of every table of the public schema (``TABLES``), in one statement."""
    tables = conn.execute(TABLES).fetchall()
    if not tables:
        return {}
    counts = sql.SQL(" UNION ALL ").join(
        sql.SQL("SELECT {}, count(*) FROM {}").format(sql.Literal(name), sql.Identifier(name))
        for (name,) in tables
    )
    return dict(conn.execute(counts).fetchall())


def audit_chain_problem(conn: psycopg.Connection) -> str | None:
    """None when the audit log's hash chain is intact, its head is the last linked entry and,
    where this machine has the keyring, each checkpoint the database holds is signed by one of
    its keys and still reached (the checkpoint file may hold later ones than a backup: it is
    verify_audit's)."""
    exists = _first(conn.execute("SELECT to_regclass('qvp_site_auditentry') IS NOT NULL"))
    if not exists:
        return None
    report = Report()
    # Signatures are checked where this machine holds the keyring; the links always.
    keyring = read_keyring(settings.QVP_AUDIT_PUBLIC_KEYS)
    with conn.transaction(), conn.cursor() as cursor:
        pin_search_path(cursor)
        chain_problems(cursor, report)
        if keyring:
            checkpoint_problems(cursor, report, keyring, None)
    return "; ".join(report.problems) or None


def timescaledb_version(conn: psycopg.Connection) -> str | None:
    row = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    found = row.fetchone()
    return found[0] if found else None


# --- Backup -------------------------------------------------------------------------------------
@dataclass
class Manifest:
    database: str
    created_at: str
    server_version: str
    timescaledb: str | None
    pg_dump: str
    sha256: str = ""
    row_counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> Manifest:
        if not path.exists():
            raise BackupError(f"{path}: the backup's manifest is missing")
        return cls(**json.loads(path.read_text()))


def manifest_path(dump: Path) -> Path:
    return dump.with_suffix(".json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def backup(dump: Path, using: str = "default") -> Manifest:
    """Dump the database to ``dump`` (custom format) with its manifest beside it.

    Written under a temporary name and renamed when complete: a failed backup leaves no file
    that looks like a backup.
    """
    dump = Path(dump)
    if dump.exists():
        raise BackupError(f"{dump} exists: choose another --output")
    dump.parent.mkdir(parents=True, exist_ok=True)
    params = libpq_params(using)
    partial = dump.with_name(dump.name + ".partial")
    with connect_with(params) as conn:
        tool = pg_tool("pg_dump", server_major(conn))
        # One snapshot for the counts and the dump: the manifest describes exactly this dump.
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        snapshot = _first(conn.execute("SELECT pg_export_snapshot()"))
        manifest = Manifest(
            database=params["dbname"],
            created_at=datetime.now(UTC).isoformat(),
            server_version=_first(conn.execute("SHOW server_version")),
            timescaledb=timescaledb_version(conn),
            pg_dump=subprocess.run([tool, "--version"], capture_output=True, text=True).stdout,
            row_counts=row_counts(conn),
        )
        result = subprocess.run(
            [tool, "--format=custom", f"--snapshot={snapshot}", f"--file={partial}",
             "--no-password"],
            env=libpq_env(params), capture_output=True, text=True, check=False,
        )  # fmt: skip
        conn.rollback()
    if result.returncode != 0:
        partial.unlink(missing_ok=True)
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    manifest.sha256 = sha256_of(partial)
    manifest.pg_dump = manifest.pg_dump.strip()
    manifest_path(dump).write_text(json.dumps(asdict(manifest), indent=2, sort_keys=True))
    partial.rename(dump)
    return manifest


# --- Restore ------------------------------------------------------------------------------------
@dataclass
class RestoreReport:
    database: str
    tables: int
    rows: int
    mismatches: dict[str, tuple[int, int | None]]
    audit_problem: str | None
    warnings: str

    @property
    def ok(self) -> bool:
        return not self.mismatches and self.audit_problem is None


def restore(dump: Path, database: str, jobs: int = 2, using: str = "default") -> RestoreReport:
    """Restore ``dump`` into the new database ``database`` on the server of ``using``, with
    ``jobs`` parallel pg_restore jobs, then check it against the manifest."""
    dump = Path(dump)
    manifest = Manifest.read(manifest_path(dump))
    if sha256_of(dump) != manifest.sha256:
        raise BackupError(f"{dump}: its SHA-256 does not match the manifest's (damaged file)")
    if jobs < 1:
        raise BackupError(f"--jobs must be at least 1, not {jobs}")
    admin = libpq_params(using, dbname="postgres")
    with connect_with(admin, autocommit=True) as conn:
        tool = pg_tool("pg_restore", server_major(conn))
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database]).fetchone():
            raise BackupError(f"database {database!r} exists: restore into a new database")
        with conn.transaction(), conn.cursor() as cursor:  # the dump's grants name them
            for name in (roles.APP_ROLE, roles.READONLY_ROLE, roles.RESEARCH_ROLE):
                roles.ensure_role(cursor, roles.RoleSpec(name, None))
        conn.execute(
            sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(sql.Identifier(database))
        )
    target = libpq_params(using, dbname=database)
    try:
        warnings = _pg_restore(tool, dump, target, manifest, jobs)
        with connect_with(target) as conn:
            counts = row_counts(conn)
            problem = audit_chain_problem(conn)
    except BaseException:
        drop_database(database, using)  # nothing half-restored is left behind
        raise
    mismatches = {
        table: (expected, counts.get(table))
        for table, expected in manifest.row_counts.items()
        if counts.get(table) != expected
    }
    return RestoreReport(database, len(counts), sum(counts.values()), mismatches, problem, warnings)


def _pg_restore(tool: str, dump: Path, target: dict, manifest: Manifest, jobs: int) -> str:
    if not manifest.timescaledb:
        return _run_pg_restore(tool, dump, target, [f"--jobs={jobs}"])
    with connect_with(target, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE EXTENSION timescaledb VERSION {}").format(
                sql.Literal(manifest.timescaledb)
            )
        )
        conn.execute("SELECT timescaledb_pre_restore()")
    try:
        return _pg_restore_timescaledb(tool, dump, target, jobs)
    finally:
        with connect_with(target, autocommit=True) as conn:
            conn.execute("SELECT timescaledb_post_restore()")


# TimescaleDB's own catalog (hypertables, chunks, jobs): its tables refer to one another, so
# their rows go in one job, in the dump's order, before the rest goes in parallel.
TIMESCALEDB_CATALOG = re.compile(r" TABLE DATA (_timescaledb_catalog|_timescaledb_config) ")


def _pg_restore_timescaledb(tool: str, dump: Path, target: dict, jobs: int) -> str:
    toc = subprocess.run([tool, "--list", str(dump)], capture_output=True, text=True, check=True)
    entries = [line for line in toc.stdout.splitlines() if line and not line.startswith(";")]
    catalog = [line for line in entries if TIMESCALEDB_CATALOG.search(line)]
    rest = [line for line in entries if not TIMESCALEDB_CATALOG.search(line)]
    lists = dump.parent / f".{dump.name}.{os.getpid()}"
    lists.mkdir(exist_ok=True)
    try:
        (lists / "catalog").write_text("\n".join(catalog) + "\n")
        (lists / "rest").write_text("\n".join(rest) + "\n")
        steps = [
            ["--section=pre-data"],
            ["--section=data", f"--use-list={lists / 'catalog'}"],
            ["--section=data", "--section=post-data", f"--use-list={lists / 'rest'}",
             f"--jobs={jobs}"],
        ]  # fmt: skip
        return "\n".join(filter(None, (_run_pg_restore(tool, dump, target, s) for s in steps)))
    finally:
        shutil.rmtree(lists, ignore_errors=True)


def _run_pg_restore(tool: str, dump: Path, target: dict, options: list[str]) -> str:
    result = subprocess.run(
        [tool, f"--dbname={target['dbname']}", "--exit-on-error", "--no-password", *options,
         str(dump)],
        env=libpq_env(target), capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed: {result.stderr.strip()}")
    return result.stderr.strip()


def drop_database(database: str, using: str = "default") -> None:
    with connect_with(libpq_params(using, dbname="postgres"), autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database))
        )


def default_backup_path(using: str = "default") -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    name = connections[using].settings_dict["NAME"]
    return Path(settings.VAR_DIR) / "backups" / f"{name}-{stamp}.dump"
