"""Attacks on the revisions of market data (marketdata 0009): holes found in review.

Each test describes the behaviour expected; each failed while its hole was open. They act as the
roles the product has: trading_app in raw SQL (``connect_as_app``), a user of the API, and a
reader with the ORM's ``known_at``.
"""

from __future__ import annotations

import contextlib
import time
from datetime import datetime, timedelta

import psycopg
import pytest
from django.db import connection
from django.utils import timezone
from psycopg import errors

from marketdata.knowledge import settled_at
from marketdata.models import Ingest, Instrument, MinuteBar, MinuteBarRevision
from qvp_site.db import partitions, roles
from qvp_site.db.maintenance import maintain
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db(transaction=True)

MERGE = (
    "SELECT * FROM marketdata_merge_bars('marketdata_minutebar', %s, %s, %s::timestamptz[],"
    " %s::float8[], %s::float8[], %s::float8[], %s::float8[], NULL, NULL, NULL)"
)


@pytest.fixture
def load(partitioned_for) -> tuple[Instrument, Ingest]:
    """An instrument and a load of it that runs, committed (the app's connections see them)."""
    instrument = Instrument.objects.create(symbol="ATK", asset_class="equity")
    return instrument, Ingest.objects.create(file_name="x", kind="bars-1m", symbol="ATK")


def _merge(conn: psycopg.Connection, load, times: list[datetime], close: list[float]) -> None:
    instrument, ingest = load
    conn.execute(MERGE, [instrument.id, ingest.id, times, close, close, close, close])


def _closes(queryset) -> list[float]:
    return list(queryset.order_by("ts").values_list("close", flat=True))


# --- trading_app in raw SQL ---------------------------------------------------------------


@pytest.mark.parametrize("forged", ["2000-01-01T00:00:00Z", "2100-01-01T00:00:00Z"])
def test_the_app_role_cannot_choose_when_a_row_was_known(load, connect_as_app, forged):
    """known_from is when the system learnt the row: the load's time, never the writer's say.
    Before the fix trading_app's INSERT may set it: a row backdated to 2000 shows in every known_at
    read since (a backtest repeated with its recorded known_at changes); one dated 2100 is
    in no known_at read and can never be revised nor deleted (the revision would be known
    until before it was known: the check of the revisions refuses every merge and deletion
    that touches it)."""
    instrument, _ = load
    conn = connect_as_app()
    try:
        conn.execute(
            "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close,"
            " known_from) VALUES (%s, %s, 1, 1, 1, 1, %s)",
            [instrument.id, START, forged],
        )
    except errors.InsufficientPrivilege:
        return  # refused: the fix by column privileges
    # Or taken, with the load's own time (the fix by a trigger that sets it).
    stored = MinuteBar.objects.get(instrument=instrument, ts=START).known_from
    assert abs(stored - timezone.now()) < timedelta(minutes=1), stored
    _merge(conn, load, [START], [2.0])  # and it can be revised


def test_a_merge_that_names_a_time_twice_keeps_one_revision(load, connect_as_app):
    """A merge called with one key twice (trading_app may call it with any arrays) keeps the
    stored row twice as a revision: known_at then reads that bar twice. The load pipeline
    refuses such files first; the function must refuse or fold them too."""
    conn = connect_as_app()
    _merge(conn, load, [START, START + timedelta(minutes=1)], [1.0, 1.0])
    time.sleep(0.01)
    with contextlib.suppress(errors.Error):  # refused: fine
        _merge(conn, load, [START, START], [2.0, 3.0])
    assert MinuteBarRevision.objects.filter(ts=START).count() <= 1
    for revision in MinuteBarRevision.objects.all():
        middle = revision.known_from + (revision.known_until - revision.known_from) / 2
        times = list(MinuteBar.objects.known_at(middle).values_list("ts", flat=True))
        assert len(times) == len(set(times)), times


