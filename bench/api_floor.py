"""The API's floor on this machine: Django 5.2 and DRF with none of QVP's own work, on the same
gunicorn and PostgreSQL, beside QVP's own endpoints measured the same way in the same run
(issue 27's goals: an authenticated list of 5 rows under 3 ms in the server; executions
through the API >= 250/s with 8 clients).

    .venv/bin/python bench/api_floor.py [--clients 8] [--seconds 20] [--warmup 3] [--rounds 4]
                                        [--list-workers 2] [--post-workers 4]

The floor (bench/support/floor_site.py, floor_views.py) is served by gunicorn as the site is
(``qvp_site.gunicorn_conf``: sync workers; the site's connection settings, as
``trading_app``), on trivial ``floor_*`` tables of the bench's throwaway database. Its token
is one SELECT by primary key of the key's SHA-256; its one middleware times the request.

- list: ``GET floor/items/``, 5 rows by ModelSerializer and a plain ListAPIView (autocommit,
  no pagination), against QVP's ``GET instruments/?page_size=5`` (bench/load.py's last part):
  one client, ``SOLO_REQUESTS`` counted of each after ``WARM_REQUESTS`` not, p50/p95 at the
  client and in the server (``Server-Timing: app;dur=``: from the floor's one middleware, the
  site's first, to the response);
- write: ``POST floor/fills/``, one row by ModelSerializer and a CreateAPIView in
  ``transaction.atomic()`` (synchronous_commit as the server has it, printed), against QVP's
  ``POST executions/`` of one fill (bench/executions.py's bodies, books and tokens, its audit
  sealer beside; afterwards the chain is verified and the positions replayed): ``--clients``
  clients back to back, requests/s and p50/p95 over ``--seconds`` counted per site.

The machine is shared: both sites are served at once and asked in ``--rounds`` turns that
alternate between them (the first turn of each after ``--warmup`` seconds not counted), so a
neighbour's burst falls on both; the POSTs' rate of each turn is printed. Workers: the list
with bench/load.py's default (``make run``'s: GUNICORN_WORKERS, else 2), the writes with
bench/executions.py's (4). The throwaway database (every migration, as Django's test machinery
makes it) is dropped at the end. A ratio in one run, not a test.
"""

from __future__ import annotations

import argparse
import http.client
import itertools
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
# A name of this run's own: bench/executions.py's may be in use by another run at once.
BENCH_DATABASE = f"bench_qvp_floor_{os.getpid()}"
os.environ["QVP_TEST_DATABASE_NAME"] = BENCH_DATABASE

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

# Both set QVP_TEST_DATABASE_NAME (to their names) when imported: the settings have read
# this run's already, and it is set back below for good measure.
import bench.executions as executions  # noqa: E402
from bench.load import MAKE_RUN_WORKERS, SOLO_PATH, SOLO_REQUESTS, server_ms  # noqa: E402

os.environ["QVP_TEST_DATABASE_NAME"] = BENCH_DATABASE

from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from bench.support.served import free_port, server_env, serving, wait_healthy  # noqa: E402
from marketdata.models import Instrument  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.db import roles  # noqa: E402

FLOOR_LIST, FLOOR_POST = "/floor/items/", "/floor/fills/"
WARM_REQUESTS = 50
# The floor's tables, made by the owner; the served floor connects as the site's role.
FLOOR_TABLES = f"""
CREATE TABLE floor_token (digest text PRIMARY KEY, user_id integer NOT NULL);
CREATE TABLE floor_item (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, symbol text NOT NULL,
    name text NOT NULL, price numeric(18, 6) NOT NULL, listed_at timestamptz NOT NULL);
CREATE TABLE floor_fill (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, exec_id text NOT NULL,
    quantity numeric(18, 6) NOT NULL, price numeric(18, 6) NOT NULL,
    executed_at timestamptz NOT NULL);
INSERT INTO floor_item (symbol, name, price, listed_at)
    SELECT 'FLR' || n, 'Floor item ' || n, 100 + n / 7.0, now() FROM generate_series(1, 8) n;
GRANT SELECT ON floor_token, floor_item TO {roles.APP_ROLE};
GRANT SELECT, INSERT ON floor_fill TO {roles.APP_ROLE};
"""
Call = Callable[[http.client.HTTPConnection, int], tuple[int, bytes]]  # a client's request
Latencies = tuple[list[float], list[float]]  # ms at the client, ms in the server


@dataclass
class Timed:
    """Latencies (ms) of the requests counted, and the failures (status, body) of all."""

    latencies: list[float] = field(default_factory=list)
    failures: list[tuple[int, bytes]] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)  # requests/s of each turn
    lock: threading.Lock = field(default_factory=threading.Lock)


