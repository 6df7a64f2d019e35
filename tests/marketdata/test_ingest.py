"""ingest_bars and ingest_ticks: the shared real files, bad files, re-ingest, the record.

The loads commit in several transactions and refresh aggregates on commit, so every test runs
with ``transaction=True`` (tables emptied afterwards).
"""

from __future__ import annotations

import csv
import hashlib
from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import Max, Min

from marketdata.ingest import pipeline
from marketdata.models import DailyBar, Ingest, Instrument, MinuteBar, Tick
from qvp_site.db.aggregates import refresh_table

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"
YAHOO = DATA / "yahoo-orcl-daily-1995-2014.csv"
BT_MINUTE = DATA / "backtrader-minute-2006-01-02.csv"
BT_TICKS = DATA / "backtrader-ticksample.csv"
FXCM = DATA / "fxcm-gbpusd-m1-bid-2012.csv"
TARDIS = DATA / "tardis-trades.csv"

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture(autouse=True)
def _aggregates_emptied_afterwards(transactional_db):
    """The flush after a transactional test empties model tables only: recompute the
    aggregates over the minute bars a test loaded once they are gone."""
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        MinuteBar.objects.all().delete()
        refresh_table("marketdata_minutebar", span["first"], span["last"])


def ingest(command: str, path: Path, symbol: str, *args: str) -> str:
    out = StringIO()
    call_command(command, str(path), "--symbol", symbol, *args, stdout=out)
    return out.getvalue()


def bars_1m(path: Path, symbol: str = "TEST", *args: str) -> str:
    return ingest("ingest_bars", path, symbol, "--timeframe", "1m", *args)


def write_csv(path: Path, header: str, rows: list[str], newline: str = "\n") -> Path:
    path.write_text(newline.join([header, *rows]) + newline)
    return path


def minute_rows(count: int, start=datetime(2024, 5, 13, 13, 30), price: float = 100.0):
    """``count`` good one-minute bars as CSV lines, timestamp,open,high,low,close,volume."""
    rows = []
    for i in range(count):
        ts = (start + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        o = price + (i % 7) * 0.1
        rows.append(f"{ts},{o:.2f},{o + 0.5:.2f},{o - 0.5:.2f},{o + 0.2:.2f},{100 + i}")
    return rows


BAR_HEADER = "timestamp,open,high,low,close,volume"


# --- the shared real files ---------------------------------------------------------------


def test_yahoo_daily_file_loads_with_close_not_adjusted_close():
    out = ingest("ingest_bars", YAHOO, "ORCL", "--timeframe", "1d")
    assert "Created instrument ORCL (equity)" in out
    assert "5,036 rows read, 5,036 inserted, 0 revised, 0 unchanged, 0 rejected" in out
    bars = DailyBar.objects.for_symbol("ORCL")
    assert bars.count() == 5036
    first = bars.order_by("ts").first()
    assert first.ts == datetime(1995, 1, 3, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        2.179012,
        2.191358,
        2.117284,
        2.117284,  # Close, not Adj Close (1.883304)
        36301200,
    )
    assert bars.order_by("ts").last().ts == datetime(2014, 12, 31, tzinfo=UTC)
    assert Instrument.objects.get(symbol="ORCL").asset_class == "equity"


def test_backtrader_minute_file_joins_date_and_time_and_reads_crlf():
    out = bars_1m(BT_MINUTE, "BT")
    assert "30,889 rows read, 30,889 inserted" in out
    bars = MinuteBar.objects.for_symbol("BT").order_by("ts")
    assert bars.count() == 30889
    first, last = bars.first(), bars.last()
    assert first.ts == datetime(2006, 1, 2, 9, 1, tzinfo=UTC)
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        3602,
        3603,
        3597,
        3599,
        5699,
    )
    assert last.ts == datetime(2006, 2, 27, 22, 0, tzinfo=UTC)