def test_a_merge_is_refused_under_the_load_of_another_instrument_or_table(load, connect_as_app):
    """The function checks only that the load named runs: trading_app may merge ATK's minute
    bars under a running load of ZZZ's daily bars, and the revisions then name that load as
    the one that brought the change (and its user). A load names its symbol and kind."""
    conn = connect_as_app()
    _merge(conn, load, [START], [1.0])
    instrument, _ = load
    elsewhere = Ingest.objects.create(file_name="y", kind="bars-1d", symbol="ZZZ")
    with pytest.raises(errors.Error):
        _merge(conn, (instrument, elsewhere), [START], [2.0])


def test_a_load_that_waited_for_another_still_revises(load, connect_as_app):
    """Load B starts its transaction (staging, checks), load A of the same instrument takes
    the turn first and revises a bar; B then revises it too. Before the fix B failed on the check of
    the revisions: it would keep A's row known from A's start until B's earlier start."""
    a, b = connect_as_app(), connect_as_app()
    _merge(a, load, [START], [1.0])
    time.sleep(0.01)
    with b.transaction():
        b.execute("SELECT now()")  # B's transaction, hence its known_from, starts here
        time.sleep(0.01)
        _merge(a, load, [START], [2.0])  # A, started later, commits first
        _merge(b, load, [START], [3.0])
    revisions = MinuteBarRevision.objects.order_by("known_until")
    assert [r.close for r in revisions] == [1.0, 2.0]
    assert MinuteBar.objects.get(ts=START).close == 3.0


def test_a_read_repeated_as_known_then_reads_what_was_read(load, connect_as_app):
    """A run reads the present at t while a load that started before t has not committed;
    repeated with known_at=t it must read the same. Before the fix the load's rows were known
    from its transaction's start, before t, so the repeat read values nobody could see at t;
    a run now records the settled moment (marketdata_settled_at) and reads as known at it."""
    conn = connect_as_app()
    _merge(conn, load, [START], [1.0])
    time.sleep(0.01)
    with conn.transaction():
        conn.execute("SELECT now()")
        time.sleep(0.01)
        _merge(conn, load, [START], [2.0])
        time.sleep(0.01)
        read_at = settled_at()  # what a run records, the load still open
        seen = _closes(MinuteBar.objects.known_at(read_at))
        assert _closes(MinuteBar.objects.all()) == seen == [1.0]
    assert _closes(MinuteBar.objects.known_at(read_at)) == seen
    assert read_at < timezone.now()


def test_a_reader_cannot_hold_up_every_load_of_an_instrument(load, connect_as_app, settings):
    """trading_readonly may read, not stop loads. The loads' turn is an advisory lock whose key
    anyone can compute (hashtextextended of the table and the instrument) and any role can
    hold with pg_advisory_lock for as long as its session lives."""
    instrument, _ = load
    params = connection.settings_dict
    reader = psycopg.connect(
        dbname=params["NAME"], host=params.get("HOST") or None, port=params.get("PORT") or None,
        user=params["USER"], password=params["PASSWORD"], autocommit=True,
    )  # fmt: skip
    try:
        reader.execute(f"SET ROLE {roles.READONLY_ROLE}")
        # create_db_roles takes the advisory locks from PUBLIC where it can: refused; and
        # were it not, the loads do not wait on it (below).
        with contextlib.suppress(psycopg.errors.InsufficientPrivilege):
            reader.execute(
                "SELECT pg_advisory_lock(hashtextextended('marketdata_minutebar:' || %s, 0))",
                [instrument.id],
            )
        conn = connect_as_app()
        conn.execute("SET lock_timeout = '300ms'")
        _merge(conn, load, [START], [1.0])  # LockNotAvailable before the fix
    finally:
        reader.close()


# --- the ORM's known_at ---------------------------------------------------------------------


