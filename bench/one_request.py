"""One authenticated API request, end to end in process: where its time goes.

    .venv/bin/python bench/one_request.py [--requests 500] [--profile] [--trace]

In a throwaway database (Django's test machinery, as bench/load.py): 8 instruments and a user
with a token. Then a child process, configured as gunicorn's workers are (``trading_app``, a
file cache of its own, ``bench.support.served.server_env``), calls the site's WSGI handler
directly with ``GET /api/v1/instruments/?page_size=5`` and the token, as bench/load.py's last
part asks it through gunicorn: no network, no gunicorn, only the site. It prints the time in
the handler (p50/p95), the ``Server-Timing`` the site reports and the CPU time of the process
per request; the statements one request sends (``--trace``: every message to and from the
server, with libpq's timestamps, BEGIN, COMMIT and a health check's ``SELECT 1`` included);
and a cProfile of the requests (``--profile``, ``--callers NAME...`` for who calls what).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")
PATH = "/api/v1/instruments/?page_size=5"


def parent(args: argparse.Namespace) -> int:
    """Make and seed the database as its owner, then measure in a child as trading_app."""
    database = f"bench_qvp_one_{os.getpid()}"
    os.environ["QVP_TEST_DATABASE_NAME"] = database
    import django

    django.setup()
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from django.db import connection

    from bench.support.served import server_env
    from marketdata.models import Instrument
    from qvp_site.acting import acting_as
    from qvp_site.tokens import create_token

    old_name = connection.creation.create_test_db(verbosity=0, autoclobber=True)
    try:
        call_command("create_db_roles", stdout=io.StringIO())
        with acting_as("bench"):
            for n in range(8):
                Instrument.objects.create(symbol=f"ONE{n}", asset_class="equity", exchange="X")
            token = create_token(User.objects.create_user("one"), "bench/one_request.py")[1]
        connection.close()
        with tempfile.TemporaryDirectory() as cache:
            env = server_env(cache, database)
            command = [sys.executable, __file__, "--child", token, *sys.argv[1:]]
            return subprocess.run(command, env=env, cwd=ROOT, check=False).returncode
    finally:
        connection.creation.destroy_test_db(old_name, verbosity=0)


def environ(token: str) -> dict:
    path, _, query = PATH.partition("?")
    return {
        "REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "HTTP_HOST": "127.0.0.1",
        "REMOTE_ADDR": "127.0.0.1", "HTTP_AUTHORIZATION": f"Token {token}",
        "wsgi.input": io.BytesIO(), "wsgi.url_scheme": "http", "wsgi.errors": sys.stderr,
        "SERVER_PROTOCOL": "HTTP/1.1",
    }  # fmt: skip


def child(token: str, args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.core.handlers.wsgi import WSGIHandler

    handler = WSGIHandler()
    headers: list = []

    def start_response(status, response_headers, exc_info=None):
        headers[:] = [status, dict(response_headers)]

    def one() -> tuple[float, float, float]:
        started, cpu = time.perf_counter(), time.thread_time()
        body = b"".join(handler(environ(token), start_response))
        took = (time.perf_counter() - started) * 1000
        cpu = (time.thread_time() - cpu) * 1000
        if not headers[0].startswith("200") or len(json.loads(body)["results"]) != 5:
            raise SystemExit(f"{headers[0]} {body[:300]!r}")
        timing = headers[1].get("Server-Timing", "app;dur=nan")
        return took, float(timing.partition("dur=")[2]), cpu

    for _ in range(50):  # warm: imports, the connection, caches
        one()
    measured = [one() for _ in range(args.requests)]
    for name, figures in (("in the handler", [m[0] for m in measured]),
                          ("Server-Timing", [m[1] for m in measured]),
                          ("CPU (this process)", [m[2] for m in measured])):  # fmt: skip
        cuts = statistics.quantiles(figures, n=100, method="inclusive")
        print(f"{name:<18} p50 {cuts[49]:.3f} ms  p95 {cuts[94]:.3f} ms  ({len(figures)} requests)")
    if args.trace:
        trace(one)
    if args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        for _ in range(args.requests):
            one()
        profiler.disable()
        out = io.StringIO()
        stats = pstats.Stats(profiler, stream=out)
        stats.sort_stats("cumulative").print_stats(70)
        stats.sort_stats("tottime").print_stats(40)
        for name in args.callers or ():
            stats.print_callers(name)
        print(out.getvalue())
    return 0


def trace(one) -> None:
    """libpq's trace of one request: each message and when (microseconds)."""
    from django.db import connection

    with tempfile.TemporaryFile("w+") as out:
        pgconn = connection.connection.pgconn
        pgconn.trace(out.fileno())
        one()
        pgconn.untrace()
        out.seek(0)
        print("\nlibpq trace of one request (F: to the server, B: from it):")
        for line in out:
            stamp, direction, _length, kind, *rest = line.rstrip("\n").split("\t")
            if kind in {"Query", "Parse", "ReadyForQuery", "CommandComplete"}:
                print(f"  {stamp} {direction} {kind:<16} {' '.join(rest)[:150]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--trace", action="store_true")
    parser.add_argument("--callers", nargs="*", help="with --profile: who calls these")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    return child(args.child, args) if args.child else parent(args)


if __name__ == "__main__":
    sys.exit(main())
