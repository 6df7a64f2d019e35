"""COPY into a table that leaves out the rows a WHERE clause refuses, on every engine.

PostgreSQL's ``COPY ... FROM STDIN ... WHERE`` leaves such rows out, and its row count says
how many it wrote. Citus's COPY into a distributed table takes no WHERE: there every row is
written, and the caller counts the rows the clause holds afterwards (``recount``), within a
scope that held none before, so that a count short of the lines sent says the same thing.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.db import InternalError
from django.db.backends.utils import CursorWrapper

from qvp_site.db import engine
from qvp_site.db.quoting import ident


@dataclass(frozen=True)
class FilteredCopy:
    statement: str
    recount: str | None = None  # Citus: the query counting the rows ``where`` holds in the scope
    # What a refused row raises besides IntegrityError and DataError: Citus's COPY reports a
    # worker's refusal (a CHECK, a row no partition holds) as an internal error (XX000).
    refusals: tuple[type[Exception], ...] = ()


def filtered_copy(
    cursor: CursorWrapper, table: str, columns: str, options: str, where: str, scope: str
) -> FilteredCopy:
    """COPY into ``table`` (``columns`` and ``options`` as SQL) of the rows ``where`` holds;
    ``scope`` (SQL, the rows this load alone may write, such as one instrument's) bounds the
    recount where the engine cannot filter, to the rows stamped by this transaction
    (``known_from``, its now()): another load's committed meanwhile has a stamp of its own."""
    copy = f"COPY {ident(table)} ({columns}) FROM STDIN ({options})"
    if not engine.is_citus(cursor.db):
        return FilteredCopy(f"{copy} WHERE {where}")
    # Read here: a worker reads now() as its own transaction's start, not the coordinator's,
    # which stamped the rows. Written by the server in UTC, in ISO form whatever the DateStyle:
    # the caller may have set the session's zone (a file's naive times), which Django's reading
    # of a timestamptz does not expect.
    cursor.execute(
        "SELECT quote_literal(to_char(now() AT TIME ZONE 'UTC',"
        ' \'YYYY-MM-DD"T"HH24:MI:SS.US"Z"\'))'
    )
    stamped = cursor.fetchone()[0]
    recount = (
        f"SELECT count(*) FROM {ident(table)}"
        f" WHERE {scope} AND known_from = {stamped}::timestamptz AND {where}"
    )
    return FilteredCopy(copy, recount, (InternalError,))