@pytest.fixture
def revised(load, connect_as_app) -> tuple[datetime, Instrument]:
    """A bar at 1.0, then revised to 2.0; the moment between."""
    conn = connect_as_app()
    _merge(conn, load, [START, START + timedelta(minutes=1)], [1.0, 1.0])
    time.sleep(0.01)
    between = timezone.now()
    time.sleep(0.01)
    _merge(conn, load, [START], [2.0])
    return between, load[0]


def test_known_at_reads_in_a_subquery(revised):
    """A known_at queryset used as a subquery (id__in=, Exists, Subquery): before the fix the
    function was aliased "U0" (quoted) and referred to as U0 (unquoted): missing FROM-clause
    entry."""
    between, instrument = revised
    bars = MinuteBar.objects.known_at(between).filter(close=1.0)
    found = Instrument.objects.filter(id__in=bars.values("instrument"))
    assert list(found) == [instrument]
    inner = MinuteBar.objects.filter(pk__in=MinuteBar.objects.known_at(between).values("pk"))
    assert inner.count() == 2


def test_combining_querysets_known_at_different_times_is_not_silent(revised):
    """``a | b`` where one side reads as known at t: before the fix the right side's knowledge
    time was dropped for the left's (Query.combine keeps the left base table), no error. The bar
    at START was 1.0 as known between, and is 2.0 now; the next bar is 1.0 throughout."""
    between, _ = revised
    later = START + timedelta(minutes=1)
    present, known = MinuteBar.objects.all(), MinuteBar.objects.known_at(between)
    for combined, expected in (
        (lambda: present.filter(ts=later) | known.filter(ts=START), [1.0, 1.0]),
        (lambda: known.filter(ts=later) | present.filter(ts=START), [1.0, 2.0]),
    ):
        try:
            closes = sorted(combined().values_list("close", flat=True))
        except (TypeError, ValueError):
            continue  # refused: fine
        assert closes == expected


def test_retention_keeps_the_revisions_of_the_rows_it_keeps(tmp_path, settings, connect_as_app):
    """Retention drops whole partitions (chunks) whose rows are all older than the cutoff, but
    the revisions of every row older than the cutoff: the rows of the partition that straddles
    it stay, their revisions go, and such a bar vanishes from known_at before its correction."""
    instrument = Instrument.objects.create(symbol="RET", asset_class="equity")
    ingest = Ingest.objects.create(file_name="x", kind="bars-1m", symbol="RET")
    now = timezone.now().replace(second=0, microsecond=0)
    kept = now - timedelta(days=30, minutes=5)  # before the cutoff, in the partition across it
    partitions.prepare_load("marketdata_minutebar", kept, now)
    conn = connect_as_app()
    _merge(conn, (instrument, ingest), [kept], [1.0])
    time.sleep(0.01)
    between = timezone.now()
    time.sleep(0.01)
    _merge(conn, (instrument, ingest), [kept], [2.0])
    settings.QVP_RETENTION = {"marketdata_minutebar": "30 days"}
    maintain(report=lambda line: None)
    bars = MinuteBar.objects.filter(instrument=instrument)
    if bars.exists():  # the bar stays: so does what it was
        assert _closes(bars.known_at(between)) == [1.0]


# --- a user of the API ------------------------------------------------------------------------


def test_a_batch_without_volume_leaves_volume_alone(admin_client, partitioned_for):
    """As a file without a volume column does. Before the fix the batch's volume column is always
    there, NULL where an item has none, so a correction of one close posted without volume
    revises the stored volume to NULL (kept only as a revision)."""
    Instrument.objects.create(symbol="VOL", asset_class="equity")
    bar = {"ts": "2024-05-13T14:00:00Z", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5}

    def post(item: dict) -> None:
        response = admin_client.post(
            "/api/v1/bars/", {"symbol": "VOL", "bars": [item]}, content_type="application/json"
        )
        assert response.status_code == 201, response.json()

    post({**bar, "volume": 100})
    post({**bar, "close": 10.6})
    assert MinuteBar.objects.get(instrument__symbol="VOL").volume == 100