def test_backtrader_minute_file_refreshes_the_hourly_aggregate_for_its_range():
    bars_1m(BT_MINUTE, "BT")
    hour = datetime(2006, 1, 2, 10, 0, tzinfo=UTC)
    raw = _raw_backtrader_bars(hour, hour + timedelta(hours=1))
    expected = (
        raw[0][0],
        max(b[1] for b in raw),
        min(b[2] for b in raw),
        raw[-1][3],
        sum(b[4] for b in raw),
        len(raw),
    )
    instrument = Instrument.objects.get(symbol="BT")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT open, high, low, close, volume, bar_count FROM marketdata_minutebar_1h"
            " WHERE instrument_id = %s AND bucket = %s",
            [instrument.id, hour],
        )
        assert cursor.fetchone() == pytest.approx(expected)
        cursor.execute(
            "SELECT count(*), sum(bar_count) FROM marketdata_minutebar_1h WHERE instrument_id = %s",
            [instrument.id],
        )
        buckets, bars = cursor.fetchone()
    assert bars == 30889
    assert buckets > 500


def _raw_backtrader_bars(start: datetime, end: datetime) -> list[tuple[float, ...]]:
    """The file's bars in [start, end) as (open, high, low, close, volume), read by hand."""
    rows = []
    with BT_MINUTE.open(newline="") as f:
        for date, time, o, h, low, c, v, _ in list(csv.reader(f))[1:]:
            ts = datetime.fromisoformat(f"{date}T{time}+00:00")
            if start <= ts < end:
                rows.append((float(o), float(h), float(low), float(c), float(v)))
    return rows


def test_backtrader_ticksample_keeps_ticks_sharing_a_timestamp_apart():
    out = ingest("ingest_ticks", BT_TICKS, "ES")
    assert "135 rows read, 135 inserted" in out
    ticks = Tick.objects.for_symbol("ES")
    assert ticks.count() == 135
    same = ticks.filter(ts=datetime(2015, 9, 23, 20, 58, 22, 316000, tzinfo=UTC))
    assert list(same.order_by("sequence").values_list("sequence", "price")) == [
        (0, 3068),
        (1, 3069),
    ]
    first = ticks.order_by("ts", "sequence").first()
    assert (first.ts, first.price, first.size, first.kind) == (
        datetime(2015, 9, 23, 20, 57, 42, 146000, tzinfo=UTC),
        3067,
        180,
        "trade",
    )


def test_fxcm_file_loads_without_volume():
    out = bars_1m(FXCM, "GBPUSD", "--asset-class", "fx")
    assert "30,117 rows read, 30,117 inserted" in out
    bars = MinuteBar.objects.for_symbol("GBPUSD")
    assert bars.count() == 30117
    assert not bars.filter(volume__isnull=False).exists()
    first = bars.order_by("ts").first()
    assert (first.ts, first.open, first.close) == (
        datetime(2012, 2, 1, tzinfo=UTC),
        1.57597,
        1.57576,
    )
    instrument = Instrument.objects.get(symbol="GBPUSD")
    assert (instrument.asset_class, instrument.currency) == ("fx", "USD")


def test_tardis_trades_load_with_trade_ids_as_sequence():
    out = ingest("ingest_ticks", TARDIS, "BTCUSDT.BINANCE-FUTURES", "--asset-class", "crypto")
    assert "9,999 rows read, 9,999 inserted" in out
    ticks = Tick.objects.for_symbol("BTCUSDT.BINANCE-FUTURES")
    assert ticks.count() == 9999
    first = ticks.order_by("sequence").first()
    assert (first.ts, first.sequence, first.price, first.size, first.side) == (
        datetime(2020, 2, 22, 0, 0, 2, 111000, tzinfo=UTC),
        42377944,
        9682,
        0.132,
        "buy",
    )
    assert ticks.filter(side="sell").count() == 4732
    assert Instrument.objects.get(symbol="BTCUSDT.BINANCE-FUTURES").currency == "USDT"


# --- re-ingest -----------------------------------------------------------------------------


