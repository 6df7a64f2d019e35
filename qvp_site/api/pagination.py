"""The API's pages: numbered pages for small tables, cursor pages for the tables that grow
without end, newest first unless a list says otherwise.

Every paginator lets a client choose ``?page_size=`` up to ``API_MAX_PAGE_SIZE``.

A cursor is the client's to send back, so any text may come as one: a cursor whose position
is not a value of the ordering's column (text where a time is expected, a time without its
offset, a number beyond the column's range, a NUL) is DRF's 404 "Invalid cursor", as a cursor
that does not decode is, never a database error.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db import connections, models
from django.db.models import QuerySet
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from qvp_site.parsers import storable

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


class CursorPagination(pagination.CursorPagination):
    """Pages by position rather than offset: no count of millions of rows, each page an index
    range scan, and pages stay stable while new rows arrive. Subclasses say the ordering."""

    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self._queryset = queryset  # whose ordering column the cursor's position must fit
        return super().paginate_queryset(queryset, request, view)

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        cursor = super().decode_cursor(request)
        # The position is text as decoded (the stubs say int).
        if (
            cursor is not None
            and cursor.position is not None
            and not self._fits(str(cursor.position))
        ):
            raise NotFound(self.invalid_cursor_message)
        return cursor

    def _fits(self, position: str) -> bool:
        """Whether ``position`` is a value of the ordering's first column, as the cursors this
        paginator writes are: the column's own conversion, validators (an integer column's
        range among them) and database preparation all accept it."""
        field = self._ordering_field()
        if not storable(position):
            return False
        if field is None:  # not a column (an annotation): compared as the text it is
            return True
        try:
            value: Any = field.to_python(position)
            # A time without its offset is no position a page wrote (they carry UTC's).
            if isinstance(value, datetime) and value.tzinfo is None and settings.USE_TZ:
                return False
            field.run_validators(value)
            field.get_db_prep_value(value, connections[self._queryset.db], prepared=False)
        except (ValidationError, ValueError, TypeError, OverflowError, ArithmeticError):
            return False
        return True

    def _ordering_field(self) -> models.Field[Any, Any] | None:
        model = self._queryset.model
        field = None
        for name in self.ordering[0].lstrip("-").split("__"):
            try:
                field = model._meta.get_field(name)
            except FieldDoesNotExist:
                return None
            model = field.related_model or model
        return field if isinstance(field, models.Field) else None


class NewestFirstPagination(CursorPagination):
    """Newest first by ``ts`` (then id, so that rows of one time keep one order)."""

    ordering = ("-ts", "-id")


@cache
def newest_first(column: str = "ts") -> type[NewestFirstPagination]:
    """The newest-first paginator of a list whose time is ``column``."""
    if column == "ts":
        return NewestFirstPagination
    name = "NewestFirstBy" + "".join(part.title() for part in column.split("_"))
    return type(name, (NewestFirstPagination,), {"ordering": (f"-{column}", "-id")})
