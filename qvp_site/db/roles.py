"""The database roles the application runs as, and what each may do.

``trading_app`` is the application: it reads and writes data but runs no DDL, cannot change
the audit log, and is subject to row-level security (it owns nothing). ``trading_readonly``
reads what reporting and auditors' SQL need, and no secret. ``qvp_research`` is the quants':
SQL from psql and notebooks on market data, signals and vectors, never the books of accounts.
Migrations and maintenance run as the owner.

Each role's access is an allow-list, applied relation by relation on every run (never ``ON ALL
TABLES``, never default privileges): a table made later gets its grants when this command runs
again, which it does after every migrate.

- ``trading_app``: the tables of every installed app's models, the relations the apps list in
  ``AppConfig.app_role_privileges`` and the aggregates; SELECT on each, and besides SELECT what
  ``app_role_privileges`` says (tables not listed get INSERT, UPDATE, DELETE; views SELECT only).
- ``trading_readonly``: SELECT on the same relations of ``READONLY_APPS`` only, column by column
  where a table holds a secret (``SECRET_COLUMNS``). Sessions, the admin's log and any app
  added later (django-axes...) are not on its list.
- ``qvp_research``: SELECT on the relations of ``RESEARCH_APPS`` and the aggregates of their
  tables, but those of ``RESEARCH_LEFT_OUT`` and the columns ``research_withheld`` finds (who
  did what, and links to relations it may not read); EXECUTE on the owner's functions of its
  apps that ``trading_readonly`` may run (``SHARED_OWNERS_FUNCTIONS``). Its statement and
  idle-transaction timeouts and its connection limit are set on the role
  (``configure_research``), so they hold for every client.
- No role has any privilege on a partition or a TimescaleDB chunk: row-level security
  applies to the parent a query names, so a partition named directly would bypass it. A
  partition made later (``qvp_create_partition``, ``maintain``) gets no grant, since nothing
  grants by default. TimescaleDB copies a hypertable's grants to every chunk it makes: the
  grants are taken off the chunks on each run, by a trigger on each hypertable for chunks a
  load makes, and in the transaction that compresses a chunk (``maintain`` and the
  compression job both call ``qvp_compress_chunks``, qvp_site/sql/compression/0009.sql).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.apps import apps
from psycopg import sql

from qvp_site.db.distribution import SET_BY_THE_DATABASE_TRIGGER

# The monitoring views' functions: read by both roles, revoked from PUBLIC.
from qvp_site.db.monitoring import FUNCTIONS as MONITORING_FUNCTIONS
from qvp_site.db.passwords import set_password

if TYPE_CHECKING:
    import psycopg
    from django.db.backends.utils import CursorWrapper

    Cursor = CursorWrapper | psycopg.Cursor[Any]

APP_ROLE = "trading_app"
READONLY_ROLE = "trading_readonly"
RESEARCH_ROLE = "qvp_research"
WRITES = "INSERT, UPDATE, DELETE"

# The apps whose relations trading_readonly reads: the project's, and who is who.
READONLY_APPS = (
    "auth",
    "contenttypes",
    "qvp_site",
    "marketdata",
    "trading",
    "risk",
    "signals",
    "vectors",
    "dashboard",
)

# The apps whose relations qvp_research reads: market data and what is computed from it. None
# has row-level security (the account-scoped tables are trading's and risk's), so the role sees
# every row, as the owner does.
RESEARCH_APPS = ("marketdata", "signals", "vectors")

# Relations of those apps research does not read. The site's log records: whatever a request or
# a job logged (user names, account and order ids, errors), not market data.
RESEARCH_LEFT_OUT = ("signals_systemlog",)

# Relations of other apps research reads all the same: the exchanges' trading sessions, which
# detect_market_data_anomalies reads for gaps (risk/sql/anomalies/0008.sql): calendars, not books.
# And on Citus the instruments', the agents' and the feature sets' keys, which the market
# data's, the signals' and the vectors' foreign keys point at (qvp_site/db/distribution.py): a
# column referring to a relation research may not read is withheld, and the market data would
# lose its instrument, a signal its agent, an embedding its set.
RESEARCH_ALSO = (
    "risk_tradingcalendar",
    "risk_tradingperiod",
    "marketdata_instrument_key",
    "signals_agent_key",
    "vectors_featureset_key",
)

# Columns research never reads, in any of its relations: who did something (a site user, a
# database role, a user of the server) and which account. A column that links to a relation
# research may not read goes too (``research_withheld``): a strategy pattern's backtest run (the
# books'), an ingest's user.
RESEARCH_WITHHELD_NAMES = ("actor", "db_role", "user_id", "os_user", "account_id", "created_by_id")
RESEARCH_WITHHELD_COLUMNS: dict[str, tuple[str, ...]] = {
    # Where the server keeps loaded files and their rejects: the server's layout, not data;
    # and the errors of a failed load, whose text may name the server's paths.
    "marketdata_ingest": ("path", "rejects_file", "error_summary"),
}

# Columns only the application reads: it checks passwords and API tokens against them. A
# password hash or a token digest read elsewhere can be attacked offline or replayed.
SECRET_COLUMNS: dict[str, tuple[str, ...]] = {
    "auth_user": ("password",),
    "qvp_site_apitoken": ("digest",),
}

# Relation kinds that are read only, whatever app_role_privileges says.
VIEW_KINDS = ("v", "m")

# Where TimescaleDB keeps chunks, compressed chunks and aggregates' materializations.
CHUNK_SCHEMA = "_timescaledb_internal"

_DEFAULT_ACL_OBJECTS = {
    "r": "TABLES",
    "S": "SEQUENCES",
    "f": "FUNCTIONS",
    "T": "TYPES",
    "n": "SCHEMAS",
}


@dataclass(frozen=True)
class RoleSpec:
    name: str
    password: str | None
    # Made NOLOGIN without a password (the research role): with pg_hba's trust or peer, a login
    # role without one would log in all the same. A later run given one makes it LOGIN.
    login_needs_password: bool = False


def limits() -> dict[str, str]:
    """Table -> what trading_app may do besides SELECT ('' for nothing), from every app."""
    found: dict[str, str] = {}
    for config in apps.get_app_configs():
        found.update(getattr(config, "app_role_privileges", {}))
    return found


def app_relations(labels: Collection[str] | None = None) -> set[str]:
    """The relations the apps (those of ``labels``, or all) declare: their models' tables,
    many-to-many tables included, and what their ``app_role_privileges`` name."""
    found: set[str] = set()
    for config in apps.get_app_configs():
        if labels is not None and config.label not in labels:
            continue
        found.update(m._meta.db_table for m in config.get_models(include_auto_created=True))
        found.update(getattr(config, "app_role_privileges", {}))
    return found


def ensure_role(cursor: Cursor, role: RoleSpec) -> bool:
    """Create the login role if missing (True when created); set its password if given."""
    cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role.name])
    created = cursor.fetchone() is None
    verb = "CREATE" if created else "ALTER"
    statement = sql.SQL(
        "{} ROLE {} {} NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS NOREPLICATION"
    ).format(sql.SQL(verb), sql.Identifier(role.name), sql.SQL(_login(role, created)))
    if created:
        try:
            cursor.execute("SAVEPOINT qvp_role")
            cursor.execute(statement)
            cursor.execute("RELEASE SAVEPOINT qvp_role")
        except Exception as error:  # another process created it between our look and now
            cursor.execute("ROLLBACK TO SAVEPOINT qvp_role")
            if "already exists" not in str(error):
                raise
            created = False
    else:
        cursor.execute(statement)
    if role.password:
        set_password(cursor, role.name, role.password)
    return created


def _login(role: RoleSpec, created: bool) -> str:
    """LOGIN, unless the role needs a password to log in and none is given: NOLOGIN when made,
    as it was when it exists (a run without the password leaves a login as it stands)."""
    if role.password or not role.login_needs_password:
        return "LOGIN"
    return "NOLOGIN" if created else ""


# qvp_research's limits, set on the role: each session it opens starts with them, whatever the
# client (psql, psycopg, ADBC). A session may still lower or raise its own statement timeout
# (SET is the user's); the connection limit it cannot.
RESEARCH_TIMEOUTS = ("statement_timeout", "idle_in_transaction_session_timeout")


def configure_research(
    cursor: Cursor, *, statement_timeout: float, idle_timeout: float, connection_limit: int
) -> None:
    """Set qvp_research's connection limit and its timeouts (in seconds; 0 takes the role's
    setting off, and the server's default applies). Only what differs is altered: two runs at
    once on one server (a deploy and a test run) would otherwise update the same catalog rows,
    and the second would fail ("tuple concurrently updated")."""
    role = sql.Identifier(RESEARCH_ROLE)
    cursor.execute(
        "SELECT rolconnlimit, coalesce(rolconfig, '{}') FROM pg_roles WHERE rolname = %s",
        [RESEARCH_ROLE],
    )
    row = cursor.fetchone()
    if row is None:
        raise RuntimeError(f"role {RESEARCH_ROLE} does not exist: ensure_role makes it first")
    limit, config = row
    if limit != connection_limit:
        cursor.execute(
            sql.SQL("ALTER ROLE {} CONNECTION LIMIT {}").format(role, sql.Literal(connection_limit))
        )
    timeouts = (statement_timeout, idle_timeout)
    for parameter, seconds in zip(RESEARCH_TIMEOUTS, timeouts, strict=True):
        name = sql.Identifier(parameter)
        now = next((c for c in config if c.startswith(f"{parameter}=")), None)
        if not seconds:
            if now is not None:
                cursor.execute(sql.SQL("ALTER ROLE {} RESET {}").format(role, name))
            continue
        milliseconds = f"{max(1, round(seconds * 1000))}ms"  # under a millisecond is not none
        if now != f"{parameter}={milliseconds}":
            cursor.execute(
                sql.SQL("ALTER ROLE {} SET {} = {}").format(role, name, sql.Literal(milliseconds))
            )


def grant(cursor: CursorWrapper, database: str, owner: str) -> bool:
    """Apply every grant, idempotently: what each role had is revoked, then its allow-list is
    granted, in the caller's transaction (other sessions never see a role with nothing).
    Whether PUBLIC's advisory locks and large-object writes could be withheld (a superuser
    only: ``_withhold_public_functions``)."""
    app, readonly = sql.Identifier(APP_ROLE), sql.Identifier(READONLY_ROLE)
    research = sql.Identifier(RESEARCH_ROLE)
    db = sql.Identifier(database)
    for statement in (
        # TEMPORARY by name only: PUBLIC's (PostgreSQL's default) would let the read-only
        # roles write tables of their own, for as long as a session lasts.
        sql.SQL("REVOKE TEMPORARY ON DATABASE {} FROM PUBLIC").format(db),
        sql.SQL("GRANT CONNECT, TEMPORARY ON DATABASE {} TO {}").format(db, app),
        sql.SQL("GRANT CONNECT ON DATABASE {} TO {}, {}").format(db, readonly, research),
        sql.SQL("REVOKE CREATE ON SCHEMA public FROM PUBLIC, {}, {}, {}").format(
            app, readonly, research
        ),
        sql.SQL("GRANT USAGE ON SCHEMA public TO {}, {}, {}").format(app, readonly, research),
        # Partitions included: what earlier versions of this command granted goes too.
        sql.SQL("REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {}, {}, {}").format(
            app, readonly, research
        ),
        sql.SQL("REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {}, {}").format(
            readonly, research
        ),
        sql.SQL("GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {}").format(app),
    ):
        cursor.execute(statement)
    _revoke_default_privileges(cursor)
    present = _relations(cursor)
    for role, access in (
        (app, app_access(cursor, present)),
        (readonly, readonly_access(cursor, present)),
        (research, research_access(cursor, present)),
    ):
        for table, privileges in sorted(access.items()):
            cursor.execute(
                sql.SQL("GRANT {} ON {} TO {}").format(privileges, sql.Identifier(table), role)
            )
    _withheld_columns_on_the_shards(cursor, app)
    _owners_functions(cursor, app, readonly, research)
    _timescaledb_schemas(cursor, (app, readonly, research))
    return _withhold_public_functions(cursor, app)


# PostgreSQL's functions open to PUBLIC that let a read-only login disturb the site. An advisory
# lock whose key is in the code (a scheduled job's, a table's partition maker's) held by a
# notebook's session stops that job or the loads for as long as the session lives; a large
# object is a write that outlives the session, into the database and its backups. The
# application's role keeps the advisory locks by name (it takes them when it loads).
ADVISORY_LOCKS = tuple(
    f"{name}({arguments})"
    for name in (
        "pg_advisory_lock",
        "pg_advisory_lock_shared",
        "pg_try_advisory_lock",
        "pg_try_advisory_lock_shared",
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
    )
    for arguments in ("bigint", "integer, integer")
)
LARGE_OBJECT_WRITES = (
    "lo_create(oid)",
    "lo_creat(integer)",
    "lo_from_bytea(oid, bytea)",
    "lo_put(oid, bigint, bytea)",
    "lowrite(integer, bytea)",
)


def _withhold_public_functions(cursor: CursorWrapper, app: sql.Identifier) -> bool:
    """Take ``ADVISORY_LOCKS`` and ``LARGE_OBJECT_WRITES`` from PUBLIC, the locks given back
    to the application; only a superuser may change pg_catalog's grants: False (and nothing
    changed) for another owner, who leaves it to the DBA (the README says what)."""
    cursor.execute("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    if not cursor.fetchone()[0]:
        return False
    locks = sql.SQL(", ").join(sql.SQL(f"pg_catalog.{f}") for f in ADVISORY_LOCKS)
    writes = sql.SQL(", ").join(sql.SQL(f"pg_catalog.{f}") for f in LARGE_OBJECT_WRITES)
    cursor.execute(sql.SQL("REVOKE EXECUTE ON FUNCTION {}, {} FROM PUBLIC").format(locks, writes))
    cursor.execute(sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(locks, app))
    return True


def _relations(cursor: CursorWrapper) -> dict[str, str]:
    """The relations of public -> their kind, partitions and inheritance children left out."""
    cursor.execute(
        "SELECT c.relname, c.relkind FROM pg_class c"
        " WHERE c.relnamespace = 'public'::regnamespace AND c.relkind IN ('r', 'p', 'v', 'm', 'f')"
        " AND NOT c.relispartition"
        " AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)"
    )
    return dict(cursor.fetchall())


def _aggregates(cursor: CursorWrapper) -> set[str]:
    """The aggregates the time-series catalog registers (views or tables, per engine)."""
    return set(_aggregate_sources(cursor))


def _aggregate_sources(cursor: CursorWrapper) -> dict[str, str]:
    """Each aggregate the time-series catalog registers -> the table it summarises."""
    cursor.execute("SELECT to_regclass('qvp_timeseries_aggregate') IS NOT NULL")
    if not cursor.fetchone()[0]:
        return {}
    cursor.execute("SELECT view_name, source_table FROM qvp_timeseries_aggregate")
    return dict(cursor.fetchall())


def app_access(cursor: CursorWrapper, present: dict[str, str]) -> dict[str, sql.Composable]:
    """Table -> the privileges trading_app gets on it. Aggregates are read only: the owner
    refreshes them (qvp_site/db/aggregates.py), on plain PostgreSQL as on TimescaleDB."""
    aggregates = _aggregates(cursor)
    allowed = (app_relations() | aggregates) & present.keys()
    limited = limits()
    access: dict[str, sql.Composable] = {}
    withheld = withheld_columns()
    for table in allowed:
        read_only = present[table] in VIEW_KINDS or table in aggregates
        writes = "" if read_only else limited.get(table, WRITES)
        if writes and table in withheld:
            access[table] = _writes_but(cursor, table, writes, withheld[table])
            continue
        access[table] = sql.SQL(f"SELECT, {writes}" if writes else "SELECT")
    return access


def withheld_columns() -> dict[str, tuple[str, ...]]:
    """Table -> the columns trading_app may read but never write (``AppConfig.
    app_role_withheld_columns``): the database sets them (market data's ``known_from``)."""
    found: dict[str, tuple[str, ...]] = {}
    for config in apps.get_app_configs():
        found.update(getattr(config, "app_role_withheld_columns", {}))
    return found


def _writes_but(
    cursor: CursorWrapper, table: str, writes: str, withheld: tuple[str, ...]
) -> sql.Composable:
    """SELECT, and ``writes`` (INSERT, UPDATE) on every column of ``table`` but ``withheld``."""
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = quote_ident(%s)::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    columns = sql.SQL(", ").join(
        sql.Identifier(row[0]) for row in cursor.fetchall() if row[0] not in withheld
    )
    privileges: list[sql.Composable] = [sql.SQL("SELECT")]
    for privilege in writes.split(", "):
        by_column = privilege in ("INSERT", "UPDATE")
        privileges.append(
            sql.SQL("{} ({})").format(sql.SQL(privilege), columns)
            if by_column
            else sql.SQL(privilege)
        )
    return sql.SQL(", ").join(privileges)


def _withheld_columns_on_the_shards(cursor: CursorWrapper, app: sql.Identifier) -> None:
    """On Citus, INSERT of its withheld columns to the application's role on the shards of the
    distributed tables that set them there (``KnownFromSetOnTheShards``, qvp_site/db/
    distribution.py), not on the tables themselves: the coordinator sends the shards the
    default's value, and still refuses the columns to the role when it names them. Granted on
    the table (Citus sends the grant to its shards, over this transaction's connections), then
    revoked on the coordinator alone. Elsewhere no table has that trigger."""
    cursor.execute(
        "SELECT tgrelid::regclass::text FROM pg_trigger WHERE tgname = %s AND tgparentid = 0",
        [SET_BY_THE_DATABASE_TRIGGER],
    )
    tables = [row[0] for row in cursor.fetchall()]
    if not tables:
        return
    withheld = withheld_columns()
    cursor.execute("SELECT current_setting('citus.enable_ddl_propagation')")
    propagation = cursor.fetchone()[0]
    for table in tables:
        columns = sql.SQL(", ").join(map(sql.Identifier, withheld[table]))
        on = (columns, sql.Identifier(table), app)
        cursor.execute(sql.SQL("GRANT INSERT ({}) ON {} TO {}").format(*on))
        cursor.execute("SELECT set_config('citus.enable_ddl_propagation', 'off', true)")
        cursor.execute(sql.SQL("REVOKE INSERT ({}) ON {} FROM {}").format(*on))
        cursor.execute("SELECT set_config('citus.enable_ddl_propagation', %s, true)", [propagation])


def readonly_access(cursor: CursorWrapper, present: dict[str, str]) -> dict[str, sql.Composable]:
    """Table -> the privileges trading_readonly gets on it: SELECT, of some columns only
    where the table holds a secret."""
    allowed = (app_relations(READONLY_APPS) | _aggregates(cursor)) & present.keys()
    return {table: _select(cursor, table) for table in allowed}


def research_access(cursor: CursorWrapper, present: dict[str, str]) -> dict[str, sql.Composable]:
    """Table -> the privileges qvp_research gets on it: SELECT on the relations of its apps but
    those left out, and on the aggregates of its tables; column by column where
    ``research_withheld`` holds some back."""
    tables = (app_relations(RESEARCH_APPS) | set(RESEARCH_ALSO)) - set(RESEARCH_LEFT_OUT)
    summaries = {view for view, source in _aggregate_sources(cursor).items() if source in tables}
    allowed = (tables | summaries) & present.keys()
    access: dict[str, sql.Composable] = {}
    for table in allowed:
        columns, withheld = _columns(cursor, table), research_withheld(cursor, table, allowed)
        kept = [column for column in columns if column not in withheld]
        access[table] = (
            sql.SQL("SELECT ({})").format(sql.SQL(", ").join(map(sql.Identifier, kept)))
            if withheld
            else sql.SQL("SELECT")
        )
    return access


def research_withheld(cursor: CursorWrapper, table: str, readable: Collection[str]) -> set[str]:
    """The columns of ``table`` qvp_research may not read: those named in
    ``RESEARCH_WITHHELD_NAMES`` or ``RESEARCH_WITHHELD_COLUMNS``, and each column of a foreign
    key to a relation not in ``readable`` (what it points at is not research's to see)."""
    cursor.execute(
        "SELECT DISTINCT a.attname FROM pg_constraint k"
        " JOIN pg_attribute a ON a.attrelid = k.conrelid AND a.attnum = ANY (k.conkey)"
        " JOIN pg_class target ON target.oid = k.confrelid"
        " WHERE k.conrelid = quote_ident(%s)::regclass AND k.contype = 'f'"
        " AND NOT (target.relnamespace = 'public'::regnamespace"
        "          AND target.relname = ANY (%s::text[]))",
        [table, sorted(readable)],
    )
    withheld = {row[0] for row in cursor.fetchall()}
    withheld |= set(RESEARCH_WITHHELD_NAMES) | set(RESEARCH_WITHHELD_COLUMNS.get(table, ()))
    return withheld & set(_columns(cursor, table))


def _columns(cursor: CursorWrapper, table: str) -> list[str]:
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = quote_ident(%s)::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    return [row[0] for row in cursor.fetchall()]


def _select(cursor: CursorWrapper, table: str) -> sql.Composable:
    secrets = SECRET_COLUMNS.get(table)
    if not secrets:
        return sql.SQL("SELECT")
    cursor.execute(
        "SELECT attname FROM pg_attribute WHERE attrelid = quote_ident(%s)::regclass"
        " AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
        [table],
    )
    columns = [row[0] for row in cursor.fetchall() if row[0] not in secrets]
    return sql.SQL("SELECT ({})").format(sql.SQL(", ").join(map(sql.Identifier, columns)))


def _revoke_default_privileges(cursor: CursorWrapper) -> None:
    """Default privileges would hand the roles every table made later, partitions included
    (``qvp_create_partition`` and ``maintain`` create them as the owner): revoke any there
    are, whoever set them (of the roles the caller may act for)."""
    cursor.execute(
        "SELECT DISTINCT d.defaclrole::regrole::text, d.defaclnamespace::regnamespace::text,"
        " d.defaclobjtype FROM pg_default_acl d, aclexplode(d.defaclacl) a"
        " WHERE a.grantee IN (SELECT oid FROM pg_roles WHERE rolname IN (%s, %s, %s))"
        " AND pg_has_role(d.defaclrole, 'USAGE')",
        [APP_ROLE, READONLY_ROLE, RESEARCH_ROLE],
    )
    for role, namespace, kind in cursor.fetchall():
        in_schema = (
            sql.SQL(" IN SCHEMA {}").format(sql.SQL(namespace))
            if namespace not in ("-", "0")
            else sql.SQL("")
        )
        cursor.execute(
            sql.SQL("ALTER DEFAULT PRIVILEGES FOR ROLE {}{} REVOKE ALL ON {} FROM {}").format(
                sql.SQL(role),
                in_schema,
                sql.SQL(_DEFAULT_ACL_OBJECTS[kind]),
                sql.SQL(", ").join(map(sql.Identifier, (APP_ROLE, READONLY_ROLE, RESEARCH_ROLE))),
            )
        )


# Functions that run as the owner on the application's behalf (revoked from PUBLIC).
OWNERS_FUNCTIONS = (
    "qvp_create_partition(regclass, text, timestamptz, timestamptz)",
    "trading_cancel_order(bigint, text)",
    "trading_add_cash(bigint, text, numeric, text, timestamptz, text)",
    "marketdata_merge_bars(regclass, bigint, bigint, timestamptz[], double precision[],"
    " double precision[], double precision[], double precision[], double precision[],"
    " double precision[], integer[])",
    "marketdata_merge_ticks(bigint, bigint, timestamptz[], bigint[], text[], double precision[],"
    " double precision[], double precision[], double precision[], double precision[],"
    " double precision[], text[])",
    "marketdata_delete(regclass, bigint, timestamptz, timestamptz)",
    "marketdata_take_turn(regclass, bigint)",
    # The security master's writers (marketdata/sql/listings/0011.sql).
    "marketdata_listing_set(bigint, date, date, text, text, text, text, text, text, text, jsonb)",
    "marketdata_listing_clear(bigint, date, date)",
    # Corporate actions' writers (marketdata/sql/actions/0012.sql).
    "marketdata_action_set(bigint, text, date, numeric, numeric, text, date, bigint, numeric,"
    " numeric)",
    "marketdata_action_withdraw(bigint, text, date)",
    # The books follow the actions (trading/sql/actions/0013.sql).
    "trading_apply_actions(date)",
    # Executions booked by statement (trading/sql/books/0017.sql).
    "trading_book_executions(bigint[], text[], bigint[], bigint[], bigint[], text[], numeric[],"
    " numeric[], numeric[], text[], text[], timestamptz[], text[], bigint[], text[])",
)


# The owner's functions row-level security's policies call (trading/sql/security/0003.sql):
# whoever queries an account-scoped table runs them, so both roles may; PUBLIC may not (any
# other role on the server could ask who is an auditor and which accounts a user's groups see).
POLICY_FUNCTIONS = (
    "trading_sees_all(boolean, name)",
    "trading_is_auditor(bigint)",
    "trading_group_accounts(boolean)",
)


# What every role may ask of the owner: the settled knowledge time a run records
# (marketdata/sql/revisions/0009.sql), which research reads market data as known at. The
# apps' other functions research calls (``marketdata_minutebar_adjusted``,
# ``marketdata_action_factors``, ``marketdata_ex_moment``, ``*_known_at``...) run with the
# caller's rights and are PUBLIC's: on research's tables they read what its grants let it.
SHARED_OWNERS_FUNCTIONS = ("marketdata_settled_at()",)


def _owners_functions(
    cursor: CursorWrapper,
    app: sql.Identifier,
    readonly: sql.Identifier,
    research: sql.Identifier,
) -> None:
    for signature, grantees in (
        [(s, [app]) for s in OWNERS_FUNCTIONS]
        + [(s, [app, readonly, research]) for s in SHARED_OWNERS_FUNCTIONS]
        + [(s, [app, readonly]) for s in MONITORING_FUNCTIONS]
        + [(s, [app, readonly]) for s in POLICY_FUNCTIONS]
    ):
        cursor.execute("SELECT to_regprocedure(%s) IS NOT NULL", [signature])
        if cursor.fetchone()[0]:
            function = sql.SQL(signature)
            cursor.execute(sql.SQL("REVOKE ALL ON FUNCTION {} FROM PUBLIC").format(function))
            cursor.execute(
                sql.SQL("GRANT EXECUTE ON FUNCTION {} TO {}").format(
                    function, sql.SQL(", ").join(grantees)
                )
            )


def _timescaledb_schemas(cursor: CursorWrapper, grantees: tuple[sql.Identifier, ...]) -> None:
    """Close TimescaleDB's chunks; keep its catalog and information views readable.

    TimescaleDB looks its own schemas up as the session's role, so each of ``grantees`` (the
    login roles) may use them (``_timescaledb_internal`` included): what closes a chunk is that
    no role but the owner has a privilege on it. The grants above reached every chunk (a grant
    on a hypertable goes to its chunks), so they are taken off again; a chunk a load makes later
    gets its hypertable's grants, which the trigger ``qvp_close_chunks``
    (qvp_site/sql/chunks/0007.sql) takes off at the end of the statement. Reading or writing
    through the hypertable checks the hypertable's grants only, and a continuous aggregate
    reads its materialization with its owner's rights.
    """
    cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'timescaledb'")
    if cursor.fetchone() is None:
        return
    for schema in (CHUNK_SCHEMA, "_timescaledb_catalog", "timescaledb_information"):
        cursor.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {} TO {}").format(
                sql.Identifier(schema), sql.SQL(", ").join(grantees)
            )
        )
    cursor.execute(
        "SELECT quote_ident(hypertable_name) FROM timescaledb_information.hypertables"
        " WHERE hypertable_schema = 'public'"
    )
    hypertables = [row[0] for row in cursor.fetchall()]
    cursor.execute("SELECT to_regprocedure('qvp_close_chunks()') IS NOT NULL")
    if cursor.fetchone()[0]:
        for hypertable in hypertables:
            cursor.execute(
                sql.SQL(
                    "CREATE OR REPLACE TRIGGER qvp_close_chunks AFTER INSERT OR UPDATE ON {}"
                    " FOR EACH STATEMENT EXECUTE FUNCTION qvp_close_chunks()"
                ).format(sql.SQL(hypertable))
            )
    close_chunks(cursor)