def test_reingesting_a_file_changes_nothing():
    ingest("ingest_bars", YAHOO, "ORCL", "--timeframe", "1d")
    before = _row_versions(DailyBar)
    out = ingest("ingest_bars", YAHOO, "ORCL", "--timeframe", "1d")
    assert "5,036 rows read, 0 inserted, 0 revised, 5,036 unchanged, 0 rejected" in out
    assert _row_versions(DailyBar) == before  # not one row rewritten
    record = Ingest.objects.order_by("-started_at").first()
    assert (record.inserted, record.updated, record.unchanged) == (0, 0, 5036)


def test_reingesting_ticks_changes_nothing():
    ingest("ingest_ticks", BT_TICKS, "ES")
    out = ingest("ingest_ticks", BT_TICKS, "ES")
    assert "135 rows read, 0 inserted, 0 revised, 135 unchanged" in out
    assert Tick.objects.count() == 135


def _row_versions(model) -> dict:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, xmin::text FROM {model._meta.db_table}")
        return dict(cursor.fetchall())


def test_a_changed_row_is_updated_and_only_that_one(tmp_path):
    rows = minute_rows(5)
    path = write_csv(tmp_path / "bars.csv", BAR_HEADER, rows)
    bars_1m(path)
    ts = rows[2].split(",")[0]
    rows[2] = f"{ts},100.20,100.90,99.70,100.80,555"
    write_csv(path, BAR_HEADER, rows)
    out = bars_1m(path)
    assert "5 rows read, 0 inserted, 1 revised, 4 unchanged" in out
    changed = MinuteBar.objects.get(ts=datetime.fromisoformat(ts + "+00:00"))
    assert (changed.close, changed.volume) == (100.8, 555)
    assert MinuteBar.objects.count() == 5


def test_a_file_overlapping_loaded_bars_inserts_the_new_and_updates_none(tmp_path):
    rows = minute_rows(10)
    bars_1m(write_csv(tmp_path / "first.csv", BAR_HEADER, rows[:6]))
    out = bars_1m(write_csv(tmp_path / "second.csv", BAR_HEADER, rows[4:]))
    assert "6 rows read, 4 inserted, 0 revised, 2 unchanged" in out
    assert MinuteBar.objects.count() == 10


# --- bad files -------------------------------------------------------------------------------


def test_a_file_with_bad_rows_is_refused_whole_with_their_lines(tmp_path):
    rows = minute_rows(12)
    rows[1] = "2024-05-13 13:31:00,100.1,abc,99.6,100.3,101"  # line 3
    rows[3] = "2024-05-13 13:33:00,100.3,100.0,99.8,100.5,103"  # line 5: high below close
    rows[5] = "2024-05-13 13:35:00,100.5,101.0,100.6,100.7,105"  # line 7: low above open
    rows[6] = "2024-05-13 13:36:00,-1,101.0,99.0,100.7,105"  # line 8
    rows[7] = "2024-05-13 13:37:00,100.5,101.0,100.0,100.7,-5"  # line 9
    rows[8] = "2024-05-13 13:3x,100.5,101.0,100.0,100.7,5"  # line 10
    rows[9] = "2024-05-13 13:39:00,100.5,101.0,100.0"  # line 11: two fields short
    path = write_csv(tmp_path / "bad.csv", BAR_HEADER, rows)
    with pytest.raises(CommandError) as refused:
        bars_1m(path, "BAD")
    message = str(refused.value)
    assert "refused bad.csv: 7 bad rows, nothing written" in message
    for expected in [
        "line 3: unparseable number in high: 'abc'",
        "line 5: high below open, close or low",
        "line 7: low above open or close",
        "line 8: price not positive",
        "line 9: negative volume",
        "line 10: unparseable time in timestamp: '2024-05-13 13:3x'",
        "line 11: 4 fields where the header has 6",
    ]:
        assert expected in message
    _assert_nothing_written("BAD")
    record = Ingest.objects.get()
    assert (record.status, record.rows_read, record.rejected) == ("refused", 12, 7)
    assert "line 5: high below open, close or low" in record.error_summary


