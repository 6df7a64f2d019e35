"""A kill mid-write loses nothing (issue 19): PostgreSQL stopped with ``pg_ctl stop -m
immediate`` in the middle of an ingest of a million bars, of an execution batch and of
``build_embeddings``, then restarted. Each write landed whole or left nothing, positions and
cash equal the replay of their executions, the server's log says it recovered, and
``verify_audit`` passes.

Everything runs on a scratch server of the module's own (``QVP_VAR_DIR`` in a temporary
folder, no ``DATABASE_URL``), never the suite's: the commands run as subprocesses, as an
operator runs them, and die with a connection error when the server goes. The moment of each
crash is drawn from a seeded generator (``QVP_CRASH_SEED`` replays one; the seed is printed);
where a random moment could miss the window that matters, a lock held by the test holds the
write there instead.
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.scratch_site import ScratchSite, scratch_site
from trading.replay import replay
from vectors.store import BUILD_LOCK

ROOT = Path(__file__).resolve().parents[2]
BARS = 1_000_000
BAR_SYMBOL = "CRASH.BARS"
EMBED_SYMBOL = "CRASH.EMB"
EMBED_MINUTES = 40_000  # about 2,600 feature windows: a build of a second or two
EMBED_DAYS = 120  # daily bars, so that the build's second transaction (regimes) writes too
ACCOUNTS = ("crash-a", "crash-b", "crash-c")
SYMBOLS = {"CRASH.X": "1", "CRASH.Y": "1", "CRASH.FUT": "50"}  # symbol -> multiplier
EXECUTIONS = 4_000
# What the server's log says when it starts from a crash, and when it is back.
RECOVERY = "database system was not properly shut down; automatic recovery in progress"
READY = "database system is ready to accept connections"


def _seed() -> int:
    given = os.environ.get("QVP_CRASH_SEED")
    return int(given) if given else random.SystemRandom().randrange(2**32)


SEED = _seed()


@pytest.fixture(scope="module")
def rng() -> random.Random:
    print(f"\ncrash recovery: QVP_CRASH_SEED={SEED}")
    return random.Random(SEED)


@pytest.fixture(scope="module")
def site() -> Iterator[ScratchSite]:
    """A prepared scratch site: migrated, its roles made, its audit signing key made."""
    with scratch_site("crash") as scratch:
        scratch.manage("migrate", "-v", "0", timeout=600)
        scratch.manage("create_db_roles")
        scratch.manage("audit_key", "--create")
        yield scratch


def crash_when(
    site: ScratchSite, process: subprocess.Popen[str], ready: Callable[[], bool], delay: float
) -> str:
    """Crash the server ``delay`` seconds after ``ready()`` holds while ``process`` runs, and
    restart it; the server's log of its recovery. Fails if the process ends first."""
    deadline = time.monotonic() + 120
    while not ready():
        if process.poll() is not None:
            pytest.fail(f"finished before the moment of the crash:\n{process.communicate()[0]}")
        if time.monotonic() > deadline:
            process.kill()
            pytest.fail("the moment of the crash never came")
        time.sleep(0.02)
    time.sleep(delay)
    logged = len(site.log())
    site.crash()
    output = process.communicate(timeout=120)[0]
    print(f"  the command, cut short (exit {process.returncode}): {output.strip()[-200:]}")
    site.restart()  # if the command has not already (its next connection starts the server)
    recovered = site.log()[logged:]
    assert RECOVERY in recovered, recovered
    assert READY in recovered, recovered
    assert "PANIC" not in recovered, recovered
    return recovered


def active(site: ScratchSite, pattern: str, *, waiting: bool = False) -> bool:
    """Whether another backend runs a statement matching ``pattern`` (waiting on a lock)."""
    wait = "AND wait_event_type = 'Lock'" if waiting else ""
    found = site.query(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid()"
        f" AND state = 'active' AND query ILIKE %s {wait}",
        (pattern,),
    )
    return bool(found[0][0])


# --- 1. an ingest of a million bars ------------------------------------------------------------


def write_bars(path: Path, rows: int, start: datetime, step: timedelta, seed: int) -> Path:
    """``rows`` valid OHLCV bars, a random walk, in the ``timestamp,open,...`` layout."""
    walk = random.Random(seed)
    close, lines = 100.0, ["timestamp,open,high,low,close,volume\n"]
    for i in range(rows):
        open_, close = close, close * (1 + walk.uniform(-0.001, 0.001))
        high, low = max(open_, close) * 1.0005, min(open_, close) * 0.9995
        ts = (start + i * step).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(f"{ts},{open_:.4f},{high:.4f},{low:.4f},{close:.4f},{1 + i % 997}\n")
    path.write_text("".join(lines))
    return path


