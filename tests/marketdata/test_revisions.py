"""Market data keeps every revision and reads as known at any moment (marketdata 0009).

A load that changes stored rows keeps the rows it replaces, in the load's own statement; the
same file twice records nothing; a deletion is a revision too. ``known_at`` reads a table as
it was known, through the ORM and through SQL as each role; no role but the owner's functions
writes a revision or rewrites a stored row.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.db import ProgrammingError, connection
from django.utils import timezone
from psycopg import errors

from marketdata.apps import REVISION_TABLES
from marketdata.models import (
    DailyBar,
    DailyBarRevision,
    Ingest,
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    Tick,
    TickRevision,
)
from qvp_site.db import roles
from qvp_site.db.maintenance import maintain
from tests.knowledge import between_commits as _pause
from tests.marketdata.conftest import START

pytestmark = pytest.mark.django_db(transaction=True)

HEADER = "timestamp,open,high,low,close,volume"


def _bars(count: int, corrected: dict[int, float] | None = None) -> str:
    rows = []
    for i in range(count):
        close = (corrected or {}).get(i, 100.2)
        ts = (START + timedelta(minutes=i)).strftime("%Y-%m-%d %H:%M:%S")
        rows.append(f"{ts},100.0,101.0,99.0,{close},{100 + i}")
    return "\n".join([HEADER, *rows]) + "\n"


def _ingest(tmp_path: Path, name: str, text: str, *, kind: str = "1m") -> str:
    path = tmp_path / name
    path.write_text(text)
    out = StringIO()
    command = "ingest_bars" if kind != "ticks" else "ingest_ticks"
    timeframe = ["--timeframe", kind] if kind != "ticks" else []
    call_command(command, str(path), "--symbol", "REV", *timeframe, stdout=out)
    return out.getvalue()


def _closes(queryset) -> list[float]:
    return list(queryset.order_by("ts").values_list("close", flat=True))


def test_a_correction_keeps_the_row_it_replaces_and_reads_as_known_before(
    partitioned_for, tmp_path
):
    before_any = _pause()
    _ingest(tmp_path, "first.csv", _bars(5))
    first = Ingest.objects.latest("started_at")
    between = _pause()
    out = _ingest(tmp_path, "corrected.csv", _bars(5, {2: 100.7, 4: 100.9}))
    assert "0 inserted, 2 revised, 3 unchanged" in out
    second = Ingest.objects.latest("started_at")
    assert second.updated == 2

    revisions = MinuteBarRevision.objects.order_by("ts")
    assert [(r.ts, r.close, r.change, r.ingest_id) for r in revisions] == [
        (START + timedelta(minutes=2), 100.2, "revised", second.id),
        (START + timedelta(minutes=4), 100.2, "revised", second.id),
    ]
    current = MinuteBar.objects.get(ts=START + timedelta(minutes=2))
    for revision in revisions:
        # Known from the first load until the second: the interval the old values were current.
        assert revision.known_from < between < revision.known_until == current.known_from
        assert revision.known_from >= first.started_at
        assert revision.actor  # who acted, as the audit trail names them

    bars = MinuteBar.objects.filter(instrument__symbol="REV")
    assert _closes(bars) == [100.2, 100.2, 100.7, 100.2, 100.9]
    assert _closes(bars.known_at(between)) == [100.2] * 5
    assert _closes(bars.known_at(timezone.now())) == _closes(bars)
    assert _closes(bars.known_at(before_any)) == []
    assert bars.known_at(between).count() == 5


def test_the_same_file_twice_changes_nothing_and_records_nothing(partitioned_for, tmp_path):
    _ingest(tmp_path, "first.csv", _bars(5, {1: 100.4}))
    known = dict(MinuteBar.objects.values_list("ts", "known_from"))
    out = _ingest(tmp_path, "again.csv", _bars(5, {1: 100.4}))
    assert "0 inserted, 0 revised, 5 unchanged" in out
    assert not MinuteBarRevision.objects.exists()
    assert dict(MinuteBar.objects.values_list("ts", "known_from")) == known


def test_a_tick_corrected_by_a_later_file_is_revised(partitioned_for, tmp_path):
    header = "timestamp,price,size\n"
    ts = START.strftime("%Y-%m-%d %H:%M:%S.%f")
    _ingest(tmp_path, "ticks.csv", f"{header}{ts},10.0,5\n{ts},10.1,6\n", kind="ticks")
    between = _pause()
    out = _ingest(tmp_path, "fixed.csv", f"{header}{ts},10.0,5\n{ts},10.2,6\n", kind="ticks")
    assert "0 inserted, 1 revised, 1 unchanged" in out
    revision = TickRevision.objects.get()
    assert (revision.sequence, revision.price, revision.change) == (1, 10.1, "revised")
    ticks = Tick.objects.filter(instrument__symbol="REV").order_by("sequence")
    assert list(ticks.values_list("price", flat=True)) == [10.0, 10.2]
    assert list(ticks.known_at(between).values_list("price", flat=True)) == [10.0, 10.1]


def test_a_deletion_is_a_revision(partitioned_for, tmp_path):
    _ingest(tmp_path, "daily.csv", _bars(3), kind="1d")
    assert DailyBar.objects.count() == 3
    between = _pause()
    instrument = Instrument.objects.get(symbol="REV")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_delete('marketdata_dailybar', %s, %s, %s)",
            [instrument.id, START, START + timedelta(minutes=2)],
        )
        assert cursor.fetchone()[0] == 2
    assert DailyBar.objects.count() == 1
    assert DailyBar.objects.known_at(between).count() == 3
    assert DailyBar.objects.known_at(timezone.now()).count() == 1
    gone = DailyBarRevision.objects.order_by("ts")
    assert [(r.ts, r.change, r.ingest_id) for r in gone] == [
        (START, "deleted", None),
        (START + timedelta(minutes=1), "deleted", None),
    ]


def test_the_read_as_known_is_inlined_and_uses_both_keys(partitioned_for, tmp_path):
    _ingest(tmp_path, "first.csv", _bars(5))
    instrument = Instrument.objects.get(symbol="REV")
    query = MinuteBar.objects.known_at(timezone.now()).filter(
        instrument=instrument, ts__gte=START, ts__lt=START + timedelta(hours=1)
    )
    sql, params = query.query.sql_with_params()
    with connection.cursor() as cursor:
        # Whether the filters reach the revisions' index, not whether the planner prefers it
        # on a table of a few rows (it chose a scan once, in CI, with fresher statistics).
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    # Inlined: the filters reach both tables' indexes. (On Citus the instruments, from the
    # coordinator, reach the shards as an intermediate result, read by a function of Citus's.)
    scans = [line for line in plan.splitlines() if "Function Scan" in line]
    assert all("read_intermediate_result" in line for line in scans), plan
    assert "minutebarrevision_by_time" in plan


@pytest.mark.parametrize("table", REVISION_TABLES)
def test_no_role_writes_a_revision_in_raw_sql(connect_as_app, table):
    conn = connect_as_app()
    for statement in (
        f"INSERT INTO {table} DEFAULT VALUES",
        f"UPDATE {table} SET actor = 'me'",
        f"DELETE FROM {table}",
        f"TRUNCATE {table}",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)


def test_the_app_role_cannot_delete_or_merge_outside_the_functions(connect_as_app, tmp_path):
    conn = connect_as_app()
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute(
            "SELECT marketdata_merge_sql('marketdata_minutebar', '{ts}', '{open}', '', now())"
        )
    with pytest.raises(errors.InsufficientPrivilege):
        conn.execute("UPDATE marketdata_minutebar SET known_from = now()")


def test_auditors_read_as_known_in_sql(partitioned_for, tmp_path, app_role_password):
    _ingest(tmp_path, "first.csv", _bars(3))
    between = _pause()
    _ingest(tmp_path, "fixed.csv", _bars(3, {0: 100.5}))
    with connection.cursor() as cursor:
        cursor.execute(f"SET ROLE {roles.READONLY_ROLE}")
        try:
            cursor.execute(
                "SELECT close FROM marketdata_minutebar_known_at(%s) ORDER BY ts", [between]
            )
            assert [row[0] for row in cursor.fetchall()] == [100.2] * 3
            cursor.execute("SELECT count(*) FROM marketdata_minutebarrevision")
            assert cursor.fetchone()[0] == 1
            with pytest.raises(ProgrammingError, match="permission denied"):
                cursor.execute("SELECT marketdata_delete('marketdata_minutebar', 1, now(), now())")
        finally:
            cursor.execute("RESET ROLE")


def test_retention_drops_the_revisions_of_the_rows_it_drops(tmp_path, settings):
    """Retention drops history on purpose: not a revision, and the revisions of what it drops
    go with it; those of the rows it keeps stay."""
    now = timezone.now().replace(second=0, microsecond=0)
    old, recent = now - timedelta(days=60), now - timedelta(hours=1)

    def file(close: float) -> str:
        rows = [f"{ts:%Y-%m-%d %H:%M:%S},100,101,99,{close},1" for ts in (old, recent)]
        return "\n".join([HEADER, *rows]) + "\n"

    _ingest(tmp_path, "first.csv", file(100.2))
    _ingest(tmp_path, "fixed.csv", file(100.4))
    assert sorted(MinuteBarRevision.objects.values_list("ts", flat=True)) == [old, recent]
    settings.QVP_RETENTION = {"marketdata_minutebar": "30 days"}
    lines: list[str] = []
    maintain(report=lines.append)
    assert list(MinuteBar.objects.values_list("ts", flat=True)) == [recent]
    assert list(MinuteBarRevision.objects.values_list("ts", flat=True)) == [recent]
    assert any("1 revision(s) dropped" in line for line in lines), lines


@pytest.mark.timescaledb
def test_a_compressed_chunk_keeps_its_revisions_and_its_deletions(tmp_path):
    """TimescaleDB refuses transition tables on compressed hypertables and deletes whole
    compressed batches: the merge and the deletion keep what they replace all the same."""
    old = datetime(2024, 1, 8, tzinfo=UTC)  # far past the compression policy's 7 days

    def file(close: float) -> str:
        rows = [f"{old + timedelta(minutes=i):%Y-%m-%d %H:%M:%S},100,101,99,{close},1"
                for i in range(4)]  # fmt: skip
        return "\n".join([HEADER, *rows]) + "\n"

    _ingest(tmp_path, "first.csv", file(100.2))
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(compress_chunk(c, true))"
            " FROM show_chunks('marketdata_minutebar', older_than => now()) AS c"
        )
        assert cursor.fetchone()[0] >= 1
    between = _pause()
    assert "0 inserted, 4 revised" in _ingest(tmp_path, "fixed.csv", file(100.3))
    after_fix = _pause()
    instrument = Instrument.objects.get(symbol="REV")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_delete('marketdata_minutebar', %s, %s, %s)",
            [instrument.id, old, old + timedelta(minutes=2)],
        )
        assert cursor.fetchone()[0] == 2
    bars = MinuteBar.objects.filter(instrument=instrument)
    assert _closes(bars) == [100.3, 100.3]
    assert _closes(bars.known_at(between)) == [100.2] * 4
    assert _closes(bars.known_at(after_fix)) == [100.3] * 4
    assert sorted(MinuteBarRevision.objects.values_list("change", flat=True)) == (
        ["deleted"] * 2 + ["revised"] * 4
    )
