"""Signals in a batch POST (issue 27): ``POST /api/v1/signals/`` with batches of 10,000 beside
the floor, a COPY of the same rows into the same table, in one run, in a throwaway database on
the configured server (bench/support/scratch.py).

    .venv/bin/python bench/signals.py [--n 10000] [--batches 5] [--served] [--workers 2]
                                      [--profile]

Seeded: ``SYMBOLS`` instruments, two agents that post (``POSTERS``) and two whose rows the
floor copies (``FLOOR``), one user with ``add_signal`` and a token, and the signals table's
partitions for the run's times (made first, as a running site's maintenance has them ahead).

- POST: ``--batches`` batches of ``--n`` new signals each (the JSON bodies made before the
  clock starts), through the whole Django stack with the token: in-process through Django's
  test client by default (the Django connection's role), or with ``--served`` through gunicorn
  as production serves it (``bench/support/served.py``: trading_app, the project's gunicorn
  settings). The answer must be 201 with every signal created. Validation stays on: every
  item's fields, its agent and its symbol (on the signal's date), repeats in the batch.
- Refused: one more batch of ``--n`` whose last item names an unknown symbol: must be a 400
  naming that item's index and field, and nothing written.
- Floor: the same rows, their agent and instrument ids resolved, written by ``COPY ... FROM
  STDIN`` (text format, the text made before the clock starts) into signals_signal, a COPY a
  batch, as the floor's agents (so the rows are new, in the same partitions).

A small batch is posted first, untimed (a running site has loaded its middleware and views).

Printed: each way's rows/s and the POST's ratio to the floor. The goal: the POST at 10,000
signals/s or more (the design documents' figure). ``--profile`` runs one more batch under
cProfile in-process and prints the project's 25 costliest
functions (cumulative) and the 15 costliest of all on their own (tottime). Not a test.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_signals")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.contrib.auth.models import Permission, User  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from marketdata.models import Instrument  # noqa: E402
from qvp_site.acting import acting_as  # noqa: E402
from qvp_site.db import partitions  # noqa: E402
from qvp_site.tokens import create_token  # noqa: E402
from signals.models import Agent, Signal  # noqa: E402

GOAL = 10_000  # signals/s
SYMBOLS = tuple(f"SG{n:02d}" for n in range(50))
POSTERS = ("bench_momentum", "bench_reversion")
FLOOR = ("floor_momentum", "floor_reversion")
T0 = datetime(2024, 5, 13, 13, 30, tzinfo=UTC)
URL = "/api/v1/signals/"


@dataclass(frozen=True)
class Seeded:
    token: str
    agents: dict[str, int]
    instruments: dict[str, int]


def seed() -> Seeded:
    with acting_as("bench"):
        instruments = {
            s: Instrument.objects.create(symbol=s, asset_class="equity", exchange="XBEN").id
            for s in SYMBOLS
        }
        agents = {a: Agent.objects.create(name=a, kind="momentum").id for a in POSTERS + FLOOR}
        user = User.objects.create_user("bench-signals")
        user.user_permissions.add(Permission.objects.get(codename="add_signal"))
        token = create_token(user, "bench/signals.py")[1]
    partitions.prepare_load(Signal._meta.db_table, T0 - timedelta(days=1), T0 + timedelta(days=8))
    return Seeded(token, agents, instruments)


def items(batch: int, n: int) -> list[dict]:
    """``n`` new signals: each (agent, symbol) pair once a minute, batch after batch."""
    pairs = [(a, s) for a in POSTERS for s in SYMBOLS]
    start = T0 + timedelta(minutes=batch * (n // len(pairs) + 1))
    out = []
    for k in range(n):
        agent, symbol = pairs[k % len(pairs)]
        strength = round(((k * 37) % 199 - 99) / 100, 2)
        out.append(
            {
                "agent": agent,
                "symbol": symbol,
                "ts": (start + timedelta(minutes=k // len(pairs))).isoformat(),
                "strength": strength,
                "confidence": round((k * 13) % 100 / 100, 2),
                "horizon": "1 00:00:00",
                "explanation": {"features": {"return_20d": strength / 10}, "reason": "bench"},
            }
        )
    return out


def copy_text(rows: list[dict], seeded: Seeded) -> bytes:
    """The rows as COPY's text format, as the floor's agents."""
    floor = dict(zip(POSTERS, FLOOR, strict=True))
    lines = []
    for r in rows:
        direction = (r["strength"] > 0) - (r["strength"] < 0)
        explanation = json.dumps(r["explanation"]).replace("\\", "\\\\")
        lines.append(
            f"{seeded.agents[floor[r['agent']]]}\t{seeded.instruments[r['symbol']]}\t{r['ts']}\t"
            f"{direction}\t{r['strength']}\t{r['confidence']}\t1 day\t{explanation}\n"
        )
    return "".join(lines).encode()


COPY_SQL = (
    "COPY signals_signal (agent_id, instrument_id, ts, direction, strength, confidence,"
    " horizon, explanation) FROM STDIN"
)


def floor(texts: list[bytes]) -> float:
    """Seconds to COPY each batch's text, each COPY committed on its own."""
    elapsed = 0.0
    for text in texts:
        started = time.perf_counter()
        with connection.cursor() as cursor, cursor.copy(COPY_SQL) as copy:
            copy.write(text)
        elapsed += time.perf_counter() - started
    return elapsed


