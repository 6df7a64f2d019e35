"""A constraint's refusal of a COPY row raised as the IntegrityError it is, on every engine.

Citus's COPY into a distributed table relays a worker's refusal with the worker's message and
detail but without its SQLSTATE (``ReportCopyError`` in Citus's commands/multi_copy.c): an
internal error (XX000), which a caller that tells a refused row from a fault by its class
would take for a fault. The refusals of a constraint are told by the wording PostgreSQL gives
them, which the worker's message keeps."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import IntegrityError, InternalError

# PostgreSQL's messages for the integrity constraint violations (class 23) a COPY meets.
REFUSALS = (
    "duplicate key value violates unique constraint",
    "violates foreign key constraint",
    "violates check constraint",
    "violates not-null constraint",
    "violates exclusion constraint",
    "no partition of relation",
)


def is_refusal(error: InternalError) -> bool:
    """Whether an internal error is a worker's constraint refusal relayed by Citus's COPY."""
    cause = error.__cause__
    if getattr(cause, "sqlstate", None) != "XX000":
        return False
    message = getattr(getattr(cause, "diag", None), "message_primary", None) or ""
    return any(refusal in message for refusal in REFUSALS)


@contextmanager
def refusals_as_integrity_errors() -> Iterator[None]:
    """Around a COPY (inside Django's ``wrap_database_errors``): a worker's constraint
    refusal relayed as an internal error raised as an IntegrityError, the worker's error its
    cause."""
    try:
        yield
    except InternalError as error:
        if not is_refusal(error):
            raise
        raise IntegrityError(*error.args) from error.__cause__
