"""A logging handler that keeps records in SystemLog without ever holding up its caller.

``emit`` only formats the record and puts it on a bounded queue (``put_nowait``); a
background thread writes what is queued in batches by COPY. When the queue is full, or a
batch cannot be written (database down, slow past its timeouts, a missing partition), the
records are dropped and counted; the next batch that lands is preceded by a WARNING record
saying how many were lost, and the first failure of a run of them is said on stderr.

The writer opens its own psycopg connection rather than using Django's:

* a request of the site is one transaction rolled back on a 4xx or 5xx answer
  (qvp_site/acting.py), and the records that explain the failure must outlive it;
* Django's connections belong to the thread that opened them and bring its settings along
  (persistent connections, health checks, query logging at DEBUG, which would log the
  writer's own statements); ours has its own connect and statement timeouts;
* it is opened for a burst of records and closed when the queue is empty, so no idle
  connection holds a database (a test database can be dropped, a server restarted).
"""

from __future__ import annotations

import json
import logging
import os
import queue
import sys
import threading
import time
from datetime import UTC, datetime
from typing import Any

import psycopg

# LogRecord attributes that are not ``extra=...`` values.
_STANDARD = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {
    "message",
    "asctime",
    "taskName",
}
_COPY = "COPY signals_systemlog (ts, level, logger, message, context) FROM STDIN"
_FORMATTER = logging.Formatter()
_LEVELS = {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}
Row = tuple[datetime, str, str, str, str]