def seed() -> tuple[executions.OrderIds, list[str], list]:
    """bench/executions.py's books (an account, its orders, 16 tokens), 4 more instruments
    for a list of 5, and the floor's tables with the same tokens' digests."""
    account, orders, tokens = executions.setup_books()
    with acting_as("bench"):
        for n in range(4):
            Instrument.objects.create(symbol=f"FL{n}", asset_class="equity", exchange="XBEN")
    with connection.cursor() as cursor:
        cursor.execute(FLOOR_TABLES)
        cursor.executemany(
            "INSERT INTO floor_token VALUES (encode(sha256(convert_to(%s, 'UTF8')), 'hex'), %s)",
            [(token, n) for n, token in enumerate(tokens)],
        )
    by_key = {
        (s, side): orders[s][side].pk for s in executions.SYMBOLS for side in executions.SIDES
    }
    return by_key, tokens, [account]


@contextmanager
def serving_floor(workers: int) -> Iterator[int]:
    """The floor under gunicorn as bench.support.served.serving serves the site: its
    settings, the site's gunicorn settings and role, the bench database; yields the port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as cache:
        env = {**server_env(cache, BENCH_DATABASE),
               "DJANGO_SETTINGS_MODULE": "bench.support.floor_site"}  # fmt: skip
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "django.core.wsgi:get_wsgi_application()",
             "-c", "python:qvp_site.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "warning",
             "--control-socket", os.path.join(cache, "gunicorn.ctl")],
            cwd=ROOT, env=env,
        )  # fmt: skip
        try:
            wait_healthy(port)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


def ask(port: int, token: str, path: str, count: int) -> tuple[list[float], list[float]]:
    """One client, ``count`` GETs of ``path`` (5 rows each): (ms at the client, ms in the
    server)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    at_client, in_server = [], []
    for _ in range(count):
        started = time.perf_counter()
        conn.request("GET", path, headers={"Authorization": f"Token {token}"})
        response = conn.getresponse()
        payload = response.read()
        at_client.append((time.perf_counter() - started) * 1000)
        body = json.loads(payload) if response.status == 200 else None
        rows = body["results"] if isinstance(body, dict) else body
        if rows is None or len(rows) != 5:
            raise SystemExit(f"{path}: {response.status} {payload[:300]!r}")
        in_server.append(server_ms(response.getheader("Server-Timing", "")) or float("nan"))
    conn.close()
    return at_client, in_server


