"""The direct road of a bar file (marketdata.ingest.direct): one COPY straight into the table
where the instrument holds nothing of the file's range, giving way to the staging road for
everything it does not vouch for. What a user relies on must not tell the roads apart: every
bad line named and nothing written, revisions on a reload, the file's time zone, the hourly
summaries, the record of the load.

The loads commit in several transactions and refresh aggregates on commit, so every test runs
with ``transaction=True``; each makes the partitions of its range first, but one (the direct
road makes those of its range that are missing, within the limit of a load's new partitions).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.db.models import Max, Min

from marketdata.ingest import direct, pipeline
from marketdata.models import Ingest, Instrument, MinuteBar, MinuteBarRevision
from qvp_site.db import engine, partitions
from qvp_site.db.aggregates import refresh_table
from qvp_site.loading.refusals import IngestRefused
from tests.fixtures.marketdata import summaries_differing

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "timestamp,open,high,low,close,volume"
START = datetime(2023, 3, 6, 14, 0)  # a Monday, far from the other tests' rows


@pytest.fixture(autouse=True)
def _partitions_and_aggregates(transactional_db):
    """The partitions of the tests' range; afterwards, the aggregates over the bars a test
    loaded recomputed once they are gone (the flush empties model tables only)."""
    start = START.replace(tzinfo=UTC)
    partitions.prepare_load(
        "marketdata_minutebar", start - timedelta(days=8), start + timedelta(days=8)
    )
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        MinuteBar.objects.all().delete()
        refresh_table("marketdata_minutebar", span["first"], span["last"])


def rows(count: int, start: datetime = START, price: float = 50.0) -> list[str]:
    out = []
    for i in range(count):
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        o = price + (i % 5) * 0.25
        out.append(f"{ts},{o:.2f},{o + 1:.2f},{o - 1:.2f},{o + 0.5:.2f},{10 + i}")
    return out


def write(path: Path, lines: list[str], header: str = HEADER) -> Path:
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def load(path: Path, symbol: str = "FAST", **options) -> pipeline.IngestResult:
    return pipeline.ingest_file(
        path, pipeline.IngestOptions(symbol=symbol, kind=Ingest.Kind.BARS_1M, **options)
    )


def went_direct(result: pipeline.IngestResult) -> bool:
    """The staging road stages; the direct road does not, and gave way to nothing."""
    return "stage" not in result.phases and "direct, gave way" not in result.phases


def test_a_clean_file_of_new_bars_goes_straight_in_with_its_summaries(tmp_path):
    result = load(write(tmp_path / "a.csv", rows(180)))
    assert went_direct(result)
    assert (result.rows_read, result.inserted, result.updated, result.rejected) == (180, 180, 0, 0)
    instrument = Instrument.objects.get(symbol="FAST")
    assert result.instrument_created
    assert result.record.instrument == instrument
    bars = MinuteBar.objects.filter(instrument=instrument).order_by("ts")
    assert bars.count() == 180
    first = bars.first()
    assert first.ts == START.replace(tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close, first.volume) == (50, 51, 49, 50.5, 10)
    assert result.first_ts == START.replace(tzinfo=UTC)
    assert result.last_ts == (START + timedelta(minutes=179)).replace(tzinfo=UTC)
    record = Ingest.objects.get(pk=result.record.pk)
    assert (record.status, record.inserted, record.rows_read) == (Ingest.Status.LOADED, 180, 180)
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), sum(volume) FROM marketdata_minutebar_1h WHERE instrument_id = %s",
            [instrument.id],
        )
        assert cursor.fetchone() == (3, sum(10 + i for i in range(180)))


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("{ts},50,49,48,50.5,10", "high below open, close or low"),
        ("{ts},NaN,51,49,50.5,10", "a value is not a finite number"),
        ("{ts},50,51,49,,10", "no close"),
        ("{ts},50,51,49,fifty,10", "unparseable number in close"),
        ("{ts},-50,51,49,50.5,10", "price not positive"),
    ],
)
def test_a_bad_line_is_named_and_nothing_written(tmp_path, bad, reason):
    lines = rows(10)
    ts = lines[6].split(",")[0]
    lines[6] = bad.format(ts=ts)
    with pytest.raises(IngestRefused) as refused:
        load(write(tmp_path / "bad.csv", lines))
    assert "line 8" in str(refused.value)
    assert reason in str(refused.value)
    assert not MinuteBar.objects.exists()
    assert not Instrument.objects.filter(symbol="FAST").exists()
    assert Ingest.objects.get().status == Ingest.Status.REFUSED


def test_every_bad_line_is_named_not_only_the_first_copy_met(tmp_path):
    lines = rows(10)
    for at in (3, 7):
        lines[at] = lines[at].split(",")[0] + ",50,51,49,50.5,-1"
    with pytest.raises(IngestRefused) as refused:
        load(write(tmp_path / "two.csv", lines))
    message = str(refused.value)
    assert "line 5: negative volume" in message
    assert "line 9: negative volume" in message
    assert not MinuteBar.objects.exists()


def test_a_time_repeated_in_a_new_range_is_refused_naming_both_lines(tmp_path):
    lines = rows(10)
    lines[5] = lines[2]
    with pytest.raises(IngestRefused) as refused:
        load(write(tmp_path / "dup.csv", lines))
    assert "line 7: duplicate time, first at line 4" in str(refused.value)
    assert not MinuteBar.objects.exists()


def test_a_time_outside_history_between_good_lines_is_refused(tmp_path):
    lines = rows(10)
    lines[4] = "2999-01-01 00:00:00" + lines[4][len("2023-03-06 14:04:00") :]
    with pytest.raises(IngestRefused) as refused:
        load(write(tmp_path / "far.csv", lines))
    assert "line 6: time 2999-01-01" in str(refused.value)
    assert not MinuteBar.objects.exists()


def test_a_last_line_beyond_history_makes_no_partition_before_its_refusal(tmp_path):
    # Within the direct road's span, but past now + 1 year: its partitions are not made for
    # a file the staging road then refuses.
    soon = datetime.now(UTC).replace(tzinfo=None, second=0, microsecond=0) - timedelta(days=1)
    beyond = soon + timedelta(days=2 * 365)
    lines = rows(10, start=soon)
    lines[-1] = beyond.strftime("%Y-%m-%d %H:%M:%S") + lines[-1][len("2023-03-06 14:04:00") :]
    assert not covered(beyond - timedelta(days=90))
    with pytest.raises(IngestRefused) as refused:
        load(write(tmp_path / "beyond.csv", lines))
    assert f"line 11: time {beyond:%Y-%m-%d}" in str(refused.value)
    assert not covered(beyond - timedelta(days=90))


def test_an_unsorted_file_loads_every_row_by_the_staging_road(tmp_path):
    # The first and last lines do not hold the first and last times: COPY leaves the rows
    # outside them out, and the load gives way rather than store part of the file.
    lines = rows(30)
    lines = [*lines[1:15], lines[0], *lines[15:]]
    result = load(write(tmp_path / "unsorted.csv", lines))
    assert "direct, gave way" in result.phases
    assert result.inserted == len(lines) == MinuteBar.objects.count()
    assert result.first_ts == START.replace(tzinfo=UTC)


def test_a_file_in_descending_order_goes_straight_in(tmp_path):
    result = load(write(tmp_path / "desc.csv", list(reversed(rows(20)))))
    assert went_direct(result)
    assert MinuteBar.objects.count() == 20
    assert result.first_ts == START.replace(tzinfo=UTC)


def test_a_corrected_reload_stores_revisions_and_an_unchanged_one_nothing(tmp_path):
    original = rows(60)
    assert went_direct(load(write(tmp_path / "v1.csv", original)))
    corrected = list(original)
    ts = corrected[30].split(",")[0]
    corrected[30] = f"{ts},50,52,49,51.75,40"
    path = write(tmp_path / "v2.csv", corrected)
    again = load(path)
    assert not went_direct(again)
    assert (again.inserted, again.updated, again.unchanged) == (0, 1, 59)
    revision = MinuteBarRevision.objects.get()
    assert revision.close == 50.5  # the value it replaced
    assert MinuteBar.objects.get(ts=(START + timedelta(minutes=30)).replace(tzinfo=UTC)).close == (
        51.75
    )
    unchanged = load(path)
    assert (unchanged.inserted, unchanged.updated, unchanged.unchanged) == (0, 0, 60)
    assert MinuteBarRevision.objects.count() == 1


def test_a_file_reaching_into_stored_bars_is_merged_not_duplicated(tmp_path):
    assert went_direct(load(write(tmp_path / "first.csv", rows(30))))
    overlapping = load(write(tmp_path / "next.csv", rows(80)[20:]))
    assert not went_direct(overlapping)
    assert (overlapping.inserted, overlapping.updated) == (50, 0)
    assert MinuteBar.objects.count() == 80


def test_naive_times_are_read_in_the_files_zone(tmp_path):
    # 09:00 in New York on 2023-03-06 (EST) is 14:00 UTC.
    lines = rows(5, start=START - timedelta(hours=5))
    result = load(write(tmp_path / "ny.csv", lines), tz="America/New_York")
    assert went_direct(result)
    assert MinuteBar.objects.order_by("ts").first().ts == START.replace(tzinfo=UTC)
    assert result.first_ts == START.replace(tzinfo=UTC)


def test_a_known_instrument_is_used_and_not_created_again(tmp_path):
    load(write(tmp_path / "a.csv", rows(5)))
    later = load(write(tmp_path / "b.csv", rows(5, start=START + timedelta(hours=1))))
    assert went_direct(later)
    assert not later.instrument_created
    assert Instrument.objects.filter(symbol="FAST").count() == 1


def test_a_layout_the_table_cannot_take_as_it_is_takes_the_staging_road(tmp_path):
    lines = [f"{line},x" for line in rows(5)]
    result = load(write(tmp_path / "extra.csv", lines, header=f"{HEADER},note"))
    assert "stage" in result.phases
    assert "direct, gave way" not in result.phases
    assert MinuteBar.objects.count() == 5


def covered(moment: datetime) -> bool:
    """Whether a partition (a chunk) of the minute bars holds ``moment`` already."""
    at = moment.replace(tzinfo=UTC)
    with connection.cursor() as cursor:
        if engine.is_timescaledb():
            cursor.execute(
                "SELECT EXISTS (SELECT 1 FROM timescaledb_information.chunks"
                " WHERE hypertable_name = 'marketdata_minutebar'"
                " AND range_start <= %s AND %s < range_end)",
                [at, at],
            )
            return cursor.fetchone()[0]
        found = partitions.partitions(cursor, "marketdata_minutebar")
    return any(p.lower <= at < p.upper for p in found)


def test_a_range_without_partitions_goes_straight_in_making_them(tmp_path, settings):
    # Weeks no other test loads; on TimescaleDB the chunks are made by the COPY itself.
    start = datetime(2003, 3, 3, 14, 0)  # a Monday
    assert not covered(start)
    assert not covered(start + timedelta(days=14))
    lines = [*rows(60, start), *rows(60, start + timedelta(days=14))]
    result = load(write(tmp_path / "new.csv", lines))
    assert went_direct(result)
    assert MinuteBar.objects.filter(ts__gte=start.replace(tzinfo=UTC)).count() == 120
    if not engine.is_timescaledb():
        with connection.cursor() as cursor:
            made = {p.lower for p in partitions.partitions(cursor, "marketdata_minutebar")}
        assert max(made) > start.replace(tzinfo=UTC)  # the later week's, made by the load


def test_a_range_of_more_new_partitions_than_a_load_may_make_takes_the_staging_road(
    tmp_path, settings
):
    settings.QVP_MAX_NEW_PARTITIONS_PER_LOAD = 2
    start = datetime(2007, 3, 5, 14, 0)  # a Monday: four weeks' partitions for two with rows
    assert not covered(start)
    assert not covered(start + timedelta(days=21))
    lines = [*rows(30, start), *rows(30, start + timedelta(days=21))]
    result = load(write(tmp_path / "far.csv", lines))
    assert not went_direct(result)
    assert MinuteBar.objects.filter(ts__gte=start.replace(tzinfo=UTC)).count() == 60


def test_lines_are_prefixed_across_blocks():
    class Blocks:
        def blocks(self):
            yield b"", 7
            yield b"a,1\nb,2\nc", 9
            yield b",3\r", 3
            yield b"\nd,4\n", 5

    out = b"".join(block for block, _ in direct._prefixed(Blocks(), b"12,"))  # type: ignore[arg-type]
    assert out == b"12,a,1\n12,b,2\n12,c,3\r\n12,d,4\n"


def test_the_daily_summary_after_a_load_equals_one_from_the_bars(tmp_path):
    # Three days, a corrected bar in the middle one: the load's refresh of the daily buckets
    # must give the source's own.
    lines = rows(3 * 1440, start=START - timedelta(hours=14))
    load(write(tmp_path / "days.csv", lines))
    ts = lines[2000].split(",")[0]
    lines[2000] = f"{ts},10,99,1,42,7"
    load(write(tmp_path / "days2.csv", lines))
    start = START.replace(tzinfo=UTC)
    found = summaries_differing(start - timedelta(days=2), start + timedelta(days=4))
    assert found == dict.fromkeys(found, 0)
