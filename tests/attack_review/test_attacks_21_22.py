"""Attack review of 27fe9f8 (snapshot history), 32ebde2 (a load's record kept) and c26ce4c
(security master): each test states a rule the commits promise and fails where a role, a door
or a race breaks it. A failing test here is a hole found; a passing one a defence that held."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest
from django.db import connection

from marketdata.models import Ingest, Instrument, Listing
from marketdata.security_master import Terms, resolve, set_terms
from qvp_site.db import engine, partitions, roles
from tests.fixtures.trading import T0
from tests.knowledge import between_commits
from tests.listings import current_versions, listed
from tests.trading.test_snapshots import MINUTE, deposit
from trading.models import PortfolioSnapshot
from trading.snapshots import take_snapshots

pytestmark = pytest.mark.django_db(transaction=True)

AT = T0 + 10 * MINUTE


@pytest.fixture(autouse=True)
def _partitions(db):
    for table in ("marketdata_minutebar", "trading_portfoliosnapshot"):
        partitions.prepare_load(table, T0 - timedelta(days=1), T0 + timedelta(days=1))


def _app(connect_as_app) -> psycopg.Connection:
    """trading_app in raw SQL, as a system job (row-level security lets it write every
    account), autocommitting."""
    app = connect_as_app()
    app.autocommit = True
    app.execute("SELECT set_config('qvp.actor', 'system:attacker', false)")
    return app


def today_utc() -> date:
    return datetime.now(UTC).date()


@pytest.fixture
def readonly(transactional_db, app_role_password):
    """A connection as the owner that took the role trading_readonly (SET ROLE: no password
    of the server's roles is touched)."""
    params = connection.settings_dict
    conn = psycopg.connect(
        dbname=params["NAME"],
        host=params.get("HOST") or None,
        port=params.get("PORT") or None,
        user=params.get("USER") or None,
        password=params.get("PASSWORD") or None,
        autocommit=True,
    )
    conn.execute("SET ROLE trading_readonly")
    yield conn
    conn.close()


def _shadow(app: psycopg.Connection, table: str) -> None:
    """A temporary table of ``table``'s name and columns in the caller's session, open to
    everyone (so the owner's functions may write it whoever owns them)."""
    app.execute(f"CREATE TEMP TABLE {table} AS SELECT * FROM public.{table} WITH NO DATA")
    app.execute(f"GRANT ALL ON pg_temp.{table} TO PUBLIC")


@pytest.fixture
def snapshot(account) -> PortfolioSnapshot:
    deposit(account, "1000", T0 - timedelta(hours=1))
    assert take_snapshots(AT, [account.id]) == 1
    return PortfolioSnapshot.objects.get(account=account, ts=AT)


# --- 27fe9f8: portfolio snapshots keep their history -----------------------------------------


def test_snapshot_revision_trigger_cannot_be_diverted_into_a_temp_table(
    account, snapshot, connect_as_app
):
    """trading_snapshot_keep_revision is SECURITY DEFINER with ``search_path = pg_catalog,
    public``: pg_temp, not named, is searched FIRST for relations. trading_app (TEMPORARY on
    the database) makes a temporary trading_portfoliosnapshotrevision; the owner's trigger then
    writes the old numbers there, and the snapshot is rewritten with no revision kept."""
    between = between_commits()
    app = _app(connect_as_app)
    _shadow(app, "trading_portfoliosnapshotrevision")
    app.execute(
        "UPDATE trading_portfoliosnapshot SET cash = 5000, nav = 5000 WHERE id = %s",
        [snapshot.pk],
    )
    diverted = app.execute("SELECT count(*) FROM pg_temp.trading_portfoliosnapshotrevision")
    # The old numbers must be kept in the real table, and read as stored before the change.
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM public.trading_portfoliosnapshotrevision WHERE row_id = %s",
            [snapshot.pk],
        )
        assert (cursor.fetchone()[0], diverted.fetchone()[0]) == (1, 0)
        cursor.execute(
            "SELECT nav FROM trading_portfoliosnapshot_known_at(%s) WHERE id = %s",
            [between, snapshot.pk],
        )
        assert cursor.fetchall() == [(Decimal(1000),)]


