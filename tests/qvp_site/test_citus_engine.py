"""A database on a Citus cluster (QVP_CITUS_WORKERS): prepared before its migrations, the test
database included (the extension in it on every node, the workers registered), and detected as
the Citus engine. Runs where DATABASE_URL points at a coordinator; skipped elsewhere."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import IntegrityError, connection, transaction
from django.db.models import Sum
from django.utils import timezone

from marketdata.models import Instrument, MinuteBar
from qvp_site.db import citus, engine, partitions, status
from signals.models import Agent

pytestmark = pytest.mark.citus
NOON = datetime(2026, 3, 2, 12, tzinfo=UTC)


def test_the_engine_is_citus_with_its_workers(db):
    found = engine.detect()
    assert found.is_citus
    assert found.citus_workers == len(settings.QVP_CITUS_WORKERS) > 0
    assert found.timescaledb_version is None


def test_the_test_database_has_the_extension_on_every_worker(db):
    name = connection.settings_dict["NAME"]
    login = {
        "user": connection.settings_dict["USER"],
        "password": connection.settings_dict["PASSWORD"],
    }
    for host, port in settings.QVP_CITUS_WORKERS:
        with psycopg.connect(host=host, port=port, dbname=name, **login) as conn:
            found = conn.execute("SELECT extversion FROM pg_extension WHERE extname = 'citus'")
            assert found.fetchone() is not None, (host, port)


def test_preparing_again_changes_nothing(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT nodename, nodeport FROM pg_dist_node ORDER BY 1, 2")
        before = cursor.fetchall()
    citus._prepared.clear()
    assert citus.prepare(connection)
    with connection.cursor() as cursor:
        cursor.execute("SELECT nodename, nodeport FROM pg_dist_node ORDER BY 1, 2")
        assert cursor.fetchall() == before


# --- The market data distributed by instrument (marketdata 0017) --------------------------

MARKET_DATA = ("marketdata_minutebar", "marketdata_dailybar", "marketdata_tick")


def distribution() -> dict[str, tuple[str, str, int]]:
    """Each Citus table: its method, distribution column and colocation."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT logicalrelid::text, partmethod, column_to_column_name(logicalrelid, partkey),"
            " colocationid FROM pg_dist_partition p JOIN pg_class c ON c.oid = p.logicalrelid"
            " WHERE NOT c.relispartition"
        )
        return {name: (method, column, group) for name, method, column, group in cursor}


def test_the_market_data_is_distributed_by_instrument_and_colocated(db):
    found = distribution()
    groups = {found[name][2] for name in (*MARKET_DATA, "marketdata_optionquote")}
    assert len(groups) == 1  # one shard group: an instrument's rows of every table together
    for name in MARKET_DATA:
        assert found[name][:2] == ("h", "instrument_id"), name
    assert found["marketdata_optionquote"][:2] == ("h", "underlying_id")
    # The instruments' keys distributed beside their rows, in the same shard group.
    assert found["marketdata_instrument_key"] == ("h", "id", found["marketdata_minutebar"][2])
    assert "marketdata_instrument" not in found  # the security master stays the coordinator's
    assert "trading_execution" not in found  # and so do the books
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_dist_shard"
            " WHERE logicalrelid = 'marketdata_minutebar'::regclass"
        )
        assert cursor.fetchone()[0] == settings.QVP_CITUS_SHARD_COUNT


