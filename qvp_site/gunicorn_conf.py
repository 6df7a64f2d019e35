"""gunicorn's settings for the site: ``gunicorn -c python:qvp_site.gunicorn_conf`` (the
Dockerfile's CMD; options on the command line, such as --bind and --workers, still win).

Sync workers, each serving one request at a time, because with them gunicorn's ``timeout`` is
a bound on every response: the arbiter kills a worker whose request (a stream included) has
run that long, and with the worker its database connection, so its transaction is rolled back.
Threaded workers (gthread) keep telling the arbiter they are alive while a thread is stuck in a
request: their timeout bounds nothing a request does. Sync workers also hold one database
connection each, a count PgBouncer's pool and the server's max_connections can be sized for.
Their cost, a worker held by a slow client, is the reverse proxy's to absorb (it buffers
requests and responses, as gunicorn's documentation asks of a deployment of sync workers).

The timeout follows from the time limits (qvp_site/time_limits.py): the longest response the
site serves is a stream (the admin's CSV export, a list in a bulk format: Arrow, Parquet or
CSV, qvp_site/api/bulk/), which stops at QVP_STREAM_STATEMENT_TIMEOUT, or a request whose
statements each stop at QVP_REQUEST_STATEMENT_TIMEOUT; a worker silent for longer than the
longest of them and a margin is stuck. A stream holds its worker while it lasts: a deployment
that serves many long downloads at once runs more workers (--workers), each a database
connection of its own and one of the bulk reader's. A shutdown (SIGTERM) waits as long for the
responses under way (docker compose's stop_grace_period must be longer for them to finish).

Read from the environment and the .env file, as settings.py reads them, with the same checks.
"""

from __future__ import annotations

from pathlib import Path

from qvp_site import time_limits
from qvp_site.environment import Env

_env = Env()
_dotenv = Path(__file__).resolve().parent.parent / ".env"
if _dotenv.exists():
    _env.read_env(_dotenv)


def _limit(context: str, default: str) -> float:
    name = time_limits.SETTING[context]
    return time_limits.seconds(name, _env.str(name, default=default))


# The defaults of settings.py's "Time limits" block.
_REQUEST = _limit(time_limits.REQUEST, "30")
_STREAM = _limit(time_limits.STREAM, "300")

worker_class = "sync"
timeout = time_limits.worker_timeout(_REQUEST, _STREAM)
# 0 (no limit) would kill the workers at once on shutdown: then gunicorn's default.
graceful_timeout = timeout or 30


def post_fork(server, worker) -> None:
    """A worker serves requests: a connection it opens outside one (none is expected) takes
    the request's limit too, not a command's."""
    time_limits.for_process(time_limits.REQUEST)