ESCALATE = """
CREATE FUNCTION pg_temp.escalate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Runs as whoever inserts: the owner, inside its SECURITY DEFINER trigger.
    NEW.db_role := current_user;
    INSERT INTO public.trading_portfoliosnapshotrevision (row_id, account_id, ts, currency,
        cash, market_value, nav, gross_exposure, net_exposure, unpriced, code_version,
        known_from, known_until, change, actor, db_role)
    VALUES (NEW.row_id, NEW.account_id, NEW.ts, NEW.currency, 0, 0, 1, 0, 0, '[]', 'forged',
        '2000-01-01', '2000-01-02', 'revised', 'forged', 'forged');
    RETURN NEW;
END
$$
"""


def test_the_app_role_never_runs_code_as_the_owner_through_the_snapshot_trigger(
    account, snapshot, connect_as_app
):
    """Worse than a lost revision: the temporary table may carry a trigger of trading_app's
    own (a function in pg_temp), which then runs as the owner, inside the owner's SECURITY
    DEFINER trigger. Here it writes a forged revision into the real table (trading_app has
    no INSERT on it); it could as well drop the triggers, grant itself DELETE, or read what
    the owner reads."""
    app = _app(connect_as_app)
    _shadow(app, "trading_portfoliosnapshotrevision")
    app.execute(ESCALATE)
    app.execute(
        "CREATE TRIGGER escalate BEFORE INSERT ON pg_temp.trading_portfoliosnapshotrevision"
        " FOR EACH ROW EXECUTE FUNCTION pg_temp.escalate()"
    )
    app.execute(
        "UPDATE trading_portfoliosnapshot SET cash = 1, nav = 1 WHERE id = %s", [snapshot.pk]
    )
    ran_as = app.execute("SELECT db_role FROM pg_temp.trading_portfoliosnapshotrevision")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM trading_portfoliosnapshotrevision WHERE code_version = 'forged'"
        )
        forged = cursor.fetchone()[0]
    assert (forged, ran_as.fetchall()) == (0, [])


# --- c26ce4c: the security master ------------------------------------------------------------

RENAMED = date(2022, 6, 9)


def test_listing_triggers_cannot_be_diverted_into_a_temp_table(db, connect_as_app):
    """The security master's SECURITY DEFINER functions and triggers (marketdata_listing_set,
    _clear, _sync, marketdata_instrument_listed, _relisted) run with ``search_path =
    pg_catalog, public``: pg_temp is searched first for relations. trading_app renames an
    instrument in place (it may UPDATE marketdata_instrument) after making a temporary
    marketdata_listing: the owner's trigger reads and writes the history there, and the
    instrument's row takes a new symbol while the real history never hears of it."""
    fb = listed("FB", date(2012, 5, 18), Terms("FB", "USD", mic="XNAS"))
    app = _app(connect_as_app)
    _shadow(app, "marketdata_listing")
    app.execute("UPDATE marketdata_instrument SET symbol = 'HIJK' WHERE id = %s", [fb.pk])
    fb.refresh_from_db()
    # Whatever the row says today, the history must say it too, from today.
    assert fb.symbol == "HIJK"
    assert current_versions(fb)[-1][2:] == ("HIJK", "listed")


def test_a_new_instrument_inserted_by_the_app_starts_a_real_history(db, connect_as_app):
    """The same diversion for an instrument inserted in raw SQL: its first version goes into
    the caller's temporary table, so the instrument has no history at all and resolves to
    nothing (or, worse, a later load of the security master takes it for a new one)."""
    app = _app(connect_as_app)
    _shadow(app, "marketdata_listing")
    (new_id,) = app.execute(
        "INSERT INTO marketdata_instrument (symbol, asset_class, exchange, currency,"
        " multiplier, active) VALUES ('GHOST', 'equity', '', 'USD', 1, true) RETURNING id"
    ).fetchone()
    assert Listing.objects.filter(instrument_id=new_id).count() == 1


def test_the_app_role_cannot_put_the_history_out_of_step_with_the_row(db, connect_as_app):
    """The instrument's row holds today's version's terms, "whichever is written". But the
    grant of marketdata_listing_set to trading_app is of its 12-argument form, p_sync (the
    trigger's own switch) included: the app states today's terms with p_sync false, and the
    history says ZZZ today while the row still says FB (the API and the admin read the row;
    resolution reads the history)."""
    fb = listed("FB", date(2012, 5, 18), Terms("FB", "USD", mic="XNAS"))
    app = _app(connect_as_app)
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # the form with p_sync
        app.execute(
            "SELECT marketdata_listing_put(%s, current_date, NULL, 'ZZZ', '', 'XNAS', 'USD',"
            " 'listed', '', '', '{}', false)",
            [fb.pk],
        )
    app.execute(
        "SELECT marketdata_listing_set(%s, current_date, NULL, 'ZZZ', '', 'XNAS', 'USD',"
        " 'listed', '', '', '{}')",
        [fb.pk],
    )
    fb.refresh_from_db()
    assert current_versions(fb)[-1][2] == fb.symbol == "ZZZ"