def lists(sites: dict[str, tuple[int, str]], token: str, rounds: int) -> dict[str, Latencies]:
    """One client asking each site (name -> port, path) ``WARM_REQUESTS`` not counted, then
    ``SOLO_REQUESTS`` counted, in ``rounds`` turns that alternate between the sites: a
    neighbour's burst on the shared machine falls on both."""
    found: dict[str, Latencies] = {name: ([], []) for name in sites}
    for port, path in sites.values():
        ask(port, token, path, WARM_REQUESTS)
    for _ in range(rounds):
        for name, (port, path) in sites.items():
            at_client, in_server = ask(port, token, path, SOLO_REQUESTS // rounds)
            found[name][0].extend(at_client)
            found[name][1].extend(in_server)
    return found


def hammer(port: int, call: Call, timed: Timed, clients: int, window: tuple[float, float]) -> None:
    """``clients`` clients calling back to back for ``window`` (seconds not counted, then
    counted); the requests started in the counted part go to ``timed`` (201 expected)."""
    begin = time.perf_counter()
    counted_from, stop_at = begin + window[0], begin + window[0] + window[1]
    counted = len(timed.latencies)

    def client(number: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        while (started := time.perf_counter()) < stop_at:
            status, answer = call(conn, number)
            took = (time.perf_counter() - started) * 1000
            with timed.lock:
                if status != 201:
                    timed.failures.append((status, answer[:300]))
                elif started >= counted_from:
                    timed.latencies.append(took)
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if timed.failures:
        raise SystemExit(f"{len(timed.failures)} requests failed, first: {timed.failures[0]}")
    timed.rates.append((len(timed.latencies) - counted) / window[1])


def writes(sites: dict[str, tuple[int, Call]], args: argparse.Namespace) -> dict[str, Timed]:
    """Each site (name -> port, call) hammered in ``args.rounds`` turns that alternate between
    them, ``args.seconds`` counted in all; ``args.warmup`` not counted before each one's first."""
    found = {name: Timed() for name in sites}
    for turn in range(args.rounds):
        for name, (port, call) in sites.items():
            window = (args.warmup if turn == 0 else 0.0, args.seconds / args.rounds)
            hammer(port, call, found[name], args.clients, window)
    return found


def floor_call(tokens: list[str]) -> Call:
    """A row of the floor's trivial table; each client numbers its own."""
    sent = [itertools.count() for _ in tokens]

    def call(conn: http.client.HTTPConnection, client: int) -> tuple[int, bytes]:
        body = {"exec_id": f"floor{client}-{next(sent[client])}", "quantity": "10",
                "price": "101.25", "executed_at": "2024-05-13T13:30:00Z"}  # fmt: skip
        headers = {"Authorization": f"Token {tokens[client]}", "Content-Type": "application/json"}
        conn.request("POST", FLOOR_POST, json.dumps(body), headers)
        response = conn.getresponse()
        return response.status, response.read()

    return call


def qvp_call(tokens: list[str], orders: executions.OrderIds, clients: int) -> Call:
    """bench/executions.py's API client's request: one random fill of the account's orders,
    numbered as its clients number theirs (client c sends c, c + clients, ...: exec ids and
    times, T0 + the number in ms, unique and rising across the clients together)."""
    rngs = [random.Random(100 + n) for n in range(len(tokens))]  # noqa: S311 - synthetic fills
    sent = [itertools.count() for _ in tokens]

    def call(conn: http.client.HTTPConnection, client: int) -> tuple[int, bytes]:
        number = next(sent[client]) * clients + client
        fill = executions.random_execution(rngs[client], number, "floor-api")
        return executions.post(conn, tokens[client], executions.api_body(fill, orders))

    return call


def cut(figures: list[float]) -> tuple[float, float]:
    found = statistics.quantiles(figures, n=100, method="inclusive")
    return found[49], found[94]


def row(name: str, floor: float, qvp: float, unit: str) -> None:
    print(f"{name:<44} {floor:>10.2f} {qvp:>10.2f} {unit:<6} {qvp / floor:>7.2f}")


def report(lists: dict[str, Latencies], writes: dict[str, Timed], args: argparse.Namespace) -> None:
    print(f"\n{'':<44} {'floor':>10} {'QVP':>10} {'':<6} {'QVP/floor':>7}")
    print(f"1 client, 5-row list ({args.list_workers} workers, {SOLO_REQUESTS} requests)")
    for index, where in ((1, "in the server (Server-Timing)"), (0, "at the client")):
        (f50, f95), (q50, q95) = cut(lists["floor"][index]), cut(lists["qvp"][index])
        row(f"  {where} p50", f50, q50, "ms")
        row(f"  {where} p95", f95, q95, "ms")
    print(f"{args.clients} clients, 1-row POST ({args.post_workers} workers, {args.seconds:.0f} s)")
    floor, qvp = writes["floor"], writes["qvp"]
    row(
        "  requests/s", len(floor.latencies) / args.seconds, len(qvp.latencies) / args.seconds, "/s"
    )
    (f50, f95), (q50, q95) = cut(floor.latencies), cut(qvp.latencies)
    row("  latency p50", f50, q50, "ms")
    row("  latency p95", f95, q95, "ms")
    for name, timed in writes.items():
        print(f"{name} requests/s by turn: {', '.join(f'{rate:.1f}' for rate in timed.rates)}")


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8, help="clients posting at once")
    parser.add_argument("--seconds", type=float, default=20.0, help="time counted per POST run")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds not counted first")
    parser.add_argument("--list-workers", type=int, default=MAKE_RUN_WORKERS)
    parser.add_argument("--post-workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=4, help="turns alternating the sites")
    args = parser.parse_args()
    if not 1 <= args.clients <= 16 or args.seconds <= 0 or args.warmup < 0 or args.rounds < 1:
        parser.error(
            "--clients 1..16 (the tokens made), --seconds > 0, --warmup >= 0, --rounds >= 1"
        )
    return args


def main() -> int:
    args = arguments()
    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("create_db_roles", stdout=StringIO())
        orders, tokens, accounts = seed()
        with connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            print(f"synchronous_commit: {cursor.fetchone()[0]}")
        connection.close()  # the served sites' workers are the database's only clients now
        with (
            serving_floor(args.list_workers) as floor,
            serving(args.list_workers, BENCH_DATABASE) as qvp,
        ):
            read = lists(
                {"floor": (floor, FLOOR_LIST), "qvp": (qvp, SOLO_PATH)}, tokens[0], args.rounds
            )
        # QVP's writes with the audit sealer beside them, as in production; then the chain is
        # sealed and verified, and the positions replayed.
        with tempfile.TemporaryDirectory() as folder, executions.sealing(Path(folder)) as sealer:
            with (
                serving_floor(args.post_workers) as floor,
                serving(args.post_workers, BENCH_DATABASE) as qvp,
            ):
                calls = {"floor": (floor, floor_call(tokens)),
                         "qvp": (qvp, qvp_call(tokens, orders, args.clients))}  # fmt: skip
                written = writes(calls, args)
            executions.verify_chain(*sealer)
        executions.verify(accounts)
        report(read, written, args)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
