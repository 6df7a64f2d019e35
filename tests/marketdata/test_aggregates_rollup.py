"""A load's summaries rolled up (marketdata.aggregates): the hourly buckets summed from the bars
and the daily ones from those hours, in one statement, on plain PostgreSQL.

What must hold whatever the road: each summary equals a recompute from the bars
(``select_sql``, the bars' volumes added in time order) after loads, corrections (revisions)
and late bars; a day whose volumes a rollup would not sum exactly is summed from the bars; and a
load that commits while another load's refresh runs has its bars in both summaries. On
TimescaleDB the continuous aggregates are refreshed as before, and the same equalities hold.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection, connections, transaction
from django.db.models import Max, Min

from marketdata import aggregates as rollups
from marketdata.ingest import pipeline
from marketdata.models import Ingest, Instrument, MinuteBar, MinuteBarRevision
from qvp_site.db import aggregates, catalog, engine, partitions
from tests.fixtures.marketdata import summaries_differing

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "timestamp,open,high,low,close,volume"
START = datetime(2023, 5, 8, 0, 0)  # a Monday, apart from the other tests' rows
TABLE = "marketdata_minutebar"
HOURLY, DAILY = "marketdata_minutebar_1h", "marketdata_minutebar_1d"
# A load's own refresh rolling the days up from its hours: neither TimescaleDB nor Citus, where
# the summaries are distributed beside the bars and each is summed from them on the shards.
rolled_up_only = pytest.mark.usefixtures("rolled_up")


@pytest.fixture
def plain(transactional_db) -> None:
    if engine.is_timescaledb():
        pytest.skip("TimescaleDB refreshes its continuous aggregates itself")


@pytest.fixture
def rolled_up(plain) -> None:
    if engine.distribution(HOURLY):
        pytest.skip("on Citus each summary is summed from the bars on the shards, not rolled up")


@pytest.fixture(autouse=True)
def _partitions_and_aggregates(transactional_db):
    """The partitions of the tests' range; afterwards, the summaries over the bars a test
    loaded recomputed once they are gone (the flush empties model tables only)."""
    start = START.replace(tzinfo=UTC)
    partitions.prepare_load(TABLE, start - timedelta(days=8), start + timedelta(days=8))
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        MinuteBar.objects.all().delete()
        aggregates.refresh_table(TABLE, span["first"], span["last"])


def lines(count: int, start: datetime = START, volume=lambda i: 100 + i) -> list[str]:
    out = []
    for i in range(count):
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        o = 50.0 + (i % 7) * 0.25
        out.append(f"{ts},{o:.2f},{o + 1:.2f},{o - 1:.2f},{o + 0.5:.2f},{volume(i)!r}")
    return out


def load(path: Path, rows: list[str], symbol: str = "ROLL") -> pipeline.IngestResult:
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return pipeline.ingest_file(
        path, pipeline.IngestOptions(symbol=symbol, kind=Ingest.Kind.BARS_1M)
    )


def differ() -> dict[str, int]:
    """The summaries' rows of the tests' weeks that differ from a recompute."""
    start = START.replace(tzinfo=UTC)
    return summaries_differing(start - timedelta(days=8), start + timedelta(days=8))


def day_volumes() -> dict[datetime, float]:
    """The daily summary's volumes of the tests' weeks (other files' tests may leave others)."""
    start = START.replace(tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT bucket, volume FROM {DAILY} WHERE bucket >= %s AND bucket < %s"
            " ORDER BY bucket",
            [start - timedelta(days=8), start + timedelta(days=8)],
        )
        return dict(cursor.fetchall())


def test_the_daily_summary_equals_its_bars_after_loads_corrections_and_late_bars(tmp_path):
    # Three days, each missing its minute 600; then a corrected bar in the middle day (the
    # staging road, a revision kept), then the missing minutes one by one (late bars).
    rows = lines(3 * 1440)
    late = [rows.pop(2 * 1440 + 600), rows.pop(1440 + 600), rows.pop(600)]
    assert "stage" not in load(tmp_path / "days.csv", rows).phases
    assert differ() == {HOURLY: 0, DAILY: 0}
    at = rows[2000].split(",")[0]
    fixed = load(tmp_path / "fix.csv", [f"{at},50,60,40,55.5,12345"])
    assert (fixed.updated, MinuteBarRevision.objects.count()) == (1, 1)
    assert differ() == {HOURLY: 0, DAILY: 0}
    for i, line in enumerate(late):
        assert load(tmp_path / f"late{i}.csv", [line]).inserted == 1
        assert differ() == {HOURLY: 0, DAILY: 0}
    bars = MinuteBar.objects.filter(instrument__symbol="ROLL")
    assert bars.count() == 3 * 1440
    assert sum(day_volumes().values()) == sum(b.volume for b in bars)  # whole: exact


@pytest.mark.parametrize(
    "volumes",
    [
        "whole",
        "fractional",  # a crypto feed's: hours' sums added up differ from the bars' sum
        "edge",  # 2**53 then ones: each 1.0 added to it alone is lost, not so by the hour
        "mixed",  # a day of whole volumes beside a day of fractional ones
    ],
)
def test_a_days_volume_is_the_bars_sum_whatever_the_volumes(tmp_path, volumes):
    big = float(2**53)
    if volumes == "whole":
        volume = lambda i: float(1 + (i * 7919) % 100_000)  # noqa: E731
    elif volumes == "fractional":
        volume = lambda i: round(0.1 * (i % 7) + 0.013 * (i % 11), 3)  # noqa: E731
    elif volumes == "edge":
        volume = lambda i: big if i == 0 else (0.0 if i < 60 else 1.0)  # noqa: E731
    else:
        volume = lambda i: float(i) if i < 1440 else i / 3  # noqa: E731
    result = load(tmp_path / "sums.csv", lines(2 * 1440, volume=volume))
    assert "stage" not in result.phases
    assert differ() == {HOURLY: 0, DAILY: 0}
    if volumes == "edge":  # the bars' own sum, in time order: the ones after 2**53 are lost
        assert next(iter(day_volumes().values())) == big


def test_a_rollup_is_exact_only_for_whole_volumes_below_2_53():
    # The check that sends a day to the bars: its SQL, over hours given by hand.
    with connection.cursor() as cursor:
        agg = {a.name: a for a in catalog.aggregates(cursor, source_table=TABLE)}
        select = rollups._rollup_select(agg[DAILY], agg[HOURLY])
        cases: list[tuple[list[float | None], list[bool | None], bool]] = [
            ([1.0, 2.0], [True, True], True),
            ([1.0, 2.5], [True, False], False),
            ([2.0**52, 2.0**52], [True, True], False),  # a total of 2**53
            ([None, 3.0], [None, True], True),  # an hour of unknown volumes
            ([None, None], [None, None], True),
        ]
        for sums, wholes, exact in cases:
            cursor.execute(
                f"WITH fine AS (SELECT timestamptz '2023-05-08' + h * interval '1 hour'"
                f" AS bucket, 1 AS instrument_id, 1.0 AS open, 1.0 AS high, 1.0 AS low,"
                f" 1.0 AS close, v AS volume, 60 AS bar_count, w AS qvp_whole_volume"
                f" FROM unnest(%s::float8[], %s::bool[]) WITH ORDINALITY AS u(v, w, h))"
                f" SELECT exact FROM ({select}) c",
                [sums, wholes, datetime(2023, 5, 8, tzinfo=UTC), datetime(2023, 5, 9, tzinfo=UTC)],
            )
            assert cursor.fetchone()[0] is exact, (sums, wholes)


@rolled_up_only
def test_the_hours_and_days_are_refreshed_together_from_the_marks(tmp_path):
    # The load's refresh takes both marks in one transaction and leaves none pending.
    load(tmp_path / "a.csv", lines(1500))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT view_name, pending_from, refreshed_from, refreshed_to"
            " FROM qvp_timeseries_aggregate WHERE source_table = %s ORDER BY view_name",
            [TABLE],
        )
        found = {name: rest for name, *rest in cursor.fetchall()}
    day = START.replace(tzinfo=UTC)
    assert found[DAILY] == [None, day, day + timedelta(days=2)]
    assert found[HOURLY] == [None, day, day + timedelta(days=2)]  # the days' hours, all