def test_renamed_in_place_the_history_changes_from_the_projects_today(db, connect_as_app):
    """From today is current_date, read in the session's TimeZone: the security master's
    SECURITY DEFINER functions do not pin it (the project's others SET TimeZone = 'UTC'). A
    writer whose session runs twelve hours off UTC dates the rename a day off the project's
    today (UTC), and marketdata_listing_today picks today's version by the same clock."""
    fb = listed("FB", date(2012, 5, 18), Terms("FB", "USD", mic="XNAS"))
    app = _app(connect_as_app)
    hour = app.execute("SELECT extract(hour FROM now() AT TIME ZONE 'UTC')").fetchone()[0]
    zone = "Etc/GMT+12" if hour < 12 else "Etc/GMT-14"
    app.execute("SELECT set_config('TimeZone', %s, false)", [zone])
    app.execute("UPDATE marketdata_instrument SET symbol = 'FBX' WHERE id = %s", [fb.pk])
    assert current_versions(fb)[-1][0] == today_utc()


def test_the_readonly_role_writes_no_history(db, readonly):
    """Held: trading_readonly may neither state nor clear terms, nor write a version, an
    instrument, a snapshot or a load's record."""
    fb = listed("FB", date(2012, 5, 18), Terms("FB", "USD"))
    for statement, params in (
        ("SELECT marketdata_listing_set(%s, NULL, NULL, 'X', '', '', 'USD', 'listed')", [fb.pk]),
        ("SELECT marketdata_listing_clear(%s, NULL, NULL)", [fb.pk]),
        ("UPDATE marketdata_instrument SET symbol = 'X' WHERE id = %s", [fb.pk]),
        ("UPDATE marketdata_listing SET known_until = now() WHERE instrument_id = %s", [fb.pk]),
        ("UPDATE trading_portfoliosnapshot SET cash = 0", []),
        ("UPDATE marketdata_ingest SET user_id = NULL", []),
    ):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            readonly.execute(statement, params)


def test_a_ticker_of_a_delisted_company_can_be_given_to_a_new_instrument(admin_client):
    """The symbol is unique among listed instruments only, so that "a ticker a delisted
    instrument bore last may be another's now" (marketdata/models.py). But an instrument
    inserted gets one version *since always* (marketdata_instrument_listed), which overlaps
    the old bearer's listed years: listing_one_bearer_a_day refuses the insert, so the admin
    (and the ORM, the API, raw SQL) cannot create the new company at all: a 500."""
    old = listed("TWTR", date(2013, 11, 7), Terms("TWTR", "USD", name="Twitter"))
    set_terms(old.id, date(2022, 11, 8), None, Terms("TWTR", "USD", "delisted", name="Twitter"))
    old.refresh_from_db()
    assert old.active is False
    admin_client.raise_request_exception = False
    response = admin_client.post(
        "/admin/marketdata/instrument/add/",
        {
            "symbol": "TWTR",
            "asset_class": "equity",
            "exchange": "XNYS",
            "currency": "USD",
            "tick_size": "0.01",
            "multiplier": "1",
            "active": "on",
        },
    )
    assert response.status_code != 500
    assert Instrument.objects.filter(symbol="TWTR", active=True).exists()
    # And the new bearer does not take over the old one's years.
    assert resolve("TWTR", date(2015, 1, 2)) == old


# --- 32ebde2: a load's record is kept ---------------------------------------------------------

INGEST = "marketdata_ingest"


@pytest.fixture
def alice(django_user_model):
    return django_user_model.objects.create_user("alice", password="pw-alice-1234")


@pytest.fixture
def finished(alice) -> Ingest:
    ingest = Ingest.objects.create(
        file_name="done.csv", path="/data/done.csv", kind="bars-1m", symbol="KEPT", user=alice
    )
    Ingest.objects.filter(pk=ingest.pk).update(status="loaded", rows_read=5, inserted=5)
    return Ingest.objects.get(pk=ingest.pk)


