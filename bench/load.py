"""Load test: a desk's mix of reads and writes from 8 to 32 clients against gunicorn, for a
bounded time, in a throwaway database on the same server; per endpoint the count, p50, p95
and p99 latency and the errors, and the throughput of the whole.

    .venv/bin/python bench/load.py [--clients 8] [--seconds 30] [--warmup 3] [--workers N]

The site is served as in production: gunicorn with the project's settings
(``qvp_site.gunicorn_conf``: sync workers) connecting as ``trading_app``, so row-level
security, the audit trail and the throttles' bookkeeping all run (the throttles' rate is set
out of reach: the bench measures the site, not the throttle). The bench database is made by
Django's test machinery (migrations, ``create_db_roles``) and dropped at the end; the
development data is not touched.

Seeded: 8 instruments with 5 days of minute bars and two years of daily bars (loaded by the
pipeline ``POST /api/v1/bars/`` uses), an account with a large buy and sell order on each,
three agents with a day of signals, and one user with a token per client (in the account's
group, allowed to write bars and signals).

Each client is a thread with its own keep-alive-less ``http.client`` connection (gunicorn's
sync workers close each one), choosing each request at random by ``MIX``'s weights, back to
back, no pause: the figures are those of a saturated server. Requests in the first
``--warmup`` seconds are not counted. A request is an error when its status is not the one
expected (200, or 201 for a write); the first error of each endpoint is printed.

gunicorn runs as many workers as ``make run`` does (GUNICORN_WORKERS, else qvp_site/serve.py's
default) unless ``--workers`` says otherwise.

Then, the load over, one client asks ``SOLO_REQUESTS`` times for an authenticated list of 5
rows (``GET instruments/?page_size=5``): its latency at the client and in the server, as the
server tells it (``Server-Timing: app;dur=``, qvp_site/metrics.py: from the first middleware
to the response, authentication, the throttle and the transaction included).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import statistics
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
# A name of this run's own: two runs at once (helpers share the machine) must not drop each
# other's database.
BENCH_DATABASE = f"bench_qvp_load_{os.getpid()}"
# The throwaway database is made by Django's test machinery under this name.
os.environ["QVP_TEST_DATABASE_NAME"] = BENCH_DATABASE

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.contrib.auth.models import Group, Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.support.served import serving  # noqa: E402
from marketdata.ingest.pipeline import IngestOptions, ingest_rows  # noqa: E402
from marketdata.models import Ingest, Instrument  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.db import partitions  # noqa: E402
from qvp_site.tokens import create_token  # noqa: E402
from signals.models import Agent, Signal  # noqa: E402
from trading.models import Account, Order  # noqa: E402

# `make run`'s gunicorn workers (qvp_site/serve.py), which the bench serves with by default.
MAKE_RUN_WORKERS = int(os.environ.get("GUNICORN_WORKERS", "2"))
SOLO_REQUESTS, SOLO_PATH = 300, "/api/v1/instruments/?page_size=5"
SYMBOLS = ("LD1", "LD2", "LD3", "LD4", "LD5", "LD6", "LD7", "LD8")
AGENTS = ("momentum_agent", "reversion_agent", "news_agent")
SIDES = ("buy", "sell")
DAYS_OF_MINUTES = 5
YEARS_OF_DAYS = 2
# What a desk's users may write beside their account's executions.
WRITES = ("add_minutebar", "change_minutebar", "add_ingest", "add_signal")


@dataclass(frozen=True)
class Seeded:
    """What the clients ask about: the bars' last day, the orders (symbol, side) -> id."""

    day: datetime
    orders: dict[tuple[str, str], int]
    tokens: list[str]


def minute_day() -> datetime:
    """The last whole UTC day before today: its minutes are the ones read."""
    today = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return today - timedelta(days=1)


def seed(clients: int) -> Seeded:
    day = minute_day()
    with acting_as("bench"):
        for symbol in SYMBOLS:
            Instrument.objects.create(symbol=symbol, asset_class="equity", exchange="XBEN")
            load_bars(symbol, Ingest.Kind.BARS_1M, minute_bars(day))
            load_bars(symbol, Ingest.Kind.BARS_1D, daily_bars(day))
        orders = seed_orders()
        seed_signals(day)
        tokens = [desk_token(n) for n in range(clients)]
    return Seeded(day, orders, tokens)


def ohlcv(rng: random.Random, price: float) -> list[object]:
    close = price * (1 + rng.gauss(0, 0.001))
    high, low = max(price, close) * 1.0005, min(price, close) * 0.9995
    return [f"{price:.4f}", f"{high:.4f}", f"{low:.4f}", f"{close:.4f}", rng.randint(100, 10_000)]