def test_a_bad_row_late_in_a_big_file_is_found_and_nothing_written(tmp_path):
    rows = minute_rows(5000)
    rows[4990] = rows[4990].rsplit(",", 1)[0] + ",-1"  # line 4992
    with pytest.raises(CommandError, match=r"1 bad row, nothing written\n  line 4992: negative"):
        bars_1m(write_csv(tmp_path / "late.csv", BAR_HEADER, rows), "LATE")
    rows = minute_rows(5000)
    rows[4995] = rows[4995].replace(",", ",x", 1)  # line 4997: COPY itself refuses it
    with pytest.raises(CommandError, match=r"line 4997: unparseable number in open: 'x"):
        bars_1m(write_csv(tmp_path / "late2.csv", BAR_HEADER, rows), "LATE")
    _assert_nothing_written("LATE")


def test_a_duplicate_time_is_refused_on_a_new_range_and_on_a_loaded_one(tmp_path):
    rows = minute_rows(6)
    path = write_csv(tmp_path / "dup.csv", BAR_HEADER, [*rows, rows[2]])
    with pytest.raises(CommandError, match="line 8: duplicate time, first at line 4"):
        bars_1m(path, "DUP")
    _assert_nothing_written("DUP")
    bars_1m(write_csv(tmp_path / "good.csv", BAR_HEADER, rows), "DUP")
    with pytest.raises(CommandError, match="line 8: duplicate time, first at line 4"):
        bars_1m(path, "DUP")  # this time through the upsert
    assert MinuteBar.objects.count() == 6


def test_a_refusal_lists_the_first_20_bad_rows_and_the_total(tmp_path):
    rows = [r.rsplit(",", 1)[0] + ",-1" for r in minute_rows(30)]
    with pytest.raises(CommandError) as refused:
        bars_1m(write_csv(tmp_path / "many.csv", BAR_HEADER, rows))
    listed = [line for line in str(refused.value).splitlines() if line.startswith("  line ")]
    assert len(listed) == 20
    assert str(refused.value).endswith("... and 10 more")


def test_skip_invalid_loads_the_good_rows_and_writes_the_rejects_beside_the_file(tmp_path):
    rows = minute_rows(8)
    rows[2] = "2024-05-13 13:32:00,100.2,99.0,99.7,100.4,102"
    rows[5] = "2024-05-13 13:35:00,100.5,101.0,100.0,100.7,n/a"
    path = write_csv(tmp_path / "mixed.csv", BAR_HEADER, [*rows, rows[0]])
    out = bars_1m(path, "MIX", "--skip-invalid")
    rejects = tmp_path / "mixed.rejected.csv"
    assert "9 rows read, 6 inserted, 0 revised, 0 unchanged, 3 rejected" in out
    assert f"Rejected 3 rows; they are in {rejects}" in out
    assert MinuteBar.objects.count() == 6
    with rejects.open(newline="") as f:
        written = list(csv.reader(f))
    assert written[0] == ["line", "reason", *BAR_HEADER.split(",")]
    assert [(r[0], r[1]) for r in written[1:]] == [
        ("4", "high below open, close or low"),
        ("7", "unparseable number in volume: 'n/a'"),
        ("10", "duplicate time, first at line 2"),
    ]
    assert written[1][2:] == rows[2].split(",")
    record = Ingest.objects.get()
    assert (record.status, record.rejected, record.rejects_file) == ("loaded", 3, str(rejects))


def test_a_file_with_no_good_rows_creates_no_instrument(tmp_path):
    rows = [r.rsplit(",", 1)[0] + ",-1" for r in minute_rows(2)]
    out = bars_1m(write_csv(tmp_path / "none.csv", BAR_HEADER, rows), "NONE", "--skip-invalid")
    assert "2 rows read, 0 inserted, 0 revised, 0 unchanged, 2 rejected" in out
    assert (tmp_path / "none.rejected.csv").exists()
    out = bars_1m(write_csv(tmp_path / "empty.csv", BAR_HEADER, []), "NONE")
    assert "0 rows read" in out
    _assert_nothing_written("NONE")