@rolled_up_only
@pytest.mark.parametrize("pending", [[HOURLY], [DAILY]])
def test_a_group_with_one_mark_taken_elsewhere_refreshes_the_other(tmp_path, pending):
    # ``maintain`` takes each mark by itself: the group's refresh may find one of the two.
    load(tmp_path / "a.csv", lines(200))
    MinuteBar.objects.filter(ts__lt=(START + timedelta(minutes=100)).replace(tzinfo=UTC)).update(
        volume=7.0
    )
    start = START.replace(tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE qvp_timeseries_aggregate SET pending_from = %s, pending_to = %s"
            " WHERE view_name = ANY(%s)",
            [start, start + timedelta(minutes=99), pending],
        )
        group = rollups.rollup_group(catalog.aggregates(cursor, source_table=TABLE))
    assert group is not None
    done = rollups.refresh_group(group)
    assert {name for name, _, _ in done} == {HOURLY, *pending}
    assert differ()[pending[0]] == 0
    assert rollups.refresh_group(group) == []  # nothing left pending


def _bars(symbol: str, start: datetime, count: int) -> list[MinuteBar]:
    instrument = Instrument.objects.get(symbol=symbol)
    return [
        MinuteBar(
            instrument=instrument,
            ts=(start + timedelta(minutes=i)).replace(tzinfo=UTC),
            open=10.0,
            high=11.0,
            low=9.0,
            close=10.5,
            volume=1000.0 + i,
        )
        for i in range(count)
    ]