def bars_of(site: ScratchSite, symbol: str) -> tuple[int, float, float]:
    """Count, total volume and sum of closes of an instrument's minute bars."""
    (found,) = site.query(
        "SELECT count(*), coalesce(sum(volume), 0), coalesce(sum(close), 0)"
        " FROM marketdata_minutebar b JOIN marketdata_instrument i ON i.id = b.instrument_id"
        " WHERE i.symbol = %s",
        (symbol,),
    )
    return found


def aggregates_of(site: ScratchSite, symbol: str) -> dict[str, tuple[int, float]]:
    """Per summary table of minute bars: bars counted and volume summed for ``symbol``."""
    found = {}
    for table in ("marketdata_minutebar_1h", "marketdata_minutebar_1d"):
        (row,) = site.query(
            f"SELECT coalesce(sum(bar_count), 0), coalesce(sum(volume), 0) FROM {table} a"
            " JOIN marketdata_instrument i ON i.id = a.instrument_id WHERE i.symbol = %s",
            (symbol,),
        )
        found[table] = row
    return found


@pytest.fixture(scope="module")
def million_bars(tmp_path_factory: pytest.TempPathFactory) -> Path:
    start = datetime(2021, 1, 4, tzinfo=UTC)
    folder = tmp_path_factory.mktemp("bars")
    return write_bars(folder / "bars.csv", BARS, start, timedelta(minutes=1), seed=1)


def ingest(path: Path, symbol: str, timeframe: str = "1m") -> list[str]:
    return ["ingest_bars", str(path), "--symbol", symbol, "--timeframe", timeframe]


def test_an_ingest_of_a_million_bars_lands_whole_or_not_at_all(site, million_bars, rng):
    with site.connect() as conn:
        conn.execute("CHECKPOINT")  # the recovery replays this ingest's WAL only
    delay = rng.uniform(0.0, 3.0)
    print(f"  ingest: crash {delay:.2f} s into the write of the bars")
    process = site.start(*ingest(million_bars, BAR_SYMBOL))
    crash_when(site, process, lambda: active(site, "%INSERT INTO %marketdata_minutebar%"), delay)

    count, _, _ = bars_of(site, BAR_SYMBOL)
    print(f"  ingest: after the crash, {count:,} bars")
    assert count in (0, BARS)

    site.manage(*ingest(million_bars, BAR_SYMBOL))
    landed = bars_of(site, BAR_SYMBOL)
    assert landed[0] == BARS
    again = site.manage(*ingest(million_bars, BAR_SYMBOL))
    assert "0 inserted, 0 revised, 1,000,000 unchanged" in again
    assert bars_of(site, BAR_SYMBOL) == landed
    # The summaries of the bars: what a crash after the commit left for `maintain`.
    site.manage("maintain")
    for table, (bars, volume) in aggregates_of(site, BAR_SYMBOL).items():
        assert (bars, volume) == (BARS, landed[1]), table


def test_a_crash_between_the_bars_commit_and_their_summaries_leaves_them_to_maintain(
    site, tmp_path
):
    """The ingest refreshes its range's summary tables after its commit: held there (by the
    advisory lock the refresh takes), the crash finds the bars committed and their summaries
    not. The range must be recorded as pending with the bars, for `maintain` to refresh."""
    path = write_bars(
        tmp_path / "later.csv", 5_000, datetime(2024, 3, 4, tzinfo=UTC), timedelta(minutes=1), 2
    )
    symbol = "CRASH.LATE"
    holder = site.connect()
    holder.execute("BEGIN")
    holder.execute("SELECT pg_advisory_xact_lock(hashtext('qvp_agg:marketdata_minutebar_1h'))")
    process = site.start(*ingest(path, symbol))
    held = "%pg_advisory_xact_lock%"
    crash_when(site, process, lambda: active(site, held, waiting=True), 0.0)
    holder.close()

    count, volume, _ = bars_of(site, symbol)
    assert count == 5_000  # committed before the crash
    # The load stands, and its record says so: its rows, and the summaries left to maintain.
    ((status, inserted, note),) = site.query(
        "SELECT status, inserted, error_summary FROM marketdata_ingest WHERE symbol = %s",
        (symbol,),
    )
    assert (status, inserted) == ("loaded", 5_000)
    assert note.startswith("summaries left to the next maintain"), note
    site.manage("maintain")
    for table, found in aggregates_of(site, symbol).items():
        assert found == (5_000, volume), table