def test_a_failed_load_leaves_nothing_behind(tmp_path, monkeypatch):
    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(pipeline, "_write_rejects", fail)
    rows = minute_rows(5)
    rows[1] = rows[1].rsplit(",", 1)[0] + ",-1"
    with pytest.raises(OSError, match="disk full"):
        bars_1m(write_csv(tmp_path / "x.csv", BAR_HEADER, rows), "GONE", "--skip-invalid")
    _assert_nothing_written("GONE")
    record = Ingest.objects.get()
    assert (record.status, record.error_summary) == ("failed", "OSError: disk full")
    assert record.instrument is None


def test_ticks_with_bid_above_ask_or_no_price_are_refused(tmp_path):
    path = write_csv(
        tmp_path / "quotes.csv",
        "time,bid,ask,bid_size,ask_size",
        [
            "2024-05-13T13:30:00.100Z,10.0,10.1,5,5",
            "2024-05-13T13:30:00.200Z,10.2,10.1,5,5",
            "2024-05-13T13:30:00.300Z,,,5,5",
            "2024-05-13T13:30:00.400Z,10.0,10.1,-5,5",
        ],
    )
    with pytest.raises(CommandError) as refused:
        ingest("ingest_ticks", path, "Q")
    message = str(refused.value)
    assert "line 3: bid above ask" in message
    assert "line 4: no price, bid or ask" in message
    assert "line 5: negative size" in message
    assert Tick.objects.count() == 0


def _assert_nothing_written(symbol: str) -> None:
    assert not MinuteBar.objects.exists()
    assert not Instrument.objects.filter(symbol=symbol).exists()


# --- layouts, times, formats -----------------------------------------------------------------


def test_epoch_seconds_milliseconds_and_microseconds_are_told_apart(tmp_path):
    moment = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)
    seconds = int(moment.timestamp())
    rows = [
        f"{seconds},10,11,9,10.5",
        f"{(seconds + 60) * 1000},10,11,9,10.5",
        f"{(seconds + 120) * 1_000_000},10,11,9,10.5",
    ]
    bars_1m(write_csv(tmp_path / "epoch.csv", "timestamp,open,high,low,close", rows))
    assert list(MinuteBar.objects.order_by("ts").values_list("ts", flat=True)) == [
        moment,
        moment + timedelta(minutes=1),
        moment + timedelta(minutes=2),
    ]


def test_naive_times_take_the_tz_option(tmp_path):
    path = write_csv(tmp_path / "ny.csv", BAR_HEADER, ["2024-01-15 09:30:00,10,11,9,10.5,1"])
    bars_1m(path, "NY", "--tz", "America/New_York")
    assert MinuteBar.objects.get().ts == datetime(2024, 1, 15, 14, 30, tzinfo=UTC)


def test_yahoo_layout_in_another_order_and_case(tmp_path):
    path = write_csv(
        tmp_path / "y.csv",
        "volume,adj close,CLOSE,low,HIGH,open,date",
        ["1000,9.5,10.5,9,11,10,2024-05-13"],
        newline="\r\n",
    )
    ingest("ingest_bars", path, "Y", "--timeframe", "1d")
    bar = DailyBar.objects.get()
    assert (bar.ts, bar.open, bar.high, bar.low, bar.close, bar.volume) == (
        datetime(2024, 5, 13, tzinfo=UTC),
        10,
        11,
        9,
        10.5,
        1000,
    )


def test_separate_date_and_time_columns_are_joined(tmp_path):
    path = write_csv(
        tmp_path / "dt.csv",
        "Date,Time,Open,High,Low,Close,Volume",
        ["2024-05-13,09:30:00,10,11,9,10.5,3", "2024-05-13,09:31:00,10.5,11,10,10.8,4"],
    )
    out = bars_1m(path, "DT", "--tz", "Europe/London")
    assert "Read dt.csv as date=Date, time=Time, open=Open," in out
    assert list(MinuteBar.objects.order_by("ts").values_list("ts", flat=True)) == [
        datetime(2024, 5, 13, 8, 30, tzinfo=UTC),
        datetime(2024, 5, 13, 8, 31, tzinfo=UTC),
    ]