class _LateLoad(threading.Thread):
    """A load on a connection of its own: its bars written at once, then, when told, the
    range marked and committed (the pipeline's order), its own refresh after the commit."""

    def __init__(self, symbol: str, start: datetime, count: int):
        super().__init__(daemon=True)
        self.args_ = (symbol, start, count)
        self.written, self.go, self.committed = (threading.Event() for _ in range(3))
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            symbol, start, count = self.args_
            with transaction.atomic():
                MinuteBar.objects.bulk_create(_bars(symbol, start, count))
                self.written.set()
                assert self.go.wait(30)
                transaction.on_commit(self.committed.set)  # before the refresh it registers
                last = start + timedelta(minutes=count - 1)
                rollups.refresh_after_commit(
                    TABLE, start.replace(tzinfo=UTC), last.replace(tzinfo=UTC)
                )
        except BaseException as error:
            self.error = error
        finally:
            connections.close_all()


@rolled_up_only
@pytest.mark.parametrize("when", ["before the marks are taken", "after the marks are taken"])
def test_a_load_committing_during_another_loads_refresh_reaches_both_summaries(
    tmp_path, monkeypatch, when
):
    # Load A (hours 9-10 of a day) refreshes; load B (hour 14 of the same day, another
    # connection) has written its bars and marks and commits either just before A's refresh
    # takes the marks or just after. The first attempt's rollup took the daily mark after
    # refreshing the hours, so B's range was rolled up from hours without B's bars and B's own
    # refresh found no daily mark left: B's bars missing from the day for good.
    Instrument.objects.create(symbol="LATE", asset_class="equity")
    late = _LateLoad("LATE", START + timedelta(hours=14), 60)
    late.start()
    assert late.written.wait(30)
    take = rollups._take_marks

    def take_while_b_commits(cursor, group):
        if threading.current_thread() is late:  # B's own refresh, after its commit
            return take(cursor, group)
        if when == "before the marks are taken":
            late.go.set()
            assert late.committed.wait(30)
            return take(cursor, group)
        ranges = take(cursor, group)
        late.go.set()  # B marks now: it waits for this refresh to commit, then refreshes
        deadline = time.monotonic() + 10
        while not late.committed.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
            if _any_lock_wait():
                break
        assert not late.committed.is_set()  # held by the marks this refresh holds
        return ranges

    monkeypatch.setattr(rollups, "_take_marks", take_while_b_commits)
    load(tmp_path / "a.csv", lines(120, start=START + timedelta(hours=9)))
    late.join(30)
    assert not late.is_alive()
    assert late.error is None
    assert differ() == {HOURLY: 0, DAILY: 0}
    day = START.replace(tzinfo=UTC)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT sum(bar_count) FROM {DAILY} WHERE bucket = %s"
            f" UNION ALL SELECT sum(bar_count) FROM {HOURLY} WHERE bucket >= %s AND bucket < %s",
            [day, day, day + timedelta(days=1)],
        )
        assert [row[0] for row in cursor.fetchall()] == [180, 180]


def _any_lock_wait() -> bool:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND wait_event_type = 'Lock'"
        )
        return cursor.fetchone()[0] > 0