class DatabaseLogHandler(logging.Handler):
    """Log records into ``signals_systemlog`` through a bounded queue and a writer thread.

    ``capacity``: records held while the database is slow or down (then new ones are
    dropped); ``batch_size``: records per COPY; ``connect_timeout`` and
    ``statement_timeout`` (seconds) bound how long the writer waits for the database;
    ``retry_after``: seconds before the writer tries again after a failure. ``conninfo``
    (a psycopg connection string or dict) defaults to Django's ``alias`` database, read when
    the writer connects.
    """

    def __init__(
        self,
        level: int | str = logging.NOTSET,
        *,
        capacity: int = 10_000,
        batch_size: int = 500,
        connect_timeout: float = 2.0,
        statement_timeout: float = 5.0,
        retry_after: float = 5.0,
        alias: str = "default",
        conninfo: str | dict | None = None,
    ):
        super().__init__(level)
        self.queue: queue.Queue[Row] = queue.Queue(maxsize=capacity)
        self.batch_size = batch_size
        self.connect_timeout = connect_timeout
        self.statement_timeout = statement_timeout
        self.retry_after = retry_after
        self.alias = alias
        self.conninfo = conninfo
        self.written = 0
        self.dropped = 0  # every record lost, since the handler began
        self._unreported = 0  # lost since the last report landed
        self._failing_since: float | None = None
        self._counts = threading.Lock()
        self._stop = threading.Event()
        self._writer: threading.Thread | None = None
        self._writer_pid: int | None = None

    # --- the caller's side: never blocks, never raises ----------------------------------
    def emit(self, record: logging.LogRecord) -> None:
        if threading.current_thread() is self._writer:
            return  # the writer's own troubles (psycopg's warnings) would feed themselves
        try:
            row = self._row(record)
            self._ensure_writer()
            self.queue.put_nowait(row)
        except queue.Full:
            self._drop(1)
        except Exception:  # a record that cannot be formatted must not break its caller
            self._drop(1)

    def _row(self, record: logging.LogRecord) -> Row:
        context: dict[str, Any] = {
            "module": record.module,
            "function": record.funcName,
            "line": record.lineno,
            "process": record.process,
            "thread": record.threadName,
        }
        if record.exc_info:
            context["exception"] = _FORMATTER.formatException(record.exc_info)
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                context[key] = value
        level = record.levelname if record.levelname in _LEVELS else "INFO"
        ts = datetime.fromtimestamp(record.created, tz=UTC)
        # PostgreSQL's text cannot hold NUL, which would cost the whole batch.
        message = record.getMessage().replace("\x00", "\ufffd")
        return ts, level, record.name[:200], message, json.dumps(context, default=str)

    def _drop(self, count: int) -> None:
        with self._counts:
            self.dropped += count
            self._unreported += count

    def _ensure_writer(self) -> None:
        # A forked worker (gunicorn) inherits the handler but not its thread: start its own.
        if self._writer is not None and self._writer_pid == os.getpid():
            return
        with self._counts:
            if self._writer is None or self._writer_pid != os.getpid():
                self._stop.clear()
                self._writer = threading.Thread(
                    target=self._run, name="qvp-systemlog-writer", daemon=True
                )
                self._writer_pid = os.getpid()
                self._writer.start()

    # --- the writer thread ------------------------------------------------------------------
    def _run(self) -> None:
        while not (self._stop.is_set() and self.queue.empty()):
            try:
                first = self.queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if not self._write_burst([first, *self._take(self.batch_size - 1)]):
                if self._stop.is_set():  # closing with the database away: nothing to wait for
                    self._done(self._take(self.queue.qsize()), lost=True)
                else:
                    self._stop.wait(self.retry_after)

    def _write_burst(self, batch: list[Row]) -> bool:
        """Write this batch and whatever else arrives meanwhile on one connection, closed
        when the queue is empty; whether it all went. A failure drops the batch in hand."""
        try:
            with self._connect() as conn:
                while batch:
                    self._copy(conn, batch)
                    self._done(batch)
                    batch = self._take(self.batch_size)
        except Exception as error:
            self._done(batch, lost=True)
            self._failed(error)
            return False
        self._failing_since = None
        return True

    def _done(self, batch: list[Row], lost: bool = False) -> None:
        if lost:
            self._drop(len(batch))
        for _ in batch:
            self.queue.task_done()

    def _take(self, limit: int) -> list[Row]:
        batch: list[Row] = []
        while len(batch) < limit:
            try:
                batch.append(self.queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _copy(self, conn: psycopg.Connection, batch: list[Row]) -> None:
        with self._counts:
            lost, self._unreported = self._unreported, 0
        rows = list(batch)
        if lost:
            rows.insert(0, self._lost_row(lost))
        try:
            with conn.transaction(), conn.cursor() as cursor, cursor.copy(_COPY) as copy:
                for row in rows:
                    copy.write_row(row)
        except Exception:
            with self._counts:
                self._unreported += lost  # not reported after all: say it next time
            raise
        with self._counts:
            self.written += len(batch)

    def _lost_row(self, lost: int) -> Row:
        message = (
            f"{lost} log record(s) dropped before reaching the database"
            f" (queue full or database unavailable); {self.dropped} since the process began"
        )
        context = json.dumps({"dropped": lost, "dropped_total": self.dropped})
        return datetime.now(UTC), "WARNING", __name__, message, context

    def _connect(self) -> psycopg.Connection:
        params: dict[str, Any]
        if isinstance(self.conninfo, str):
            params = {"conninfo": self.conninfo}
        elif isinstance(self.conninfo, dict):
            params = dict(self.conninfo)
        else:
            params = _django_params(self.alias)
        timeout_ms = int(self.statement_timeout * 1000)
        options = f"-c statement_timeout={timeout_ms} -c lock_timeout={timeout_ms}"
        return psycopg.connect(
            **params,
            connect_timeout=max(1, round(self.connect_timeout)),
            options=options,
            autocommit=True,
            application_name="qvp-systemlog",
        )

    def _failed(self, error: Exception) -> None:
        if self._failing_since is None:  # the first failure of a run: say it once
            self._failing_since = time.monotonic()
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            print(
                f"qvp-systemlog: cannot write log records to the database"
                f" ({type(error).__name__}: {first_line}); dropping them and retrying every"
                f" {self.retry_after:g} s",
                file=sys.stderr,
            )

    # --- flushing and closing ---------------------------------------------------------------
    def stats(self) -> dict[str, int]:
        """What became of the records: written, dropped, and waiting in the queue."""
        with self._counts:
            return {"written": self.written, "dropped": self.dropped, "queued": self.queue.qsize()}

    # Handler.flush() returns nothing; this one also says whether the queue drained in time
    # (logging calls it without arguments, which it takes).
    def flush(self, timeout: float = 2.0) -> bool:  # type: ignore[override]
        """Wait up to ``timeout`` seconds until every queued record is written or dropped;
        whether that happened. (logging.shutdown flushes at exit: the default is short, so
        an exit never waits long on a dead database.)"""
        deadline = time.monotonic() + timeout
        while self.queue.unfinished_tasks:
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.01)
        return True

    def close(self) -> None:
        """Stop the writer after it wrote what it could within a short wait (interpreter
        exit must not hang on a dead database)."""
        self._stop.set()
        writer = self._writer
        if writer is not None and writer.is_alive():
            writer.join(timeout=self.connect_timeout + 1)
        super().close()


def _django_params(alias: str) -> dict[str, Any]:
    from django.db import connections

    settings = connections[alias].settings_dict
    params = {
        "dbname": settings["NAME"],
        "user": settings.get("USER") or None,
        "password": settings.get("PASSWORD") or None,
        "host": settings.get("HOST") or None,
        "port": settings.get("PORT") or None,
    }
    params.update(settings.get("OPTIONS", {}).get("conninfo_params", {}))
    return {key: value for key, value in params.items() if value is not None}
