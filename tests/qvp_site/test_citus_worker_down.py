"""A worker of the Citus cluster crashing mid-ingest, or down while the site serves: nothing is
half-written, each door says what happened (the command a line, the API a 503, never a
traceback or a 500), the books on the coordinator still serve, and once the worker is back the
same load lands whole. Runs on a cluster whose workers this machine can stop; skipped
elsewhere with the reason."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, connections
from rest_framework.test import APIClient

from marketdata.models import Ingest, Instrument, MinuteBar
from qvp_site.acting import UNAVAILABLE_RULE
from tests.qvp_site.citus_workers import LocalWorker, crashed, local_workers, worker_connection

pytestmark = pytest.mark.citus
START = datetime(2026, 3, 2, tzinfo=UTC)
BARS = 300_000  # about three seconds of COPY: time to crash a worker in the middle


@pytest.fixture
def workers(transactional_db) -> list[LocalWorker]:
    found = local_workers()
    if not found:
        pytest.skip("no worker of this cluster can be stopped from here (not local, or not ours)")
    return found


def big_file(path: Path) -> Path:
    with path.open("w") as out:
        out.write("timestamp,open,high,low,close,volume\n")
        for minute in range(BARS):
            out.write(f"{(START + timedelta(minutes=minute)).isoformat()},10,11,9,10.5,100\n")
    return path


def copying(workers: list[LocalWorker], within: float = 60) -> LocalWorker:
    """The worker a COPY into a minute-bar shard runs on, as soon as one does."""
    conns = {worker: worker_connection(worker.host, worker.port) for worker in workers}
    deadline = time.monotonic() + within
    try:
        while time.monotonic() < deadline:
            for worker, conn in conns.items():
                found = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE state = 'active'"
                    " AND query ILIKE 'COPY %%marketdata_minutebar%%'"
                ).fetchone()
                if found and found[0]:
                    return worker
            time.sleep(0.005)
    finally:
        for conn in conns.values():
            conn.close()
    raise AssertionError("no COPY reached a worker")


def instrument_keys() -> int:
    """The keys' rows (those of instruments flushed by earlier tests included: a TRUNCATE
    leaves them)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM marketdata_instrument_key")
        return cursor.fetchone()[0]


def prepared_transactions(workers: list[LocalWorker]) -> int:
    with connection.cursor() as cursor:
        cursor.execute("SELECT recover_prepared_transactions()")
    total = 0
    for worker in workers:
        with worker_connection(worker.host, worker.port) as conn:
            total += conn.execute("SELECT count(*) FROM pg_prepared_xacts").fetchone()[0]
    return total


def test_a_worker_crashed_mid_ingest_leaves_nothing_half_written(workers, tmp_path):
    path = big_file(tmp_path / "half.csv")
    said: dict[str, str] = {}
    keys = instrument_keys()

    def load() -> None:
        try:
            call_command("ingest_bars", str(path), "--symbol", "HALF", "--timeframe", "1m")
        except CommandError as error:
            said["error"] = str(error)
        finally:
            connections.close_all()

    loader = threading.Thread(target=load)
    loader.start()
    worker = copying(workers)
    with crashed(worker):
        loader.join(timeout=300)
        assert not loader.is_alive()
    assert "did not finish: the database became unavailable" in said.get("error", ""), said
    assert "load the file again once it is back" in said["error"].lower()
    # Nothing of the load on any node: no instrument, no key, no bar, no transaction pending.
    assert not Instrument.objects.filter(symbol="HALF").exists()
    assert instrument_keys() == keys
    assert not MinuteBar.objects.exists()
    assert prepared_transactions(workers) == 0
    record = Ingest.objects.get(symbol="HALF")
    assert record.status == Ingest.Status.FAILED
    assert f"{worker.port}" in record.error_summary  # the operator reads which worker failed
    # Back up, the same file lands whole.
    call_command("ingest_bars", str(path), "--symbol", "HALF", "--timeframe", "1m")
    assert MinuteBar.objects.filter(instrument__symbol="HALF").count() == BARS


def placed_on(worker: LocalWorker, symbols: str) -> Instrument:
    """An instrument whose shard the worker holds (made until one is)."""
    with connection.cursor() as cursor:
        for symbol in symbols:
            made = Instrument.objects.create(symbol=symbol, asset_class="equity")
            cursor.execute(
                "SELECT n.nodeport FROM pg_dist_placement p JOIN pg_dist_node n USING (groupid)"
                " WHERE p.shardid = get_shard_id_for_distribution_column("
                "  'marketdata_minutebar', %s::bigint)",
                [made.id],
            )
            if cursor.fetchone()[0] == worker.port:
                return made
    raise AssertionError(f"none of {symbols} landed on {worker.port}")


def test_with_a_worker_down_the_api_answers_503_and_the_books_still_serve(workers, admin_user):
    worker = workers[-1]
    instrument = placed_on(worker, "ABCDEFGHIJKLMNOP")
    client = APIClient()
    client.force_login(admin_user)
    bar = {"ts": "2026-03-02T14:30:00Z", "open": 10, "high": 11, "low": 9, "close": 10.5}
    body = {"symbol": instrument.symbol, "timeframe": "1m", "bars": [bar]}
    with crashed(worker):
        posted = client.post("/api/v1/bars/", body, format="json")
        read = client.get(f"/api/v1/bars/?symbol={instrument.symbol}&timeframe=1m")
        books = client.get("/api/v1/instruments/")
    for answer in (posted, read):
        assert answer.status_code == 503, answer.content
        assert answer.json()["rule"] == UNAVAILABLE_RULE
        assert str(worker.port) not in answer.content.decode()  # no address to the client
        assert int(answer["Retry-After"]) > 0
    assert books.status_code == 200, books.content
    assert not MinuteBar.objects.exists()
    assert client.post("/api/v1/bars/", body, format="json").status_code == 201
