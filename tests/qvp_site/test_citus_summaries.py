"""On Citus, the minute bars' summaries sit beside the bars (marketdata 0022): distributed by
instrument in their shard group, refreshed on the shards, read for one instrument on one shard,
and written by no role but their owner, on the coordinator or on a worker."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone

from marketdata import aggregates as rollups
from marketdata.buckets import BucketRequest, aggregate_statement
from marketdata.models import Instrument, MinuteBar
from qvp_site.db import aggregates, catalog, partitions
from qvp_site.db.intervals import parse_interval
from tests.fixtures.marketdata import summaries_differing
from tests.plans import explained, plan_nodes, task_counts

pytestmark = pytest.mark.citus

HOURLY, DAILY = "marketdata_minutebar_1h", "marketdata_minutebar_1d"
START = datetime(2024, 3, 4, 13, 30, tzinfo=UTC)  # a Monday, apart from the other tests' bars


@pytest.fixture(autouse=True)
def _summaries_of_the_tests_bars_recomputed():
    """Afterwards, the summaries over the bars a test wrote recomputed once they are gone: a
    transactional test's flush empties the model tables only."""
    yield
    span = MinuteBar.objects.aggregate(first=Min("ts"), last=Max("ts"))
    if span["first"] is not None:
        MinuteBar.objects.all().delete()
        aggregates.refresh_table("marketdata_minutebar", span["first"], span["last"])