def minute_bars(day: datetime) -> list[list[object]]:
    """Trading hours (13:30 to 20:00 UTC) of the ``DAYS_OF_MINUTES`` days up to ``day``."""
    rng = random.Random(1)  # noqa: S311 - synthetic prices, not secrets
    rows = []
    for back in range(DAYS_OF_MINUTES - 1, -1, -1):
        opening = day - timedelta(days=back) + timedelta(hours=13, minutes=30)
        rows += [[opening + timedelta(minutes=m), *ohlcv(rng, 100.0)] for m in range(390)]
    return rows


def daily_bars(day: datetime) -> list[list[object]]:
    rng = random.Random(2)  # noqa: S311 - synthetic prices, not secrets
    days = 365 * YEARS_OF_DAYS
    return [[day - timedelta(days=back), *ohlcv(rng, 100.0)] for back in range(days, 0, -1)]


def load_bars(symbol: str, kind: str, rows: list[list[object]]) -> None:
    header = ("timestamp", "open", "high", "low", "close", "volume")
    ingest_rows(f"bench-load-{symbol}-{kind}", header, rows, IngestOptions(symbol, kind))


def seed_orders() -> dict[tuple[str, str], int]:
    group = Group.objects.create(name="load-desk")
    account = Account.objects.create(name="load")
    account.groups.add(group)
    orders = {}
    for instrument in Instrument.objects.filter(symbol__in=SYMBOLS):
        for side in SIDES:
            order = Order.objects.create(
                account=account,
                instrument=instrument,
                client_order_id=f"{instrument.symbol}-{side}",
                side=side,
                quantity=Decimal(10) ** 9,
            )
            orders[(instrument.symbol, side)] = order.pk
    return orders


def seed_signals(day: datetime) -> None:
    """A signal per agent, instrument and 5 minutes of ``day``."""
    agents = [Agent.objects.create(name=name, kind="momentum") for name in AGENTS]
    instruments = list(Instrument.objects.filter(symbol__in=SYMBOLS))
    times = [day + timedelta(minutes=5 * n) for n in range(288)]
    partitions.prepare_times(Signal._meta.db_table, times)
    Signal.objects.bulk_create(
        Signal(
            agent=agent, instrument=instrument, ts=ts, direction=1, strength=0.4,
            confidence=0.7, horizon=timedelta(days=1), explanation={"reason": "bench"},
        )
        for agent in agents for instrument in instruments for ts in times
    )  # fmt: skip


def desk_token(n: int) -> str:
    user = User.objects.create_user(f"load-{n}")
    user.groups.add(Group.objects.get(name="load-desk"))
    user.user_permissions.add(*Permission.objects.filter(codename__in=WRITES))
    return create_token(user, "bench/load.py")[1]


# --- The mix ------------------------------------------------------------------------------
@dataclass
class Client:
    """One client's state: its number, token, random stream and what it has written."""

    number: int
    clients: int
    token: str
    seeded: Seeded
    rng: random.Random
    sent: int = 0
    bar_batches: int = 0

    def unique(self) -> int:
        """A number no other request of any client uses (for exec ids, bar and signal times)."""
        self.sent += 1
        return self.sent * 100 + self.number

    def symbol(self) -> str:
        return self.rng.choice(SYMBOLS)


Request = tuple[str, str, object | None, int]  # method, path, JSON body, expected status


def get(path: str, **query: object) -> Request:
    return "GET", f"{path}?{urlencode(query)}" if query else path, None, 200


def read_bars(c: Client) -> Request:
    """An hour of a day's minute bars."""
    start = c.seeded.day + timedelta(hours=13, minutes=30) + timedelta(minutes=c.rng.randrange(330))
    end = start + timedelta(hours=1)
    return get("/api/v1/bars/", symbol=c.symbol(), timeframe="1m", start=iso(start), end=iso(end))


def read_buckets(c: Client) -> Request:
    """Hourly buckets over the five days of minutes."""
    end = c.seeded.day + timedelta(days=1)
    start = end - timedelta(days=DAYS_OF_MINUTES)
    return get("/api/v1/bars/buckets/", symbol=c.symbol(), width="1h", start=iso(start),
               end=iso(end))  # fmt: skip


def read_daily(c: Client) -> Request:
    """A year of daily bars."""
    start = c.seeded.day - timedelta(days=365)
    return get("/api/v1/bars/", symbol=c.symbol(), timeframe="1d", start=iso(start))


def read_prices(c: Client) -> Request:
    return get("/api/v1/prices/latest/", symbols=",".join(SYMBOLS))