class InProcess:
    """Django's test client with the token: the middleware, the authentication, the view."""

    def __init__(self, token: str):
        # A host the settings allow (the test client's "testserver" is not one).
        self.client = Client(HTTP_AUTHORIZATION=f"Token {token}", HTTP_HOST="127.0.0.1")

    def post(self, body: bytes) -> tuple[int, bytes]:
        response = self.client.post(URL, body, content_type="application/json")
        return response.status_code, response.content


class Served:
    """gunicorn as production serves it, one keep-alive-less connection a request."""

    def __init__(self, token: str, port: int):
        self.token, self.port = token, port

    def post(self, body: bytes) -> tuple[int, bytes]:
        import http.client

        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)
        headers = {"Authorization": f"Token {self.token}", "Content-Type": "application/json"}
        conn.request("POST", URL, body, headers)
        response = conn.getresponse()
        return response.status, response.read()


def warm_up(poster) -> None:
    """One small batch first, untimed: a running site has loaded its middleware and views."""
    body = json.dumps(items(30_000, len(POSTERS) * len(SYMBOLS))).encode()
    status, answer = poster.post(body)
    if status != 201:
        raise SystemExit(f"the warm-up POST answered {status}: {answer[:300]!r}")


def post_batches(poster, bodies: list[bytes], n: int) -> float:
    warm_up(poster)
    elapsed = 0.0
    for body in bodies:
        started = time.perf_counter()
        status, answer = poster.post(body)
        elapsed += time.perf_counter() - started
        if status != 201 or json.loads(answer) != {"created": n, "unchanged": 0}:
            raise SystemExit(f"POST answered {status}: {answer[:300]!r}")
    return elapsed


def refused(poster, n: int) -> float:
    """A batch whose last item names an unknown symbol: 400 naming it, nothing written."""
    bad = items(10_000, n)
    bad[-1]["symbol"] = "NOPE"
    before = Signal.objects.count()
    started = time.perf_counter()
    status, answer = poster.post(json.dumps(bad).encode())
    elapsed = time.perf_counter() - started
    errors = json.loads(answer)
    if status != 400 or list(errors) != [str(n - 1)] or "symbol" not in errors[str(n - 1)]:
        raise SystemExit(f"the bad batch answered {status}: {answer[:300]!r}")
    if Signal.objects.count() != before:
        raise SystemExit("the bad batch wrote rows")
    return elapsed


def profile(token: str, n: int) -> None:
    body = json.dumps(items(20_000, n)).encode()
    poster = InProcess(token)
    profiler = cProfile.Profile()
    profiler.enable()
    status, answer = poster.post(body)
    profiler.disable()
    print(f"profiled POST: {status} {answer[:80]!r}")
    out = io.StringIO()
    stats = pstats.Stats(profiler, stream=out)
    stats.sort_stats("cumulative").print_stats(r"signals/|qvp_site/|marketdata/|json", 25)
    stats.sort_stats("tottime").print_stats(15)
    print(out.getvalue())


def run(args: argparse.Namespace) -> None:
    seeded = seed()
    batches = [items(b, args.n) for b in range(args.batches)]
    bodies = [json.dumps(b).encode() for b in batches]
    texts = [copy_text(b, seeded) for b in batches]
    total = args.n * args.batches
    if args.served:
        from bench.support.served import serving

        # The served site connects as trading_app: its grants on this database first.
        call_command("create_db_roles", stdout=io.StringIO())
        poster: InProcess | Served
        with serving(args.workers, connection.settings_dict["NAME"]) as port:
            poster = Served(seeded.token, port)
            posted, bad = post_batches(poster, bodies, args.n), refused(poster, args.n)
        how = f"gunicorn ({args.workers} workers, trading_app)"
    else:
        poster = InProcess(seeded.token)
        posted, bad = post_batches(poster, bodies, args.n), refused(poster, args.n)
        how = "in-process (Django's test client)"
    copied = floor(texts)
    post_rate, copy_rate = total / posted, total / copied
    print(f"signals: {args.batches} batches of {args.n:,}, POST {how}")
    print(f"  POST:  {total:,} in {posted:.2f} s = {post_rate:,.0f} signals/s")
    print(f"  COPY:  {total:,} in {copied:.2f} s = {copy_rate:,.0f} rows/s (floor, same table)")
    print(f"  ratio POST/COPY: {post_rate / copy_rate:.2f}")
    print(f"  refused batch of {args.n:,} (last item's symbol unknown): {bad:.2f} s, 400 naming it")
    verdict = "met" if post_rate >= GOAL else "NOT met"
    print(f"  goal >= {GOAL:,} signals/s: {verdict}")
    if args.profile:
        profile(seeded.token, args.n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10_000, help="signals a batch (at most 10,000)")
    parser.add_argument("--batches", type=int, default=5)
    parser.add_argument("--served", action="store_true", help="through gunicorn as trading_app")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--profile", action="store_true", help="cProfile one more batch")
    args = parser.parse_args()
    with throwaway_database():
        run(args)


if __name__ == "__main__":
    main()
