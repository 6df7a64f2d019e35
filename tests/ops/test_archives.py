"""manage.py archive: old time-series rows to Parquet with a checksum and a record, and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO

import pyarrow.parquet as pq
import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from marketdata.models import MinuteBar
from qvp_site.backups import sha256_of
from qvp_site.db.partitions import prepare_load
from qvp_site.models import Archive
from trading.models import PortfolioSnapshot

START = datetime(2025, 3, 1, tzinfo=UTC)


@pytest.fixture
def bars(instrument):
    prepare_load("marketdata_minutebar", START, START + timedelta(days=30))
    MinuteBar.objects.bulk_create(
        MinuteBar(instrument=instrument, ts=START + timedelta(hours=h, microseconds=h),
                  open=100 + h / 7, high=101 + h / 3, low=99.5, close=100.25, volume=h * 1.5,
                  vwap=None if h % 2 else 100.1, trade_count=h)
        for h in range(0, 30 * 24, 3)
    )  # fmt: skip
    return instrument


def table_rows(table: str, where: str = "") -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT * FROM {table} {where} ORDER BY id")
        return cursor.fetchall()


def archive(*args: str) -> str:
    out = StringIO()
    call_command("archive", *args, stdout=out)
    return out.getvalue()


def test_archive_writes_the_old_rows_and_records_them(bars, tmp_path):
    archive(
        "--table", "marketdata_minutebar", "--before", "2025-03-11", "--directory", str(tmp_path)
    )
    record = Archive.objects.get()
    old = table_rows("marketdata_minutebar", "WHERE ts < '2025-03-11'")
    assert record.rows == len(old) == 80
    assert (record.starts, record.before) == (None, datetime(2025, 3, 11, tzinfo=UTC))
    assert sha256_of(tmp_path / record.path.rsplit("/", 1)[1]) == record.sha256
    written = pq.read_table(record.path)
    assert written.schema.field("ts").type.tz == "UTC"
    by_id = {row["id"]: row for row in written.to_pylist()}
    for row in old:  # every value, exactly (microseconds, NULLs and doubles included)
        assert tuple(by_id[row[0]].values()) == row
    # The next archive starts where this one ended.
    archive(
        "--table", "marketdata_minutebar", "--before", "2025-03-21", "--directory", str(tmp_path)
    )
    second = Archive.objects.order_by("-before").first()
    assert second.starts == record.before
    assert second.rows == 80
    with pytest.raises(CommandError, match="archived up to 2025-03-21"):
        archive("--table", "marketdata_minutebar", "--before", "2025-03-15")


def test_restore_brings_back_what_retention_dropped(bars, tmp_path):
    before = table_rows("marketdata_minutebar")
    archive(
        "--table", "marketdata_minutebar", "--before", "2025-03-16", "--directory", str(tmp_path)
    )
    record = Archive.objects.get()
    with connection.cursor() as cursor:  # as retention would
        cursor.execute("DELETE FROM marketdata_minutebar WHERE ts < '2025-03-16'")
    assert len(table_rows("marketdata_minutebar")) == len(before) - record.rows
    out = archive("--restore", str(record.pk))
    assert f"{record.rows} rows read, {record.rows} inserted" in out
    assert table_rows("marketdata_minutebar") == before
    # Again: every row is there already, nothing is doubled.
    assert f"{record.rows} rows read, 0 inserted" in archive("--restore", str(record.pk))
    assert table_rows("marketdata_minutebar") == before
    record.refresh_from_db()
    assert record.restored_rows == 0
    assert record.restored_at is not None


def test_decimals_json_and_nulls_come_back_exactly(account, tmp_path):
    prepare_load("trading_portfoliosnapshot", START, START + timedelta(days=3))
    for day in range(3):
        PortfolioSnapshot.objects.create(
            account=account, ts=START + timedelta(days=day), currency="USD",
            cash=Decimal("1234567.12345678"), market_value=Decimal("-0.00000001"),
            nav=Decimal("1234567.12345677"), gross_exposure=Decimal(0), net_exposure=Decimal(0),
            daily_pnl=None if day == 0 else Decimal("-12.5"),
            unpriced=[] if day else [{"symbol": "XYZ", "why": "no \"price\", yet"}],
        )  # fmt: skip
    before = table_rows("trading_portfoliosnapshot")
    archive("--table", "trading_portfoliosnapshot", "--before", "2025-03-04", "--directory",
            str(tmp_path))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM trading_portfoliosnapshot")
    archive("--restore", str(Archive.objects.get().pk))
    assert table_rows("trading_portfoliosnapshot") == before


def test_refusals(bars, tmp_path):
    with pytest.raises(CommandError, match="trading_execution: not a time-series table"):
        archive("--table", "trading_execution", "--before", "2025-03-11")
    with pytest.raises(CommandError, match=r"argument --before: .*is not an ISO date or time"):
        archive("--table", "marketdata_minutebar", "--before", "last tuesday")
    with pytest.raises(CommandError, match="no such archive"):
        archive("--restore", "999999")
    archive(
        "--table", "marketdata_minutebar", "--before", "2025-03-11", "--directory", str(tmp_path)
    )
    record = Archive.objects.get()
    with open(record.path, "r+b") as handle:
        handle.seek(100)
        handle.write(b"\x00\x01\x02")
    with pytest.raises(CommandError, match="does not match its SHA-256"):
        archive("--restore", str(record.pk))


def test_text_that_looks_like_null_comes_back_as_text(db, tmp_path):
    # PostgreSQL's CSV writes these unquoted; Arrow's defaults would have read them as NULL.
    prepare_load("signals_systemlog", START, START + timedelta(days=1))
    with connection.cursor() as cursor:
        for n, (message, context) in enumerate(
            [("NA", '{"x": null}'), ("null", "{}"), ("NaN", '{"x": "NaN"}'), ("", "{}")]
        ):
            cursor.execute(
                "INSERT INTO signals_systemlog (ts, level, logger, message, context)"
                " VALUES (%s, 'WARNING', '#N/A', %s, %s::jsonb)",
                [START + timedelta(minutes=n), message, context],
            )
    # Only the rows of the test: the log handler may have kept other tests' warnings.
    old = "WHERE ts < '2025-03-02'"
    before = table_rows("signals_systemlog", old)
    archive("--table", "signals_systemlog", "--before", "2025-03-02", "--directory",
            str(tmp_path))  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM signals_systemlog {old}")
    archive("--restore", str(Archive.objects.get().pk))
    assert table_rows("signals_systemlog", old) == before