def read_positions(c: Client) -> Request:
    return get("/api/v1/positions/")


def read_orders(c: Client) -> Request:
    return get("/api/v1/orders/", page_size=50)


def read_executions(c: Client) -> Request:
    return get("/api/v1/executions/", page_size=50)


def read_signals(c: Client) -> Request:
    return get("/api/v1/signals/", agent=c.rng.choice(AGENTS), symbols=c.symbol(), page_size=100)


def write_execution(c: Client) -> Request:
    symbol, side = c.symbol(), c.rng.choice(SIDES)
    size = c.rng.randint(1, 500)
    body = {
        "exec_id": f"load-{c.unique()}", "order": c.seeded.orders[(symbol, side)], "side": side,
        "quantity": str(size if side == "buy" else -size), "price": f"{c.rng.uniform(90, 110):.4f}",
        "fee": f"{size * 0.0035:.4f}", "liquidity": "removed",
        "executed_at": iso(datetime.now(UTC)),
    }  # fmt: skip
    return "POST", "/api/v1/executions/", body, 201


def write_bars(c: Client) -> Request:
    """30 minute bars of a half-hour no client wrote yet, from today on (new rows, inserted),
    where partitions exist ahead of now."""
    slot = c.bar_batches * c.clients + c.number
    c.bar_batches += 1
    start = c.seeded.day + timedelta(days=1, minutes=30 * slot)
    bars = []
    for m in range(30):
        o, h, low, close, volume = ohlcv(c.rng, 100.0)
        ts = iso(start + timedelta(minutes=m))
        bars.append({"ts": ts, "open": o, "high": h, "low": low, "close": close, "volume": volume})
    return "POST", "/api/v1/bars/", {"symbol": c.symbol(), "timeframe": "1m", "bars": bars}, 201


def write_signals(c: Client) -> Request:
    """A batch of 10 signals, one per instrument but two, at a time of its own."""
    ts = iso(c.seeded.day + timedelta(days=1, milliseconds=c.unique()))
    batch = [
        {"agent": c.rng.choice(AGENTS), "symbol": symbol, "ts": ts, "strength": 0.3,
         "confidence": 0.6, "horizon": "1 00:00:00", "explanation": {"reason": "bench"}}
        for symbol in SYMBOLS[:6]
    ]  # fmt: skip
    return "POST", "/api/v1/signals/", batch, 201


# The published mix: (endpoint as reported, weight, request). Reads are most of a desk's
# traffic (charts, prices, books, signals); writes are fills, bar batches and signal batches.
MIX: list[tuple[str, int, Callable[[Client], Request]]] = [
    ("GET bars/ (1m, an hour)", 18, read_bars),
    ("GET bars/ (1d, a year)", 6, read_daily),
    ("GET bars/buckets/ (1h, 5 days)", 10, read_buckets),
    ("GET prices/latest/ (8 symbols)", 16, read_prices),
    ("GET positions/", 10, read_positions),
    ("GET orders/", 5, read_orders),
    ("GET executions/", 5, read_executions),
    ("GET signals/", 10, read_signals),
    ("POST executions/ (1 fill)", 12, write_execution),
    ("POST bars/ (30 bars)", 4, write_bars),
    ("POST signals/ (6 signals)", 4, write_signals),
]


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


# --- Running it ---------------------------------------------------------------------------
@dataclass
class Results:
    """Latencies (ms) and errors per endpoint, filled by every client under a lock."""

    latencies: dict[str, list[float]] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    first_error: dict[str, str] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, name: str, ms: float, error: str | None) -> None:
        with self.lock:
            self.latencies.setdefault(name, []).append(ms)
            if error is not None:
                self.errors[name] = self.errors.get(name, 0) + 1
                self.first_error.setdefault(name, error)


def run_client(port: int, client: Client, window: tuple[float, float], results: Results) -> None:
    """Requests back to back until the window's end; those started in it are counted."""
    counted_from, stop_at = window
    names, weights, makers = zip(*MIX, strict=True)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {client.token}", "Content-Type": "application/json"}
    while (started := time.perf_counter()) < stop_at:
        index = client.rng.choices(range(len(MIX)), weights=weights)[0]
        method, path, body, expected = makers[index](client)
        error = send(conn, headers, method, path, body, expected)
        if started >= counted_from:
            results.record(names[index], (time.perf_counter() - started) * 1000, error)
    conn.close()