def bars_per_worker() -> dict[int, int]:
    """Worker port -> the minute bars whose shard it holds, read where each row's shard is
    placed: in the test's transaction, so uncommitted rows count too."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT n.nodeport, count(*) FROM marketdata_minutebar b"
            " JOIN pg_dist_placement p ON p.shardid = get_shard_id_for_distribution_column("
            "  'marketdata_minutebar', b.instrument_id)"
            " JOIN pg_dist_node n USING (groupid) GROUP BY 1"
        )
        return dict(cursor.fetchall())


def bar(instrument_id: int, ts: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO marketdata_minutebar (instrument_id, ts, open, high, low, close)"
            " VALUES (%s, %s, 10, 11, 9, 10.5)",
            [instrument_id, ts],
        )


def test_a_bar_of_no_instrument_is_refused_on_the_worker(db):
    partitions.prepare_load("marketdata_minutebar", NOON, NOON)
    refused = pytest.raises(IntegrityError, match="marketdata_minutebar_instrument_id_fkey")
    with refused, transaction.atomic():
        bar(987654321, NOON.isoformat())


def test_an_instrument_with_bars_cannot_be_deleted(db):
    partitions.prepare_load("marketdata_minutebar", NOON, NOON)
    with connection.cursor() as cursor:
        # The keys of the instruments of earlier transactional tests, left behind by their
        # tables' TRUNCATE (no row trigger runs), which may also have restarted the ids.
        cursor.execute("DELETE FROM marketdata_instrument_key")
    held, free = (Instrument.objects.create(symbol=s, asset_class="equity") for s in "HF")
    with connection.cursor() as cursor:
        cursor.execute("SELECT array_agg(id ORDER BY id) FROM marketdata_instrument_key")
        assert cursor.fetchone()[0] == sorted([held.id, free.id])  # the keys follow
    bar(held.id, NOON.isoformat())
    refused = pytest.raises(IntegrityError, match="still referenced")
    with refused, transaction.atomic(), connection.cursor() as cursor:  # below the ORM's PROTECT
        cursor.execute("DELETE FROM marketdata_instrument WHERE id = %s", [held.id])


SIGNALS_BY_INSTRUMENT = ("signals_signal", "signals_fusedsignal", "signals_socialsentiment")


def test_the_signals_about_an_instrument_sit_beside_its_market_data(db):
    found = distribution()
    for name in SIGNALS_BY_INSTRUMENT:
        assert found[name] == ("h", "instrument_id", found["marketdata_minutebar"][2]), name
    # The agents' keys on every node (a reference table, 'n': no distribution column); the
    # agents themselves, and the signals' tables with no instrument, stay the coordinator's.
    assert found["signals_agent_key"][:2] == ("n", None)
    for name in ("signals_agent", "signals_newsarticle", "signals_alternativedata"):
        assert name not in found, name


def signal(agent_id: int, instrument_id: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO signals_signal (agent_id, instrument_id, ts, direction, strength,"
            " confidence, horizon, explanation) VALUES (%s, %s, %s, 1, 0.5, 0.5, '1 day', '{}')",
            [agent_id, instrument_id, NOON],
        )


def test_a_signal_of_no_agent_is_refused_and_an_agent_with_signals_cannot_be_deleted(db):
    partitions.prepare_load("signals_signal", NOON, NOON)
    instrument = Instrument.objects.create(symbol="SIG", asset_class="equity")
    agent = Agent.objects.create(name="citus-agent", kind="momentum")
    with pytest.raises(IntegrityError, match="signals_signal_agent_id_fkey"), transaction.atomic():
        signal(987654321, instrument.id)
    with pytest.raises(IntegrityError, match="instrument_id_fkey"), transaction.atomic():
        signal(agent.id, 987654321)
    signal(agent.id, instrument.id)  # a new agent's key followed it to every node
    refused = pytest.raises(IntegrityError, match="still referenced")
    with refused, transaction.atomic(), connection.cursor() as cursor:  # below the ORM's PROTECT
        cursor.execute("DELETE FROM signals_agent WHERE id = %s", [agent.id])


def test_a_bar_outside_every_partition_is_refused_by_postgresql(db):
    instrument = Instrument.objects.create(symbol="OUT", asset_class="equity")
    with pytest.raises(IntegrityError, match="no partition of relation"), transaction.atomic():
        bar(instrument.id, "1990-01-02T15:00:00Z")


def test_the_rows_of_many_instruments_land_on_both_workers(db):
    partitions.prepare_load("marketdata_minutebar", NOON, NOON)
    for n in range(40):
        bar(Instrument.objects.create(symbol=f"W{n}", asset_class="equity").id, NOON.isoformat())
    per_worker = bars_per_worker()
    assert len(per_worker) == len(settings.QVP_CITUS_WORKERS)
    assert all(rows > 0 for rows in per_worker.values())
    assert sum(per_worker.values()) == 40


# --- Ingest through the coordinator ------------------------------------------------------


def bar_file(path: Path, start: datetime, closes: list[float]) -> Path:
    lines = ["timestamp,open,high,low,close,volume"]
    for minute, close in enumerate(closes):
        ts = (start + timedelta(minutes=minute)).isoformat()
        lines.append(f"{ts},{close},{close + 1},{close - 1},{close},100")
    path.write_text("\n".join(lines) + "\n")
    return path


def ingest(path: Path, symbol: str) -> str:
    out = io.StringIO()
    call_command(
        "ingest_bars", str(path), "--symbol", symbol, "--timeframe", "1m", "-v", "2", stdout=out
    )
    return out.getvalue()


@pytest.mark.django_db(transaction=True)
def test_an_ingest_through_the_coordinator_lands_on_both_workers(tmp_path):
    for n in range(12):
        said = ingest(bar_file(tmp_path / f"{n}.csv", NOON, [10.0 + n] * 30), f"ING{n}")
        assert "30 inserted" in said
        assert "gave way" not in said  # one COPY into the distributed table, no staging
        assert "Time spent: write" in said
    per_worker = bars_per_worker()
    with connection.cursor() as cursor:
        # This test's instruments: a transactional test's flush leaves the summary's rows.
        cursor.execute(
            "SELECT sum(bar_count) FROM marketdata_minutebar_1h WHERE instrument_id IN"
            " (SELECT id FROM marketdata_instrument WHERE symbol LIKE 'ING%')"
        )
        summarised = cursor.fetchone()[0]
    assert len(per_worker) == len(settings.QVP_CITUS_WORKERS)
    assert sum(per_worker.values()) == 360
    assert summarised == 360  # the hourly summary refreshed from the distributed table


@pytest.mark.django_db(transaction=True)
def test_a_bad_line_is_named_and_nothing_is_written(tmp_path):
    path = bar_file(tmp_path / "bad.csv", NOON, [10.0, 11.0, 12.0])
    path.write_text(path.read_text().replace(",12.0,13.0,11.0,12.0,", ",12.0,11.5,11.0,12.0,"))
    with pytest.raises(CommandError, match=r"line 4: high below"):
        ingest(path, "BAD")
    assert not MinuteBar.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_line_outside_the_files_range_gives_way_to_staging_and_a_reload_revises(tmp_path):
    path = bar_file(tmp_path / "out.csv", NOON, [10.0, 11.0, 12.0])
    later = (NOON + timedelta(days=30)).isoformat()
    lines = path.read_text().splitlines()
    lines[2] = later + lines[2][lines[2].index(",") :]  # the middle line a month later
    path.write_text("\n".join(lines) + "\n")
    assert "3 inserted" in ingest(path, "OUT")
    path.write_text(path.read_text().replace(",10.0,100", ",10.5,100"))
    assert "1 revised" in ingest(path, "OUT")
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM marketdata_minutebarrevision")
        assert cursor.fetchone()[0] == 1  # the close it replaced, kept


@pytest.mark.django_db(transaction=True)
def test_reads_as_known_at_a_time_give_one_nodes_answers_from_one_shard(tmp_path):
    path = bar_file(tmp_path / "k.csv", NOON, [10.0, 11.0, 12.0])
    ingest(path, "KNOWN")
    before = timezone.now()
    path.write_text(path.read_text().replace(",11.0,100", ",11.5,100"))
    assert "1 revised" in ingest(path, "KNOWN")
    bars = MinuteBar.objects.for_symbol("KNOWN").order_by("ts")
    assert [b.close for b in bars] == [10.0, 11.5, 12.0]
    then = bars.known_at(before)
    assert [b.close for b in then] == [10.0, 11.0, 12.0]  # as known before the reload
    assert then.aggregate(total=Sum("close"))["total"] == 33.0
    assert bars.known_at(NOON - timedelta(days=400)).count() == 0  # not yet loaded then
    sql, params = then.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Task Count: 1" in plan, plan  # one shard, rows and revisions together


def test_the_revisions_sit_beside_the_rows_and_one_instruments_history_is_one_shards(db):
    found = distribution()
    for name in (*MARKET_DATA, "marketdata_optionquote"):
        assert found[f"{name}revision"][0] == "h"
        assert found[f"{name}revision"][2] == found[name][2], name  # colocated
    with connection.cursor() as cursor:
        cursor.execute(
            "EXPLAIN SELECT * FROM marketdata_minutebar_history WHERE instrument_id = 7"
            " AND ts >= '2026-03-02' AND known_from <= now()"
            " AND (known_until IS NULL OR known_until > now())"
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert "Task Count: 1" in plan  # one shard, rows and revisions together
    assert "Distributed Subplan" not in plan  # nothing pulled whole to the coordinator


def test_an_instrument_takes_a_key_left_behind(db):
    """TRUNCATE of the instruments (the owner's alone) leaves their keys, as one node's
    reference checks leave the bars: an instrument made again with such an id is taken."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO marketdata_instrument_key (id) VALUES (424242)")
    Instrument.objects.create(id=424242, symbol="AGAIN", asset_class="equity")
    partitions.prepare_load("marketdata_minutebar", NOON, NOON)
    bar(424242, NOON.isoformat())
    assert MinuteBar.objects.filter(instrument_id=424242).count() == 1