def placed(table: str) -> dict[int, int]:
    """Worker port -> the rows of ``table`` its shards hold, as each row's shard is placed."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT n.nodeport, count(*) FROM {table} s"
            " JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column("
            f"  '{table}', s.instrument_id)"
            " JOIN pg_dist_node n USING (groupid) GROUP BY 1"
        )
        return dict(cursor.fetchall())


def test_the_summaries_are_distributed_by_instrument_beside_the_bars(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT logicalrelid::text, column_to_column_name(logicalrelid, partkey),"
            " colocationid FROM pg_dist_partition WHERE logicalrelid = ANY(%s::regclass[])",
            [["marketdata_minutebar", HOURLY, DAILY]],
        )
        found = {name: (column, group) for name, column, group in cursor.fetchall()}
    assert found[HOURLY] == found[DAILY] == found["marketdata_minutebar"]
    assert found[HOURLY][0] == "instrument_id"


def test_a_refresh_is_an_insert_each_shard_runs_over_its_own_bars(db):
    with connection.cursor() as cursor:
        select = aggregates.summary_select(cursor, HOURLY, "ts >= %s AND ts < %s")
    plan = explained(f"INSERT INTO {HOURLY} {select}", [START, START + timedelta(days=1)])
    job = plan["Distributed Query"]["Job"]
    assert job["Task Count"] == settings.QVP_CITUS_SHARD_COUNT
    # Pushed down: no step gathers the buckets on the coordinator to send them back.
    assert "INSERT/SELECT method" not in plan
    inserts = [n for n in plan_nodes(plan) if n.get("Node Type") == "ModifyTable"]
    assert inserts
    assert all(n["Relation Name"].startswith(f"{HOURLY}_") for n in inserts)


def bar_file(path: Path, start: datetime, count: int, volume: float) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    for minute in range(count):
        close = 10.0 + minute % 9
        ts = (start + timedelta(minutes=minute)).isoformat()
        lines.append(f"{ts},{close},{close + 1},{close - 1},{close},{volume + minute}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("volume", [100.0, 0.125 + 1 / 3], ids=["whole", "fractional"])
def test_loads_fill_both_summaries_on_both_workers_as_a_recompute_would(tmp_path, volume):
    # Whole or fractional volumes (which one node sums from the bars rather than rolling
    # them up), both summaries equal a recompute from the bars, and their rows sit on
    # both workers.
    partitions.prepare_load("marketdata_minutebar", START, START + timedelta(days=2))
    for n in range(12):
        path = bar_file(tmp_path / f"{n}.csv", START, 900, volume)
        call_command(
            "ingest_bars", str(path), "--symbol", f"SUM{n}", "--timeframe", "1m",
            stdout=io.StringIO(),
        )  # fmt: skip
    span = (START - timedelta(days=1), START + timedelta(days=2))
    assert summaries_differing(*span) == {HOURLY: 0, DAILY: 0}
    # Each summed from the bars on the shards: no rollup through the coordinator.
    with connection.cursor() as cursor:
        found = catalog.aggregates(cursor, source_table="marketdata_minutebar")
    assert rollups._rolled_up_here(connection, found) is False
    for table, rows in ((HOURLY, 12 * 16), (DAILY, 12 * 2)):
        per_worker = placed(table)
        assert set(per_worker) == {port for _host, port in settings.QVP_CITUS_WORKERS}
        assert sum(per_worker.values()) == rows, table


@pytest.mark.django_db(transaction=True)
def test_maintain_refreshes_the_recent_window_on_the_shards():
    # Bars written behind the loads' back, in the recent window (the week before now), which
    # the daily maintenance refreshes.
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=2)
    partitions.prepare_load("marketdata_minutebar", start, start + timedelta(hours=3))
    instrument = Instrument.objects.create(symbol="MNT", asset_class="equity")
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close, volume)"
            " SELECT %s, %s + g * interval '1 minute', 10, 11, 9, 10.5, 7"
            " FROM generate_series(0, 119) g",
            [instrument.id, start],
        )
    call_command("maintain", "--daily", stdout=io.StringIO())
    with connection.cursor() as cursor:
        for summary in (HOURLY, DAILY):
            cursor.execute(
                f"SELECT sum(bar_count), sum(volume) FROM {summary} WHERE instrument_id = %s",
                [instrument.id],
            )
            assert cursor.fetchone() == (120, 840.0), summary


def test_one_instruments_buckets_are_read_on_one_shard(db):
    instrument = Instrument.objects.create(symbol="ONE", asset_class="equity")
    request = BucketRequest(
        instrument.id, parse_interval("1 hour"), START, START + timedelta(days=5)
    )
    sql, params = aggregate_statement(HOURLY, request, False)
    plan = explained(sql, params)
    assert task_counts(plan) == [1]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(
    ("role", "password"),
    [("trading_app", "app_role_password"), ("qvp_research", "research_role_password")],
)
def test_no_role_but_the_owner_writes_a_summary_on_the_coordinator_or_a_worker(
    request, role, password
):
    # A role that could write the summaries could rewrite any bucket a reader is served:
    # refused through the coordinator, and logged in on a worker, on the shard itself. Both
    # places let it read them: the grants reached the shards.
    instrument = Instrument.objects.create(symbol="OWN", asset_class="equity")
    shard_id = f"get_shard_id_for_distribution_column('{HOURLY}', {instrument.id})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT shard_name('{HOURLY}'::regclass, {shard_id}), n.nodename, n.nodeport"
            f" FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)"
            f" WHERE p.shardid = {shard_id}"
        )
        shard, host, port = cursor.fetchone()
    coordinator = connection.settings_dict
    login = {
        "dbname": coordinator["NAME"],
        "user": role,
        "password": request.getfixturevalue(password),
        "autocommit": True,
    }
    statements = (
        "INSERT INTO {} (bucket, instrument_id, bar_count) VALUES (now(), %s, 1)",
        "UPDATE {} SET bar_count = 0 WHERE instrument_id = %s",
        "DELETE FROM {} WHERE instrument_id = %s",
    )
    for place, table in (
        ((coordinator["HOST"], coordinator["PORT"]), HOURLY),
        ((host, port), shard),
    ):
        with psycopg.connect(host=place[0], port=place[1], **login) as session:
            session.execute(
                f"SELECT count(*) FROM {table} WHERE instrument_id = %s", [instrument.id]
            )
            for statement in statements:
                with pytest.raises(psycopg.errors.InsufficientPrivilege):
                    session.execute(statement.format(table), [instrument.id])
