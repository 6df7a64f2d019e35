"""`make run`: gunicorn serving the site beside the scheduler, until either stops.

Ctrl-C or SIGTERM stops both. The embedded database keeps running (``make db-stop`` stops it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time


def main() -> int:
    port = os.environ.get("PORT", "8000")
    workers = os.environ.get("GUNICORN_WORKERS", "2")
    # The site connects as trading_app (on the embedded server; a DATABASE_URL names its own
    # user), so that row-level security and the audit log's protection apply to it. The
    # scheduler's maintenance (partitions, retention, aggregates) runs as the owner.
    # GET /metrics adds up the counters of every gunicorn worker, each kept in a file of this
    # directory (prometheus-client's multiprocess mode, see qvp_site/metrics.py); emptied at
    # each start, so counts start from zero with the server as Prometheus expects.
    metrics_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        os.environ.get("QVP_VAR_DIR", "var"), "metrics"
    )
    shutil.rmtree(metrics_dir, ignore_errors=True)
    os.makedirs(metrics_dir)
    web = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "qvp_site.wsgi:application", "--bind",
         f"127.0.0.1:{port}", "--workers", workers, "--access-logfile", "-"],
        env={**os.environ, "QVP_DATABASE_ROLE": "app", "PROMETHEUS_MULTIPROC_DIR": metrics_dir},
    )  # fmt: skip
    scheduler = subprocess.Popen(
        [sys.executable, "manage.py", "scheduler"], env={**os.environ, "QVP_DATABASE_ROLE": "owner"}
    )
    print(f"QVP is serving on http://127.0.0.1:{port}/ (admin at /admin/, API at /api/v1/)")
    children = [web, scheduler]

    def stop(*_):
        for child in children:
            if child.poll() is None:
                child.terminate()

    signal.signal(signal.SIGTERM, stop)
    try:
        while all(child.poll() is None for child in children):
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    stop()
    for child in children:
        child.wait(timeout=30)
    return web.returncode or 0


if __name__ == "__main__":
    sys.exit(main())