def send(conn, headers: dict, method: str, path: str, body: object, expected: int) -> str | None:
    """One request; None, or what went wrong."""
    try:
        conn.request(method, path, None if body is None else json.dumps(body), headers)
        response = conn.getresponse()
        payload = response.read()
    except (OSError, http.client.HTTPException) as error:
        conn.close()
        return f"{type(error).__name__}: {error}"
    if response.status != expected:
        return f"{response.status} {payload[:300].decode(errors='replace')}"
    return None


def run(port: int, seeded: Seeded, args: argparse.Namespace) -> Results:
    results = Results()
    clients = len(seeded.tokens)
    begin = time.perf_counter()
    window = (begin + args.warmup, begin + args.warmup + args.seconds)
    threads = [
        threading.Thread(
            target=run_client,
            args=(port, Client(n, clients, token, seeded, random.Random(n)), window, results),  # noqa: S311
        )
        for n, token in enumerate(seeded.tokens)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def run_solo(port: int, token: str) -> tuple[list[float], list[float]]:
    """One client, ``SOLO_REQUESTS`` lists of 5 instruments: (client ms, server ms)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"Authorization": f"Token {token}"}
    at_client, in_server = [], []
    for _ in range(SOLO_REQUESTS):
        started = time.perf_counter()
        conn.request("GET", SOLO_PATH, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        at_client.append((time.perf_counter() - started) * 1000)
        if response.status != 200 or len(json.loads(payload)["results"]) != 5:
            raise SystemExit(f"{SOLO_PATH}: {response.status} {payload[:300]!r}")
        took = server_ms(response.getheader("Server-Timing", ""))
        if took is not None:
            in_server.append(took)
    conn.close()
    return at_client, in_server


def server_ms(header: str) -> float | None:
    """``app;dur=1.23`` -> 1.23; None from a site that does not say (an older version)."""
    for metric in header.split(","):
        name, _, duration = metric.strip().partition(";dur=")
        if name == "app":
            return float(duration)
    return None


def report_solo(at_client: list[float], in_server: list[float]) -> None:
    print(
        f"\n1 client, GET {SOLO_PATH.removeprefix('/api/v1/')} (5 rows), {len(at_client)} requests"
    )
    print(f"{'measured':<32} {'':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8}")
    print(f"{'at the client':<32} {'':>7} {cuts(at_client)}")
    print(f"{'in the server (Server-Timing)':<32} {'':>7} {cuts(in_server)}")


def report(results: Results, seconds: float, clients: int, workers: int) -> None:
    print(f"\n{clients} clients, {workers} gunicorn workers, {seconds:.0f} s counted")
    print(f"{'endpoint':<32} {'count':>7} {'p50 ms':>8} {'p95 ms':>8} {'p99 ms':>8} {'errors':>7}")
    total = errors = 0
    for name, _, _ in MIX:
        latencies = results.latencies.get(name, [])
        total += len(latencies)
        errors += results.errors.get(name, 0)
        print(f"{name:<32} {len(latencies):>7,} {cuts(latencies)} {results.errors.get(name, 0):>7}")
    every = [ms for found in results.latencies.values() for ms in found]
    print(f"{'all':<32} {total:>7,} {cuts(every)} {errors:>7}")
    print(f"throughput: {total / seconds:,.1f} requests/s ({errors:,} errors)")
    for name, error in results.first_error.items():
        print(f"first error of {name}: {error}")


def cuts(latencies: list[float]) -> str:
    if len(latencies) < 2:
        return f"{'-':>8} {'-':>8} {'-':>8}"
    found = statistics.quantiles(latencies, n=100, method="inclusive")
    return f"{found[49]:>8.1f} {found[94]:>8.1f} {found[98]:>8.1f}"


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients (8 to 32)")
    parser.add_argument("--seconds", type=float, default=30.0, help="time counted")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not counted first")
    parser.add_argument(
        "--workers", type=int, default=MAKE_RUN_WORKERS, help="gunicorn workers (make run's)"
    )
    args = parser.parse_args()
    if not 1 <= args.clients <= 64 or args.seconds <= 0 or args.warmup < 0 or args.workers < 1:
        parser.error("--clients 1..64, --seconds > 0, --warmup >= 0, --workers >= 1")
    return args


def main() -> int:
    args = arguments()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("create_db_roles", stdout=StringIO())
        started = time.perf_counter()
        seeded = seed(args.clients)
        print(f"seeded in {time.perf_counter() - started:.1f} s")
        connection.close()  # the served site's workers are the database's only clients now
        with serving(args.workers, BENCH_DATABASE) as port:
            results = run(port, seeded, args)
            solo = run_solo(port, seeded.tokens[0])
        report(results, args.seconds, args.clients, args.workers)
        report_solo(*solo)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