def test_a_finished_loads_user_is_not_erased_while_the_user_exists(connect_as_app, finished):
    """marketdata_ingest_kept lets user_id become NULL on any load, finished or not, "Django's
    SET_NULL when the user is deleted" -- but never checks that the user is gone: trading_app
    erases who started any finished load, with the user alive and well."""
    app = _app(connect_as_app)
    with pytest.raises(psycopg.errors.CheckViolation):
        app.execute(f"UPDATE {INGEST} SET user_id = NULL WHERE id = %s", [finished.pk])
    assert Ingest.objects.get(pk=finished.pk).user_id == finished.user_id


def test_a_load_record_cannot_be_inserted_already_finished_and_backdated(connect_as_app, alice):
    """What identifies a load is "set when it starts": but trading_app INSERTs a record that
    starts finished (status loaded, counts, digest), started years ago, in alice's name and
    OS account: the admin's "was this file loaded, and when?" answers with a forgery that no
    update rule ever sees. started_at is the writer's (auto_now_add is Django's, not the
    database's), unlike the market data's known_from, which the app role may not write."""
    app = _app(connect_as_app)
    with pytest.raises(psycopg.Error):
        app.execute(
            f"INSERT INTO {INGEST} (file_name, path, sha256, kind, symbol, instrument_created,"
            " rows_read, inserted, updated, unchanged, rejected, rejects_file, status, user_id,"
            " os_user, started_at, finished_at, error_summary) VALUES ('forged.csv',"
            " '/data/forged.csv', repeat('a', 64), 'bars-1m', 'KEPT', false, 9, 9, 0, 0, 0, '',"
            " 'loaded', %s, 'alice', '2020-01-01T00:00Z', '2020-01-01T00:01Z', '')",
            [alice.pk],
        )
    assert not Ingest.objects.filter(file_name="forged.csv").exists()


def test_a_running_loads_id_never_changes(connect_as_app, alice):
    """The id is what the revisions name a load by, yet it is not in the trigger's identity:
    trading_app renumbers a running load, and its pipeline's own last save no longer finds it
    (Django then INSERTs a second record under the old id)."""
    running = Ingest.objects.create(
        file_name="run.csv", path="/data/run.csv", kind="bars-1m", symbol="KEPT", user=alice
    )
    app = _app(connect_as_app)
    with pytest.raises(psycopg.errors.CheckViolation):
        app.execute(f"UPDATE {INGEST} SET id = id + 1000000 WHERE id = %s", [running.pk])
    assert Ingest.objects.filter(pk=running.pk).exists()


def _migrate(*targets: tuple[str, str]) -> None:
    from django.db.migrations.executor import MigrationExecutor

    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(list(targets))
    # The tables made again have none of the roles' grants (create_db_roles gives them, as a
    # deploy runs it after migrate): given back, or a later test as trading_app is refused.
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user, to_regrole(%s) IS NOT NULL", [roles.APP_ROLE])
        owner, roles_made = cursor.fetchone()
        if roles_made:
            roles.grant(cursor, connection.settings_dict["NAME"], owner)


def test_snapshots_stored_before_trading_0012_read_as_known_when_they_were(account):
    """trading 0012 gives every snapshot already stored known_from = the migration's time
    (db_default Now()). A risk run recorded before the upgrade (known_at K, the settled moment
    of its day) read those snapshots; repeated after it (compute_risk --repeat, which now reads
    trading_portfoliosnapshot_known_at(K)) it finds none, so its NAV and performance metrics
    differ: every run of before the upgrade stops repeating. Backfilling '-infinity' (or
    the snapshot's known_at, when recorded) would keep them."""
    from django.db.migrations.executor import MigrationExecutor

    if engine.is_citus():
        pytest.skip("on Citus going back to trading 0011 unapplies the distribution, refused")
    # Every app's leaf: going back takes what depends on trading 0012 too (qvp_site 0011).
    leaves = MigrationExecutor(connection).loader.graph.leaf_nodes()
    try:
        _migrate(("risk", "0004_risk_runs"), ("trading", "0011_booked_now"))
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO trading_portfoliosnapshot (account_id, ts, currency, cash,"
                " market_value, nav, gross_exposure, net_exposure, unpriced, code_version)"
                " VALUES (%s, %s, 'USD', 1000, 0, 1000, 0, 0, '[]', '')",
                [account.pk, AT],
            )
        run_known_at = between_commits()  # a risk run of before the upgrade read it then
        _migrate(*leaves)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT nav FROM trading_portfoliosnapshot_known_at(%s) WHERE account_id = %s",
                [run_known_at, account.pk],
            )
            assert cursor.fetchall() == [(Decimal(1000),)]
    finally:
        _migrate(*leaves)