# --- 2. an execution batch ---------------------------------------------------------------------

SETUP_BOOKS = """
from decimal import Decimal
from marketdata.models import Instrument
from qvp_site.acting import acting_as
from trading.models import Account, Order
with acting_as("crash_test"):
    for symbol, multiplier in {symbols!r}.items():
        kind = "equity" if multiplier == "1" else "future"
        Instrument.objects.create(symbol=symbol, asset_class=kind, multiplier=Decimal(multiplier))
    for name in {accounts!r}:
        account = Account.objects.create(name=name)
        for symbol in {symbols!r}:
            instrument = Instrument.objects.get(symbol=symbol)
            for side in ("buy", "sell"):
                Order.objects.create(account=account, instrument=instrument, side=side,
                                     client_order_id=f"{{symbol}}-{{side}}",
                                     quantity=Decimal(10_000_000))
"""


def write_executions(path: Path, first: int, count: int, rng: random.Random) -> Path:
    """``count`` fills over every account and instrument, buys and sells (positions that
    grow, shrink and flip), exec ids from ``first``."""
    lines = ["exec_id,account,client_order_id,symbol,side,quantity,price,executed_at,fee\n"]
    start = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)
    for n in range(first, first + count):
        account, symbol = rng.choice(ACCOUNTS), rng.choice(list(SYMBOLS))
        side = rng.choice(("buy", "sell"))
        quantity = rng.randint(1, 500) * (1 if side == "buy" else -1)
        price = Decimal(rng.randint(5_000, 15_000)) / 100
        fee = Decimal(rng.randint(0, 300)) / 100
        at = (start + timedelta(seconds=n)).isoformat()
        lines.append(
            f"x{n},{account},{symbol}-{side},{symbol},{side},{quantity},{price},{at},{fee}\n"
        )
    path.write_text("".join(lines))
    return path


POSITIONS_AGAINST_THEIR_REPLAY = """
SELECT p.account_id, p.instrument_id, p.quantity, r.quantity, p.average_cost, r.average_cost,
       p.realized_pnl, r.realized_pnl
FROM trading_position p
JOIN marketdata_instrument i ON i.id = p.instrument_id
CROSS JOIN LATERAL trading_replay_position(p, 0, NULL::trading_execution, i.multiplier) r
WHERE (p.quantity, p.average_cost, p.realized_pnl)
      IS DISTINCT FROM (r.quantity, r.average_cost, r.realized_pnl)
   OR p.last_sequence <> (SELECT count(*) FROM trading_execution e
                          WHERE e.account_id = p.account_id AND e.instrument_id = p.instrument_id)
"""
# Each execution's cash: its trade and its fee, nothing else, and no entry without one.
CASH_AGAINST_EXECUTIONS = """
WITH expected AS (
    SELECT e.id, e.account_id, x.kind, x.amount
    FROM trading_execution e JOIN marketdata_instrument i ON i.id = e.instrument_id
    CROSS JOIN LATERAL (VALUES ('trade', round(-e.quantity * e.price * i.multiplier, 8)),
                               ('fee', -e.fee)) AS x (kind, amount)
    WHERE x.amount <> 0
), booked AS (
    SELECT execution_id AS id, account_id, kind, amount FROM trading_cashentry
    WHERE kind IN ('trade', 'fee')
)
SELECT 'missing', * FROM (SELECT * FROM expected EXCEPT ALL SELECT * FROM booked) AS m
UNION ALL
SELECT 'extra', * FROM (SELECT * FROM booked EXCEPT ALL SELECT * FROM expected) AS x
"""


def books_state(site: ScratchSite) -> tuple[int, int, int]:
    (found,) = site.query(
        "SELECT (SELECT count(*) FROM trading_execution), (SELECT count(*) FROM"
        " trading_cashentry), (SELECT coalesce(sum(filled_quantity), 0) FROM trading_order)"
    )
    return found


