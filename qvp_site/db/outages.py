"""Which database errors mean the database could not serve for now, so that the same request
may succeed when sent again: a connection lost or refused, the server shutting down or
starting, too many connections, a deadlock or a serialization failure (the transaction chosen
to give way), an I/O error, and on Citus a worker that does not answer (a connection error, or
an I/O error in the middle of a COPY).

Other errors psycopg files under ``OperationalError`` fail the same way every time (a disk
full, an index row too large, an object in use, a lock not available at once): they are no
outage, and a client told to retry would retry for ever.
"""

from __future__ import annotations

from django.db import OperationalError

# SQLSTATEs beside class 08 (connection exception).
TRANSIENT = frozenset(
    {
        "57P01",  # admin_shutdown: the server (or pg_terminate_backend) ended the session
        "57P02",  # crash_shutdown
        "57P03",  # cannot_connect_now: starting up or shutting down
        "53300",  # too_many_connections
        "40P01",  # deadlock_detected
        "40001",  # serialization_failure
        # io_error: a disk that fails a read or a write (the server cannot serve), and how
        # Citus reports a worker lost in the middle of a COPY ("failed to COPY to shard").
        "58030",
    }
)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` (Django's wrapper of a driver error) is an outage, as above. An error
    with no SQLSTATE is the driver's own: the connection went away without a word."""
    if not isinstance(error, OperationalError):
        return False
    state = getattr(error.__cause__, "sqlstate", None)
    return state is None or state.startswith("08") or state in TRANSIENT
