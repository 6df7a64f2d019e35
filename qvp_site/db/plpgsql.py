"""Server-side steps of the migration operations: DO blocks, and the warnings they raise.

An operation's SQL is a function of its arguments, the model state and the engine alone, so
that ``sqlmigrate`` shows exactly what runs and a released migration runs the same SQL on
every database. What depends on the rows or on the catalog (the oldest row, whether a table
is already partitioned, the constraints to recreate) is decided by the server, in a DO block,
rather than read by Python first.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from qvp_site.db.quoting import ident, literal


def do_block(body: str) -> str:
    """``DO`` of a PL/pgSQL block (``[DECLARE ...] BEGIN ... END``), dollar-quoted with a tag
    the body does not hold (a quoted name may contain ``$qvp$``)."""
    tag, number = "$qvp$", 0
    while tag in body:
        number += 1
        tag = f"$qvp{number}$"
    return f"DO {tag}\n{body.strip()}\n{tag}"


def indent(text: str, spaces: int = 4) -> str:
    """``text`` indented, to nest a block's statements inside another's."""
    pad = " " * spaces
    return "\n".join(pad + line if line.strip() else line for line in text.strip().splitlines())


def regclass(table: str) -> str:
    """``table`` as a regclass constant: it resolves when the statement runs."""
    return f"{literal(ident(table))}::regclass"


def interval(value: object) -> str:
    """An interval constant, from an ``Interval`` or its text."""
    return f"{literal(str(value))}::interval"


def utc_add(timestamp_sql: str, interval_sql: str) -> str:
    """``timestamp + interval`` counted in UTC: days and months of a timestamptz are counted
    in the session's time zone otherwise, where a day may last 23 or 25 hours."""
    return f"(({timestamp_sql}) AT TIME ZONE 'UTC' + {interval_sql}) AT TIME ZONE 'UTC'"


@contextmanager
def warnings_logged(connection: psycopg.Connection, logger: logging.Logger) -> Iterator[None]:
    """Log on ``logger`` the WARNINGs the server raises meanwhile (RAISE WARNING in a DO
    block): psycopg drops them unless a handler takes them."""

    def log(diagnostic: psycopg.errors.Diagnostic) -> None:
        if diagnostic.severity_nonlocalized == "WARNING":
            logger.warning("%s", diagnostic.message_primary)

    connection.add_notice_handler(log)
    try:
        yield
    finally:
        connection.remove_notice_handler(log)