def test_a_risk_run_at_a_knowledge_time_not_yet_settled_is_refused_or_repeats(
    account, connect_as_app
):
    """compute_risk (and --known-at) refuses a knowledge time in the future only. One between
    the settled moment and now reads a snapshot as it stands, while a restatement stamped
    before that time has not committed yet; once it commits, the run read as known at the
    very same time gives other performance metrics: a run that was accepted cannot be
    repeated."""
    from risk.runs import compute_risk, repeat_run

    for ts, nav, pnl in ((AT - MINUTE, "1000", None), (AT, "1100", "100")):
        PortfolioSnapshot.objects.create(
            account=account, ts=ts, currency="USD", cash=Decimal(nav), market_value=0,
            nav=Decimal(nav), gross_exposure=0, net_exposure=0,
            daily_pnl=None if pnl is None else Decimal(pnl),
        )  # fmt: skip
    latest = PortfolioSnapshot.objects.get(account=account, ts=AT)
    writer = connect_as_app()
    writer.autocommit = False
    writer.execute("SELECT set_config('qvp.actor', 'system:snapshot_portfolios', false)")
    writer.execute(  # a restatement in flight: stamped now, committed later
        "UPDATE trading_portfoliosnapshot SET cash = 1200, nav = 1200, daily_pnl = 200"
        " WHERE id = %s",
        [latest.pk],
    )
    known_at = between_commits()  # after the stamp, before now: not in the future
    try:
        first = compute_risk(AT + MINUTE, [account.id], known_at=known_at)
    except Exception:  # refusing a knowledge time not yet settled: the other right answer
        writer.rollback()
        return
    writer.commit()
    repeat = repeat_run(first.run_id)
    assert repeat.identical, repeat.differences


def test_a_snapshot_moved_to_another_account_or_time_is_refused(account, snapshot, connect_as_app):
    """trading_portfoliosnapshot is partitioned by time. An UPDATE of ts that moved the row to
    another partition is a DELETE and an INSERT to PostgreSQL, which fired the BEFORE UPDATE
    row trigger *and* the BEFORE DELETE one on the old partition: the same old row was kept
    twice. A snapshot's account and time never change (it would be another snapshot), so the
    move is refused, whatever the engine, and nothing is kept twice."""
    later = AT + timedelta(days=200)
    partitions.prepare_load("trading_portfoliosnapshot", later, later)
    app = _app(connect_as_app)
    for change, value in (("ts", later), ("ts", AT + MINUTE)):
        with pytest.raises(psycopg.errors.CheckViolation, match="never change"):
            app.execute(
                f"UPDATE trading_portfoliosnapshot SET {change} = %s WHERE id = %s",
                [value, snapshot.pk],
            )
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM trading_portfoliosnapshotrevision WHERE row_id = %s",
            [snapshot.pk],
        )
        assert cursor.fetchone() == (0,)


MERGE = (
    "SELECT * FROM marketdata_merge_bars('marketdata_minutebar', %s, %s, %s::timestamptz[],"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[], NULL, NULL, NULL)"
)


def test_a_reused_tickers_bars_merge_only_into_the_instrument_that_bore_it_then(db, connect_as_app):
    """marketdata_merge_checks (revisions 0011) accepts a load into an instrument when the
    load's symbol is one the instrument bore *at some time*, whatever the rows' dates: a load
    of the new TWTR's 2024 bars merges into the old Twitter, delisted in 2022 (the security
    master says who bore TWTR on each day; the database's last check ignores it)."""
    old = listed("TWTR", date(2013, 11, 7), Terms("TWTR", "USD", name="Twitter"))
    set_terms(old.id, date(2022, 11, 8), None, Terms("TWTR", "USD", "delisted", name="Twitter"))
    new = listed("TWTR", date(2024, 1, 2), Terms("TWTR", "USD", name="New Co"))
    assert resolve("TWTR", date(2024, 3, 1)) == new
    when = T0 - timedelta(days=60)  # 2024-03-14: the new company's year
    partitions.prepare_load("marketdata_minutebar", when, when)
    ingest = Ingest.objects.create(file_name="twtr.csv", kind="bars-1m", symbol="TWTR")
    app = _app(connect_as_app)
    with pytest.raises(psycopg.errors.InvalidParameterValue):
        app.execute(MERGE, [old.id, ingest.id, [when], [1.0], [1.0], [1.0], [1.0]])
