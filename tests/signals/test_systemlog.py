"""The SystemLog handler: records reach the table, and a dead or hanging database never
holds up or breaks the code that logs; what is lost is counted and reported."""

from __future__ import annotations

import logging
import socket
import threading
import time

import pytest
from django.db import transaction

from signals.models import SystemLog
from signals.systemlog import DatabaseLogHandler

DEAD = {"host": "127.0.0.1", "port": 1, "dbname": "qvp", "user": "nobody"}


@pytest.fixture
def attach():
    """A logger of its own with the handler given, detached and closed afterwards."""
    attached = []

    def attach(handler: DatabaseLogHandler, name: str = "tests.signals.systemlog"):
        logger = logging.getLogger(name)
        logger.propagate = False
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)
        attached.append((logger, handler))
        return logger

    yield attach
    for logger, handler in attached:
        logger.removeHandler(handler)
        handler.close()


@pytest.fixture
def hanging_server():
    """A TCP port that accepts connections and never says a word: a database that hangs."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(64)
    held, stop = [], threading.Event()

    def accept():
        server.settimeout(0.1)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    server.close()


def test_settings_install_the_handler_on_the_root_logger():
    handlers = [h for h in logging.getLogger().handlers if isinstance(h, DatabaseLogHandler)]
    assert len(handlers) == 1
    assert handlers[0].level == logging.WARNING


def test_a_dead_database_neither_blocks_nor_breaks_the_caller(attach, capsys):
    handler = DatabaseLogHandler(capacity=100, conninfo=DEAD, retry_after=0.05)
    logger = attach(handler)
    started = time.perf_counter()
    for i in range(2000):
        logger.error("order %s refused", i)
    assert time.perf_counter() - started < 1.0  # 2000 records: no waiting on the database
    assert handler.flush(timeout=10)
    stats = handler.stats()
    assert stats["written"] == 0
    assert stats["dropped"] == 2000  # the queue's overflow and the batches that failed
    assert "cannot write log records to the database" in capsys.readouterr().err


def test_a_hanging_database_does_not_hold_up_the_caller(attach, hanging_server):
    conninfo = {**DEAD, "port": hanging_server}
    handler = DatabaseLogHandler(capacity=10, conninfo=conninfo, connect_timeout=1)
    logger = attach(handler)
    slowest = 0.0
    for i in range(50):
        started = time.perf_counter()
        logger.warning("tick %s", i)
        slowest = max(slowest, time.perf_counter() - started)
    assert slowest < 0.05  # while the writer waits on the connection for a second
    assert handler.flush(timeout=10)
    assert handler.stats()["dropped"] == 50
    started = time.perf_counter()
    handler.close()
    assert time.perf_counter() - started < 3


@pytest.mark.django_db(transaction=True)
def test_records_reach_the_table_with_their_context(attach, partitioned):
    handler = DatabaseLogHandler()
    logger = attach(handler, "qvp.tests.orders")
    try:
        raise ValueError("price not positive")
    except ValueError:
        logger.exception("order %s refused", 42, extra={"account": "alpha"})
    logger.info("a\x00b")
    assert handler.flush(timeout=10)
    # (The settings' handler on the root logger may write other tests' warnings too.)
    records = {r.level: r for r in SystemLog.objects.filter(logger="qvp.tests.orders")}
    error = records["ERROR"]
    assert error.logger == "qvp.tests.orders"
    assert error.message == "order 42 refused"
    assert error.context["account"] == "alpha"
    assert "ValueError: price not positive" in error.context["exception"]
    assert error.context["function"] == "test_records_reach_the_table_with_their_context"
    assert records["INFO"].message == "a\ufffdb"
    assert handler.stats() == {"written": 2, "dropped": 0, "queued": 0}


@pytest.mark.django_db(transaction=True)
def test_a_record_outlives_the_transaction_that_failed(attach, partitioned):
    handler = DatabaseLogHandler()
    logger = attach(handler)

    def book():
        with transaction.atomic():
            logger.error("booking failed")
            raise RuntimeError

    with pytest.raises(RuntimeError):
        book()
    assert handler.flush(timeout=10)
    assert SystemLog.objects.filter(message="booking failed").exists()


@pytest.mark.django_db(transaction=True)
def test_dropped_records_are_reported_once_the_database_is_back(attach, partitioned):
    handler = DatabaseLogHandler(conninfo=DEAD, retry_after=0.01)
    logger = attach(handler)
    for i in range(3):
        logger.error("lost %s", i)
    assert handler.flush(timeout=10)
    handler.conninfo = None  # the database is back
    time.sleep(0.05)
    logger.error("back")
    assert handler.flush(timeout=10)
    report = SystemLog.objects.get(logger="signals.systemlog", context__dropped_total=3)
    assert report.level == "WARNING"
    assert report.message.startswith("3 log record(s) dropped")
    assert report.context == {"dropped": 3, "dropped_total": 3}
    assert SystemLog.objects.filter(message="back").exists()
    assert not SystemLog.objects.filter(message__startswith="lost ").exists()
