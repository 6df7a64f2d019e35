"""`make run`: gunicorn serving the site beside the scheduler, until either stops.

Ctrl-C, SIGTERM or SIGHUP stops both gracefully (requests under way are answered first). The
embedded database keeps running (``make db-stop`` stops it).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import subprocess
import sys
import time

from qvp_site import gunicorn_conf

# prctl(2)'s option: the signal this process gets when its parent dies.
PR_SET_PDEATHSIG = 1
# How long a child may take to stop: gunicorn answers the requests under way first, for up to
# its graceful timeout (which follows from the time limits), and a margin.
STOP_SECONDS = gunicorn_conf.graceful_timeout + 30
# The signals that stop `make run`: a terminal's Ctrl-C or closing, a service manager's stop.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def main() -> int:
    # First, so that a stop while the children start is caught too (no KeyboardInterrupt).
    stopping: list[int] = []
    for number in STOP_SIGNALS:
        signal.signal(number, lambda received, _frame: stopping.append(received))
    port = os.environ.get("PORT", "8000")
    workers = os.environ.get("GUNICORN_WORKERS", "2")
    # The site connects as trading_app (on the embedded server; a DATABASE_URL names its own
    # user), so that row-level security and the audit log's protection apply to it. The
    # scheduler's maintenance (partitions, retention, aggregates) runs as the owner.
    # GET /metrics adds up the counters of every gunicorn worker, each kept in a file of this
    # directory (prometheus-client's multiprocess mode, see qvp_site/metrics.py); emptied at
    # each start, so counts start from zero with the server as Prometheus expects.
    var_dir = os.environ.get("QVP_VAR_DIR", "var")
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(var_dir, "metrics")
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)
    web = _child(
        [sys.executable, "-m", "gunicorn", "qvp_site.wsgi:application",
         "-c", "python:qvp_site.gunicorn_conf", "--bind", f"127.0.0.1:{port}",
         "--workers", workers, "--access-logfile", "-",
         # Its control socket beside the site's data, not one per OS user in ~/.gunicorn.
         "--control-socket", os.path.join(var_dir, "gunicorn.ctl")],
        {"QVP_DATABASE_ROLE": "app", "PROMETHEUS_MULTIPROC_DIR": metrics_dir},
    )  # fmt: skip
    scheduler = _child([sys.executable, "manage.py", "scheduler"], {"QVP_DATABASE_ROLE": "owner"})
    print(f"QVP is serving on http://127.0.0.1:{port}/ (admin at /admin/, API at /api/v1/)")
    return _supervise([web, scheduler], stopping)


def _child(command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    """A child in a session of its own: a signal to `make run`'s process group (Ctrl-C
    reaches every process of it) does not reach gunicorn's workers mid-request, where SIGINT
    quits at once; this process stops them gracefully instead. Should this process die
    without a word (SIGKILL), the kernel sends the child SIGTERM (Linux's parent-death
    signal), so nothing is left serving on the port."""
    parent = os.getpid()

    def in_the_child() -> None:
        os.setsid()
        if sys.platform == "linux":
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # died before the signal was asked for
            os.kill(os.getpid(), signal.SIGTERM)

    # They start the embedded server if it is down, but never make a new cluster: prepare_site
    # made it, and a data folder gone missing must not become an empty one under the site.
    environment = {**os.environ, "QVP_EMBEDDED_MAY_INIT": "0", **env}
    return subprocess.Popen(command, env=environment, preexec_fn=in_the_child)


def _supervise(children: list[subprocess.Popen[bytes]], stopping: list[int]) -> int:
    """Wait until a child exits or a stop signal comes (``stopping`` fills), then stop the
    others: quietly, whatever signals follow (each one only fills ``stopping``)."""
    while not stopping and all(child.poll() is None for child in children):
        time.sleep(0.2)
    ended = [child.poll() for child in children]  # before this process stops the others
    for child in children:
        if child.poll() is None:
            child.terminate()
    for child in children:
        try:
            child.wait(timeout=STOP_SECONDS)
        except subprocess.TimeoutExpired:  # its whole session: gunicorn's workers too
            os.killpg(child.pid, signal.SIGKILL)
            child.wait()
    return 0 if stopping else next(code for code in ended if code is not None) or 0


if __name__ == "__main__":
    sys.exit(main())
