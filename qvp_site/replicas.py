"""Read replicas: read-only requests read from a streaming replica, everything else the primary.

``DATABASE_REPLICA_URLS`` (comma-separated) adds the databases ``replica_0``, ``replica_1``…
A request is served from a replica only when it cannot need its own writes: a GET, HEAD or
OPTIONS of an identified user outside the admin (``ActingUserMiddleware`` picks the replica
and opens the request's transaction there too, and names the user there, since row-level
security reads the user on each connection, the primary's included). Within such a request
the primary takes over for good as soon as anything writes (the router is asked where to
write) or the code opens a transaction of its own on the primary: from then on the request
reads what it wrote. Commands, the scheduler, the admin and every other request use the
primary only.

A replica is behind the primary by its replication lag (``replica_lag``): a client that wrote
in one request and reads in the next may not see its write yet on the replica. One further
behind than QVP_REPLICA_MAX_LAG_SECONDS (a replica whose replay stalled) is passed over, its
lag looked at again every LAG_CHECK_INTERVAL seconds, not at every request.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from contextvars import ContextVar
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DatabaseError, connections, transaction

PRIMARY = "default"
logger = logging.getLogger(__name__)
READ_ONLY_METHODS = {"GET", "HEAD", "OPTIONS"}
LAG_CHECK_INTERVAL = 5.0
# alias -> (when it was measured, on the monotonic clock; its lag in seconds), per process
_lag_seen: dict[str, tuple[float, float]] = {}


@dataclass
class Routing:
    """Where the current request reads, and who acts in it."""

    replica: str
    base_depth: int  # the primary's atomic blocks the request itself opened
    pinned: bool = False
    user: object = None
    declared_on: set[str] = field(default_factory=set)


_routing: ContextVar[Routing | None] = ContextVar("qvp_replica_routing", default=None)


def replica_aliases() -> list[str]:
    return list(settings.QVP_REPLICA_ALIASES)


class ReplicaRouter:
    """Reads to the request's replica unless the request is pinned to the primary."""

    def db_for_read(self, model, **hints) -> str | None:
        state = _routing.get()
        if state is None:
            return None
        if state.pinned or _own_transaction(state):
            _pin(state)
            return PRIMARY
        return state.replica

    def db_for_write(self, model, **hints) -> str:
        state = _routing.get()
        if state is not None:
            _pin(state)
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints) -> bool:
        return True  # replicas are copies of the primary: the same rows everywhere

    def allow_migrate(self, db, app_label, model_name=None, **hints) -> bool:
        return db == PRIMARY


def _own_transaction(state: Routing) -> bool:
    return len(connections[PRIMARY].atomic_blocks) > state.base_depth


def _pin(state: Routing) -> None:
    """From now on the request reads and writes the primary, as its user."""
    state.pinned = True
    primary_in_transaction = connections[PRIMARY].in_atomic_block
    if state.user is not None and PRIMARY not in state.declared_on and primary_in_transaction:
        _declare(state, PRIMARY)


def _declare(state: Routing, alias: str) -> None:
    from qvp_site.acting import declare

    state.declared_on.add(alias)
    declare(state.user, using=alias)


def declare_request_user(user) -> bool:
    """Name the request's user on the replica it reads from and on the primary; False
    outside a routed request (the caller names the user on the primary as usual). On the
    primary at once, in the request's own transaction: named later, inside a view's
    savepoint, the name would be rolled back with that savepoint."""
    state = _routing.get()
    if state is None:
        return False
    state.user = user
    state.declared_on.clear()
    _declare(state, state.replica)
    if connections[PRIMARY].in_atomic_block:
        _declare(state, PRIMARY)
    return True


def routable(request) -> bool:
    """Whether the request may read from a replica (replicas are configured, it reads only,
    it is not the admin)."""
    if not replica_aliases() or request.method not in READ_ONLY_METHODS:
        return False
    from django.urls import reverse

    return not request.path_info.startswith(reverse("admin:index"))


@contextmanager
def routed(replica: str) -> Iterator[Routing]:
    """Route the reads of the code inside to ``replica`` (one transaction there), as a
    read-only request is; the primary takes over when anything writes."""
    with transaction.atomic(using=replica):
        state = Routing(replica=replica, base_depth=len(connections[PRIMARY].atomic_blocks))
        token = _routing.set(state)
        try:
            yield state
        finally:
            _routing.reset(token)


def request_routing(request):
    """The context of a request's transaction: on a replica when the request may read one
    (ActingUserMiddleware enters it once its transaction on the primary is open). A replica
    that cannot be reached is passed over, and with none left the primary serves."""
    if routable(request):
        aliases = replica_aliases()
        for alias in random.sample(aliases, len(aliases)):  # spreading the load
            if _reachable(alias) and _caught_up(alias):
                return routed(alias)
    return nullcontext()


def _reachable(alias: str) -> bool:
    connection = connections[alias]
    try:
        connection.close_if_health_check_failed()
        connection.ensure_connection()
    except DatabaseError as error:
        logger.warning("replica %s unreachable, reading the primary: %s", alias, error)
        return False
    return True


def _caught_up(alias: str) -> bool:
    """Whether the replica's replay lag is within QVP_REPLICA_MAX_LAG_SECONDS, as measured at
    most LAG_CHECK_INTERVAL seconds ago."""
    limit = settings.QVP_REPLICA_MAX_LAG_SECONDS
    if not limit:
        return True
    now = time.monotonic()
    seen = _lag_seen.get(alias)
    if seen is None or now - seen[0] > LAG_CHECK_INTERVAL:
        try:
            lag = replica_lag(alias)
        except DatabaseError as error:
            logger.warning("replica %s: lag unknown, reading the primary: %s", alias, error)
            return False
        seen = _lag_seen[alias] = (now, lag["lag_seconds"] if lag else 0.0)
    if seen[1] > limit:
        logger.warning("replica %s is %.1f s behind, reading the primary", alias, seen[1])
        return False
    return True


def forget_lag() -> None:
    """Measure every replica's lag afresh at the next request (tests, after a change)."""
    _lag_seen.clear()


def replica_lag(alias: str) -> dict | None:
    """How far the replica ``alias`` is behind its primary: bytes received but not replayed,
    and seconds since the last replayed transaction when it has not replayed all it received
    (0 when it has). None when the database is not a standby. For the system page."""
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT role, replica, state, lag_bytes, lag_seconds FROM qvp_replication()"
            " WHERE role = 'standby'"
        )
        row = cursor.fetchone()
    if row is None:
        return None
    return {
        "source": row[1],
        "state": row[2],
        "lag_bytes": int(row[3] or 0),
        "lag_seconds": float(row[4] or 0),
    }