def assert_positions_are_the_replay_of_their_executions(site: ScratchSite) -> None:
    assert site.query(POSITIONS_AGAINST_THEIR_REPLAY) == []
    assert site.query(CASH_AGAINST_EXECUTIONS) == []
    # And against the Python reference (trading/replay.py), independent of the database's.
    fills = site.query(
        "SELECT e.account_id, e.instrument_id, e.quantity, e.price, i.multiplier"
        " FROM trading_execution e JOIN marketdata_instrument i ON i.id = e.instrument_id"
        " ORDER BY e.account_id, e.instrument_id, e.position_sequence"
    )
    by_position: dict[tuple[int, int], list[tuple[Decimal, Decimal]]] = {}
    multipliers = {}
    for account, instrument, quantity, price, multiplier in fills:
        by_position.setdefault((account, instrument), []).append((quantity, price))
        multipliers[account, instrument] = multiplier
    kept = site.query(
        "SELECT account_id, instrument_id, quantity, average_cost, realized_pnl"
        " FROM trading_position"
    )
    assert {(a, i): (q, c, p) for a, i, q, c, p in kept} == {
        key: replay(steps, multipliers[key]) for key, steps in by_position.items()
    }
    # Every order's filled quantity is the sum of its executions.
    assert (
        site.query(
            "SELECT o.id FROM trading_order o WHERE o.filled_quantity <> (SELECT"
            " coalesce(sum(abs(e.quantity)), 0) FROM trading_execution e WHERE e.order_id = o.id)"
        )
        == []
    )


def test_an_execution_batch_lands_whole_or_not_at_all(site, rng, tmp_path):
    site.manage("shell", "-c", SETUP_BOOKS.format(symbols=SYMBOLS, accounts=ACCOUNTS), timeout=120)
    site.manage("import_executions", str(write_executions(tmp_path / "a.csv", 0, 500, rng)))
    before = books_state(site)
    assert before[0] == 500
    batch = write_executions(tmp_path / "b.csv", 500, EXECUTIONS, rng)

    # Held mid-import: the import's statement that writes cash entries (the booking's) waits
    # for this lock, nothing committed; the crash comes while it waits.
    holder = site.connect()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE trading_cashentry IN SHARE MODE")
    process = site.start("import_executions", str(batch))
    waiting = "%"  # the import's statement, whichever waits for the lock
    crash_when(site, process, lambda: active(site, waiting, waiting=True), rng.uniform(0, 0.2))
    holder.close()

    assert books_state(site) == before
    assert_positions_are_the_replay_of_their_executions(site)

    booked = site.manage("import_executions", str(batch))
    assert f"{EXECUTIONS:,} booked" in booked
    assert books_state(site)[0] == 500 + EXECUTIONS
    again = site.manage("import_executions", str(batch))
    assert f"0 booked, {EXECUTIONS:,} already booked" in again
    assert_positions_are_the_replay_of_their_executions(site)


# --- 3. build_embeddings -----------------------------------------------------------------------

VECTOR_TABLES = ("vectors_featureembedding", "vectors_volatilityregime", "vectors_featureset")


def schema_of(site: ScratchSite) -> list[tuple[Any, ...]]:
    """The vector tables' indexes and constraints (a first load sets some aside)."""
    return site.query(
        "SELECT tablename, indexdef FROM pg_indexes WHERE tablename = ANY(%s)"
        " UNION ALL SELECT conrelid::regclass::text, pg_get_constraintdef(oid)"
        " FROM pg_constraint WHERE conrelid::regclass::text = ANY(%s) ORDER BY 1, 2",
        (list(VECTOR_TABLES), list(VECTOR_TABLES)),
    )


def vectors_of(site: ScratchSite, symbol: str) -> tuple[int, int, int]:
    """An instrument's feature embeddings and regime signatures, and the feature sets."""
    (found,) = site.query(
        "SELECT (SELECT count(*) FROM vectors_featureembedding v JOIN marketdata_instrument i"
        " ON i.id = v.instrument_id WHERE i.symbol = %s),"
        " (SELECT count(*) FROM vectors_volatilityregime v JOIN marketdata_instrument i"
        " ON i.id = v.instrument_id WHERE i.symbol = %s),"
        " (SELECT count(*) FROM vectors_featureset)",
        (symbol, symbol),
    )
    return found


def orphans(site: ScratchSite) -> list[tuple[Any, ...]]:
    """Rows of the vector tables whose feature set or instrument is missing."""
    found = []
    for table in VECTOR_TABLES[:2]:
        found += site.query(
            f"SELECT %s, v.id FROM {table} v WHERE NOT EXISTS"
            " (SELECT FROM vectors_featureset s WHERE s.id = v.feature_set_id)"
            " OR NOT EXISTS (SELECT FROM marketdata_instrument i WHERE i.id = v.instrument_id)",
            (table,),
        )
    return found