def test_columns_option_maps_any_layout(tmp_path):
    path = write_csv(
        tmp_path / "bbg.csv",
        "When;PX_OPEN;PX_HIGH;PX_LOW;PX_LAST;PX_VOLUME",
        ["2024-05-13 13:30:00+00;10;11;9;10.5;7"],
    )
    with pytest.raises(CommandError, match="cannot tell where ts, open, high, low, close is"):
        bars_1m(path)
    with pytest.raises(CommandError, match="unknown role 'px'"):
        bars_1m(path, "TEST", "--columns", "px=PX_LAST")
    columns = "ts=When,open=PX_OPEN,high=PX_HIGH,low=PX_LOW,close=PX_LAST,volume=px_volume"
    bars_1m(path, "TEST", "--columns", columns, "--delimiter", ";")
    bar = MinuteBar.objects.get()
    assert (bar.ts, bar.close, bar.volume) == (datetime(2024, 5, 13, 13, 30, tzinfo=UTC), 10.5, 7)


def test_a_parquet_file_loads(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    start = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)
    table = pa.table(
        {
            "timestamp": pa.array(
                [start + timedelta(minutes=i) for i in range(3)], pa.timestamp("ns", tz="UTC")
            ),
            "open": [10.0, 10.5, 11.0],
            "high": [11.0, 11.5, 12.0],
            "low": [9.0, 10.0, 10.5],
            "close": [10.5, 11.0, 11.5],
            "volume": pa.array([1, None, 3], pa.int64()),
        }
    )
    path = tmp_path / "bars.parquet"
    pq.write_table(table, path)
    out = bars_1m(path)
    assert "3 rows read, 3 inserted" in out
    assert list(MinuteBar.objects.order_by("ts").values_list("ts", "close", "volume")) == [
        (start, 10.5, 1),
        (start + timedelta(minutes=1), 11.0, None),
        (start + timedelta(minutes=2), 11.5, 3),
    ]


# --- partitions, the record, the admin -------------------------------------------------------


def test_partitions_are_created_for_the_range_loaded(timescaledb):
    if timescaledb:
        pytest.skip("TimescaleDB makes its chunks itself")
    from qvp_site.db.partitions import partitions

    ingest("ingest_bars", YAHOO, "ORCL", "--timeframe", "1d")
    with connection.cursor() as cursor:
        years = {p.lower.year for p in partitions(cursor, "marketdata_dailybar")}
    assert set(range(1995, 2015)) <= years


def test_every_ingest_is_recorded():
    ingest("ingest_bars", YAHOO, "ORCL", "--timeframe", "1d")
    record = Ingest.objects.get()
    assert record.file_name == YAHOO.name
    assert record.sha256 == hashlib.sha256(YAHOO.read_bytes()).hexdigest()
    assert (record.kind, record.symbol, record.instrument.symbol) == ("bars-1d", "ORCL", "ORCL")
    assert (record.status, record.rows_read, record.inserted, record.rejected) == (
        "loaded",
        5036,
        5036,
        0,
    )
    assert record.instrument_created
    assert record.os_user
    assert record.finished_at >= record.started_at


def test_ingests_are_in_the_admin_read_only(admin_client):
    ingest("ingest_ticks", BT_TICKS, "ES")
    response = admin_client.get("/admin/marketdata/ingest/?q=ticksample&status=loaded")
    assert response.status_code == 200
    assert b"backtrader-ticksample.csv" in response.content
    record = Ingest.objects.get()
    assert admin_client.get(f"/admin/marketdata/ingest/{record.pk}/change/").status_code == 200
    assert admin_client.get("/admin/marketdata/ingest/add/").status_code == 403


def test_a_progress_bar_shows_on_a_terminal_only(tmp_path, capsys):
    class Terminal(StringIO):
        def isatty(self) -> bool:
            return True

    path = write_csv(tmp_path / "tty.csv", BAR_HEADER, minute_rows(3))
    call_command("ingest_bars", str(path), "--symbol", "T", "--timeframe", "1m", stdout=Terminal())
    assert "loading tty.csv" in capsys.readouterr().err
    bars_1m(path, "T")
    assert capsys.readouterr().err == ""