def close_chunks(cursor: CursorWrapper) -> list[str]:
    """Take every grant but the owner's off TimescaleDB's chunks and the relations behind
    compression and continuous aggregates, not the extension's own; returns the relations
    closed. Run as the owner by this command, with the function compression closes with
    (qvp_site/sql/compression/0009.sql)."""
    cursor.execute("SELECT relation::text FROM qvp_close_timescaledb_chunks() AS relation")
    return [row[0] for row in cursor.fetchall()]


def role_access(cursor: Cursor, role: str) -> list[str]:
    """Every column (and table, for what is granted per table) ``role`` may read or write, as
    ``relation.column PRIVILEGE`` lines, sorted: the relations of the schemas it may use but
    those of extensions, partitions and chunks (closed to every role, tested on their own)."""
    # MAINTAIN (VACUUM, ANALYZE, REFRESH, LOCK...) exists from PostgreSQL 17.
    cursor.execute("SELECT current_setting('server_version_num')::int >= 170000")
    (maintain,) = cursor.fetchone() or (False,)
    table_privileges = ["DELETE", "TRUNCATE", "TRIGGER"] + (["MAINTAIN"] if maintain else [])
    cursor.execute(
        _ROLE_ACCESS_SQL,
        {"role": role, "columns": list(COLUMN_PRIVILEGES), "tables": table_privileges},
    )
    return sorted(row[0] for row in cursor.fetchall())


COLUMN_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "REFERENCES")

_ROLE_ACCESS_SQL = """
WITH relation AS (
    SELECT c.oid,
           CASE WHEN n.nspname = 'public' THEN c.relname ELSE n.nspname || '.' || c.relname END
               AS name
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
      AND n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname NOT LIKE 'pg\\_%%'
      AND has_schema_privilege(%(role)s, n.oid, 'USAGE')
      AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
      AND NOT EXISTS (
          SELECT 1 FROM pg_depend d WHERE d.deptype = 'e' AND (
              (d.classid = 'pg_class'::regclass AND d.objid = c.oid)
              OR (d.classid = 'pg_namespace'::regclass AND d.objid = n.oid)))
)
SELECT r.name || '.' || a.attname || ' ' || p.privilege
FROM relation r
JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN unnest(%(columns)s::text[]) AS p(privilege)
WHERE has_column_privilege(%(role)s, r.oid, a.attnum, p.privilege)
UNION ALL
SELECT r.name || '.* ' || p.privilege
FROM relation r CROSS JOIN unnest(%(tables)s::text[]) AS p(privilege)
WHERE has_table_privilege(%(role)s, r.oid, p.privilege)
"""
