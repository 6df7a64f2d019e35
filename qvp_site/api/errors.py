"""Refusals as responses: ``{"detail": message, "rule": name}`` (and ``index``, the batch item).

A rule that refuses a write, the database's (a CHECK constraint, a trigger's refusal) or the
domain's ahead of it (``qvp_site.refusals.RuleRefusal``), answers 400 for bad data, 409 for a
conflict with a record's state or an existing record, 403 for a row of an account the user may
not touch: never a 500. Which of an app's rules are conflicts is the app's to say
(``conflict_rules`` on its views): qvp_site knows no app's rules.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from django.db import DatabaseError, transaction
from rest_framework import exceptions, serializers
from rest_framework.response import Response

from qvp_site.refusals import RuleRefusal

if TYPE_CHECKING:
    from rest_framework.views import APIView

    _ViewBase = APIView  # the mixin goes on views: its super() is theirs
else:
    _ViewBase = object

UNIQUE_VIOLATION = "23505"
INSUFFICIENT_PRIVILEGE = "42501"


class Refused(exceptions.APIException):
    """A rule refused the request: ``{"detail": ..., "rule": ...}`` (and the batch index)."""

    status_code = 400
    default_code = "refused"

    def __init__(self, message: str, rule: str, status: int = 400, index: int | None = None):
        super().__init__(message)
        self.status_code = status
        # Set plainly rather than through APIException, which would turn the index into text.
        detail: dict[str, Any] = {"detail": message, "rule": rule}
        if index is not None:
            detail["index"] = index
        self.detail = detail

    @classmethod
    def of(cls, refusal: RuleRefusal, index: int | None = None) -> Refused:
        """The answer to a refusal by a rule of the domain."""
        return cls(refusal.message, refusal.rule, 409 if refusal.conflict else 400, index)


def refusal(
    error: DatabaseError, index: int | None = None, conflict_rules: Collection[str] = ()
) -> Refused | None:
    """The response to a database error that a rule raised; None for anything else (a bug)."""
    cause = error.__cause__
    state, diag = getattr(cause, "sqlstate", None) or "", getattr(cause, "diag", None)
    if diag is None:
        return None
    message, rule = diag.message_primary or str(cause), diag.constraint_name or ""
    if state == UNIQUE_VIOLATION:  # ours included: the record exists already
        return Refused(message, rule or "unique", 409, index)
    if state == INSUFFICIENT_PRIVILEGE and "row-level security" in message:  # not the user's
        return Refused(message, "row_level_security", 403, index)
    if state.startswith(("23", "22")):  # integrity (CHECK, triggers' refusals) or bad data
        return Refused(message, rule or state, 409 if rule in conflict_rules else 400, index)
    return None


@contextmanager
def judged_by_database(
    index: int | None = None, conflict_rules: Collection[str] = ()
) -> Iterator[None]:
    """Writes in a savepoint whose refusal, by the database or a rule of the domain, becomes a
    400/409 response (naming ``index``, the batch item, when given)."""
    try:
        with transaction.atomic():
            yield
    except RuleRefusal as refused:
        raise Refused.of(refused, index) from refused
    except DatabaseError as error:
        answer = refusal(error, index, conflict_rules)
        if answer is None:
            raise
        raise answer from error


class RefusalsAsResponses(_ViewBase):
    """Views whose refusals by a rule answer 4xx (with the rule), never 500.

    ``conflict_rules``: the rules whose refusal is a conflict with a record's state (409)."""

    conflict_rules: frozenset[str] = frozenset()

    def judged(self, index: int | None = None) -> AbstractContextManager[None]:
        """``judged_by_database`` with this view's conflict rules."""
        return judged_by_database(index, self.conflict_rules)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, RuleRefusal):
            exc = Refused.of(exc)
        elif isinstance(exc, DatabaseError):
            exc = refusal(exc, conflict_rules=self.conflict_rules) or exc
        return super().handle_exception(exc)


# The body of a refusal, for the schema (a docstring here would become its description).
class RefusalSerializer(serializers.Serializer[Any]):
    detail = serializers.CharField(help_text="the rule's message")
    rule = serializers.CharField(help_text="the database constraint or rule that refused")
    index = serializers.IntegerField(required=False, help_text="the batch item refused")