def building(site: ScratchSite) -> bool:
    """Whether a build holds its lock (vectors.store.BUILD_LOCK): its transaction began."""
    high, low = divmod(BUILD_LOCK, 2**32)
    (found,) = site.query(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = %s AND objid = %s",
        (high, low),
    )
    return bool(found[0])


def bars_to_embed(
    site: ScratchSite, folder: Path, symbol: str, seed: int, minutes: int = EMBED_MINUTES
) -> list[str]:
    """Minute bars for feature windows and daily bars for regimes; the build's command."""
    start = datetime(2023, 1, 2, tzinfo=UTC)
    bars = write_bars(folder / f"{symbol}.m.csv", minutes, start, timedelta(minutes=1), seed)
    days = write_bars(
        folder / f"{symbol}.d.csv", EMBED_DAYS, start - timedelta(days=80), timedelta(days=1), seed
    )
    site.manage(*ingest(bars, symbol))
    site.manage(*ingest(days, symbol, "1d"))
    return ["build_embeddings", "--symbol", symbol, "--no-progress"]


def test_build_embeddings_lands_whole_or_not_at_all(site, rng, tmp_path):
    """The command commits twice: the feature embeddings (a first load drops the vector index
    and the foreign keys and restores them, in its transaction), then the regimes. A crash in
    either leaves that transaction's rows whole or absent, and a re-run completes."""
    build = bars_to_embed(site, tmp_path, EMBED_SYMBOL, 3)
    schema = schema_of(site)
    assert vectors_of(site, EMBED_SYMBOL) == (0, 0, 0)  # the first load: the bulk path

    delay = rng.uniform(0.0, 0.8)
    print(f"  build_embeddings: crash {delay:.2f} s after its transaction began")
    crash_when(site, site.start(*build), lambda: building(site), delay)
    crashed = vectors_of(site, EMBED_SYMBOL)
    print(f"  build_embeddings: after the crash, (embeddings, regimes, sets) = {crashed}")
    assert schema_of(site) == schema  # what the load set aside came back with the crash
    assert orphans(site) == []

    site.manage(*build)
    built = vectors_of(site, EMBED_SYMBOL)
    assert built[0] > 0
    assert built[1] > 0
    assert built[2] == 2
    assert crashed[0] in (0, built[0])
    assert crashed[1] in (0, built[1])
    assert crashed[2] == (crashed[0] > 0) + (crashed[1] > 0)  # no set without its rows
    assert_built_once(site, build, EMBED_SYMBOL, built)
    assert schema_of(site) == schema


def test_build_embeddings_cut_between_its_two_commits_is_completed_by_a_re_run(site, tmp_path):
    """Held at the regimes' COPY (a lock the test holds): the embeddings have committed, the
    regimes not; the crash leaves the one whole and the other absent, and a re-run adds
    exactly the regimes."""
    symbol = "CRASH.EMB2"
    build = bars_to_embed(site, tmp_path, symbol, 5, minutes=EMBED_MINUTES // 4)
    holder = site.connect()
    holder.execute("BEGIN")
    holder.execute("LOCK TABLE vectors_volatilityregime IN SHARE MODE")
    waiting = "%COPY %vectors_volatilityregime%"
    crash_when(site, site.start(*build), lambda: active(site, waiting, waiting=True), 0.0)
    holder.close()
    embedded_rows, regimes, _ = vectors_of(site, symbol)
    assert embedded_rows > 0
    assert regimes == 0

    site.manage(*build)
    built = vectors_of(site, symbol)
    assert built[0] == embedded_rows
    assert built[1] > 0
    assert orphans(site) == []


def assert_built_once(
    site: ScratchSite, build: list[str], symbol: str, built: tuple[int, int, int]
) -> None:
    """A further run finds nothing to add, and nothing is left without its feature set."""
    again = site.manage(*build)
    assert "0 feature embeddings written" in again
    assert "0 regime signatures written" in again
    assert vectors_of(site, symbol) == built
    assert orphans(site) == []


# --- after the crashes -------------------------------------------------------------------------


def test_the_audit_chain_verifies_after_the_crashes(site):
    site.manage("seal_audit")
    verified = site.manage("verify_audit")
    assert "audit chain intact" in verified
