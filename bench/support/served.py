"""gunicorn serving the site for a benchmark: as production serves it (its gunicorn settings,
the application's role), on the benchmark's own database, with a cache of its own."""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(cache: str, database: str) -> dict[str, str]:
    """The site as served: trading_app on ``database``. The throttles' counts go to a cache of
    the bench's own (the site's var/cache keeps real users' counts), their rate out of reach:
    a benchmark measures the site, not the throttle."""
    from django.conf import settings

    env = {**os.environ, "QVP_DATABASE_ROLE": "app", "QVP_DATABASE_NAME": database,
           "DJANGO_ALLOWED_HOSTS": "127.0.0.1", "QVP_LOG_LEVEL": "warning",
           "DJANGO_CACHE_URL": f"filecache://{cache}",
           "QVP_API_THROTTLE_USER": "10000000/minute"}  # fmt: skip
    if not settings.EMBEDDED_DATABASE:
        # A server named by DATABASE_URL: the same server, the bench database, trading_app.
        params = settings.DATABASES["default"]
        password = settings.QVP_APP_DB_PASSWORD
        env["DATABASE_URL"] = (
            f"postgresql://trading_app:{password}@{params['HOST']}:{params['PORT']}/{database}"
        )
    return env


@contextmanager
def serving(workers: int, database: str) -> Iterator[int]:
    """gunicorn with the project's settings serving the site while the block runs; yields its
    port."""
    port = free_port()
    with tempfile.TemporaryDirectory() as cache:
        server = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "qvp_site.wsgi:application",
             "-c", "python:qvp_site.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
             "--workers", str(workers), "--log-level", "warning",
             "--control-socket", os.path.join(cache, "gunicorn.ctl")],
            cwd=ROOT, env=server_env(cache, database),
        )  # fmt: skip
        try:
            wait_healthy(port)
            yield port
        finally:
            server.terminate()
            server.wait(timeout=60)


def wait_healthy(port: int) -> None:
    for _ in range(150):
        try:
            probe = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            probe.request("GET", "/healthz")
            if probe.getresponse().status == 200:
                return
        except OSError:
            pass
        time.sleep(0.2)
    raise SystemExit("the server did not answer /healthz")