def test_the_mirror_function_is_the_owners_alone(db, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute("SELECT has_function_privilege('public', 'qvp_mirror_key()', 'EXECUTE')")
        assert cursor.fetchone()[0] is False


@pytest.mark.django_db(transaction=True)
def test_the_status_gives_each_workers_shards_rows_and_bytes():
    partitions.prepare_load("marketdata_minutebar", NOON, NOON)
    for n in range(40):
        bar(Instrument.objects.create(symbol=f"S{n}", asset_class="equity").id, NOON.isoformat())
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_minutebar")  # Citus analyses the shards
    (bars,) = [s for s in status.table_status() if s.table == "marketdata_minutebar"]
    nodes = {share.node: share for share in bars.nodes}
    assert set(nodes) == {f"{host}:{port}" for host, port in settings.QVP_CITUS_WORKERS}
    assert sum(share.shards for share in nodes.values()) == settings.QVP_CITUS_SHARD_COUNT
    assert all(share.row_estimate > 0 for share in nodes.values())
    assert bars.row_estimate == sum(share.row_estimate for share in nodes.values()) == 40
    out = io.StringIO()
    call_command("timeseries_status", stdout=out)
    for node, share in nodes.items():
        assert f"on {node}: {share.shards} shard(s), ~{share.row_estimate} rows" in out.getvalue()
