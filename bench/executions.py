"""Executions benchmark: the bulk path (``import_executions``) and the API with 8 concurrent
clients, in a throwaway database on the same server, positions verified at the end.

    .venv/bin/python bench/executions.py [--bulk N] [--api N] [--clients 8] [--workers 4]

- bulk: a CSV of N executions over four instruments of one account, booked by
  ``import_executions`` (COPY into a staging table, checks in SQL, one INSERT ... SELECT that
  the books' triggers and the audit trail follow row by row).
- API: gunicorn serving the site as ``trading_app`` (row-level security and the audit trail as
  in production); each client POSTs executions one at a time with its own token.

Goal: at least 1,000 executions/s in bulk (the design documents' "1K+ trades/second"); the
API's rate is quoted. Afterwards every position must equal its executions replayed in the
recorded sequence. Not a test.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
BENCH_DATABASE = "bench_qvp_executions"
# The throwaway database is made by Django's test machinery under this name.
os.environ["QVP_TEST_DATABASE_NAME"] = BENCH_DATABASE

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth.models import Group, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402

from marketdata.models import Instrument  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.tokens import create_token  # noqa: E402
from trading.models import Account, Execution, Order, Position  # noqa: E402
from trading.replay import replay  # noqa: E402

GOAL_BULK = 1_000
SYMBOLS = ("BX1", "BX2", "BX3", "BX4")
SIDES = ("buy", "sell")
T0 = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)


def setup_books() -> tuple[Account, dict[str, dict[str, Order]], list[str]]:
    """One account, four instruments, a large buy and sell order on each, 8 API users."""
    with acting_as("bench"):
        group = Group.objects.create(name="bench-desk")
        account = Account.objects.create(name="bench")
        account.groups.add(group)
        orders = {}
        for symbol in SYMBOLS:
            instrument = Instrument.objects.create(symbol=symbol, asset_class="equity")
            orders[symbol] = {side: big_order(account, instrument, side) for side in SIDES}
        tokens = []
        for n in range(16):
            user = User.objects.create_user(f"bench-{n}")
            user.groups.add(group)
            tokens.append(create_token(user, "bench/executions.py")[1])
    return account, orders, tokens


def big_order(account: Account, instrument: Instrument, side: str) -> Order:
    return Order.objects.create(
        account=account,
        instrument=instrument,
        client_order_id=f"{instrument.symbol}-{side}",
        side=side,
        quantity=Decimal(10) ** 9,
    )


def random_execution(rng: random.Random, n: int, prefix: str) -> dict:
    symbol, side = rng.choice(SYMBOLS), rng.choice(("buy", "sell"))
    size = rng.randint(1, 500)
    return {
        "exec_id": f"{prefix}-{n}",
        "symbol": symbol,
        "side": side,
        "quantity": str(size if side == "buy" else -size),
        "price": f"{rng.uniform(90, 110):.4f}",
        "fee": f"{size * 0.0035:.4f}",
        "executed_at": (T0 + timedelta(milliseconds=n)).isoformat(),
    }


def bench_bulk(rows: int) -> float:
    rng = random.Random(1)  # noqa: S311 - synthetic fills, not secrets
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "executions.csv"
        with path.open("w") as out:
            out.write("exec_id,account,client_order_id,symbol,side,quantity,price,fee,"
                      "liquidity,executed_at\n")  # fmt: skip
            for n in range(rows):
                e = random_execution(rng, n, "bulk")
                out.write(
                    f"{e['exec_id']},bench,{e['symbol']}-{e['side']},{e['symbol']},{e['side']},"
                    f"{e['quantity']},{e['price']},{e['fee']},removed,{e['executed_at']}\n"
                )
        started = time.perf_counter()
        call_command("import_executions", str(path), stdout=StringIO())
        elapsed = time.perf_counter() - started
    print(f"bulk: {rows:,} executions in {elapsed:.2f} s = {rows / elapsed:,.0f}/s")
    return rows / elapsed


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "QVP_DATABASE_ROLE": "app", "QVP_DATABASE_NAME": BENCH_DATABASE,
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "QVP_LOG_LEVEL": "warning"}  # fmt: skip
    if not settings.EMBEDDED_DATABASE:
        # A server named by DATABASE_URL: the same server, the bench database, trading_app.
        params = settings.DATABASES["default"]
        password = settings.QVP_APP_DB_PASSWORD
        env["DATABASE_URL"] = (
            f"postgresql://trading_app:{password}@{params['HOST']}:{params['PORT']}"
            f"/{BENCH_DATABASE}"
        )
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "qvp_site.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", str(workers), "--log-level", "warning"],
        cwd=ROOT, env=env,
    )  # fmt: skip
    for _ in range(100):
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/healthz")
            if probe.getresponse().status == 200:
                return server
        except OSError:
            time.sleep(0.2)
    server.terminate()
    raise SystemExit("the server did not answer /healthz")


def client(port: int, token: str, payloads: list[dict], orders_by_key, failures: list) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Token {token}", "Content-Type": "application/json"}
    for e in payloads:
        body = {
            "exec_id": e["exec_id"], "order": orders_by_key[(e["symbol"], e["side"])],
            "side": e["side"], "quantity": e["quantity"], "price": e["price"], "fee": e["fee"],
            "liquidity": "removed", "executed_at": e["executed_at"],
        }  # fmt: skip
        conn.request("POST", "/api/v1/executions/", json.dumps(body), headers)
        response = conn.getresponse()
        answer = response.read()
        if response.status != 201:
            failures.append((response.status, answer[:300]))


def bench_api(orders, tokens: list[str], total: int, clients: int, workers: int) -> float:
    rng = random.Random(2)  # noqa: S311 - synthetic fills, not secrets
    payloads = [random_execution(rng, n, "api") for n in range(total)]
    orders_by_key = {(s, side): orders[s][side].pk for s in SYMBOLS for side in SIDES}
    port = free_port()
    server = start_server(port, workers)
    failures: list = []
    try:
        threads = [
            threading.Thread(
                target=client,
                args=(port, tokens[n], payloads[n::clients], orders_by_key, failures),
            )
            for n in range(clients)
        ]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
    finally:
        server.terminate()
        server.wait(timeout=30)
    if failures:
        raise SystemExit(f"{len(failures)} API calls failed, first: {failures[0]}")
    print(
        f"API: {total:,} executions by {clients} clients ({workers} gunicorn workers) in"
        f" {elapsed:.2f} s = {total / elapsed:,.0f}/s"
    )
    return total / elapsed


def verify(account: Account) -> None:
    """Each position equals its executions replayed in the recorded sequence."""
    positions = Position.objects.filter(account=account).select_related("instrument")
    for position in positions:
        fills = Execution.objects.filter(account=account, instrument=position.instrument).order_by(
            "position_sequence"
        )
        expected = replay(fills.values_list("quantity", "price"))
        actual = (position.quantity, position.average_cost, position.realized_pnl)
        if actual != expected:
            raise SystemExit(f"{position.instrument}: position {actual} != replay {expected}")
    count = Execution.objects.filter(account=account).count()
    print(f"verified: {len(positions)} positions equal the replay of {count:,} executions")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bulk", type=int, default=20_000, help="executions in the CSV file")
    parser.add_argument("--api", type=int, default=4_000, help="executions through the API")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--workers", type=int, default=4, help="gunicorn workers")
    args = parser.parse_args()

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("create_db_roles", stdout=StringIO())
        account, orders, tokens = setup_books()
        bulk = bench_bulk(args.bulk)
        bench_api(orders, tokens, args.api, args.clients, args.workers)
        verify(account)
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)
    verdict = "met" if bulk >= GOAL_BULK else "NOT met"
    print(f"goal: bulk >= {GOAL_BULK:,}/s: {verdict}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
