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
from django.core.paginator import Page
from django.core.paginator import Paginator as DjangoPaginator
from django.db import connections, models
from django.db.models import Count, QuerySet, Window
from django.db.models.query import ModelIterable, ValuesIterable
from rest_framework import pagination
from rest_framework.exceptions import NotFound

from qvp_site.parsers import storable

if TYPE_CHECKING:
    from rest_framework.request import Request
    from rest_framework.views import APIView


if TYPE_CHECKING:
    _Paginator = DjangoPaginator[Any]
else:
    _Paginator = DjangoPaginator  # not subscriptable at run time

# The page's rows carry the count of the whole list under this name.
_TOTAL = "_qvp_list_total"
# Made once: an expression works out its identity (by inspecting its constructor's signature)
# the first time it is compared, and its copies, made by each query that resolves it, keep it.
_COUNT_OVER_ALL = Window(Count("*"))


class CountingPaginator(_Paginator):
    """Django's paginator, reading a page and the list's count in one statement
    (``COUNT(*) OVER ()`` beside the page's rows, counted before LIMIT/OFFSET) rather than a
    ``SELECT COUNT(*)`` first: a round trip fewer for each list. Same rows, same count (the
    same snapshot, even). A page that comes back empty, and lists the window would count
    differently (DISTINCT, grouped, combined, already sliced, or neither models nor dicts),
    take Django's way. Rows read as dicts carry the count as a key of their own, which the
    converters of ``qvp_site.api.rows`` do not read."""

    def page(self, number: Any) -> Page[Any]:
        rows = self._with_count(number)
        if not rows:
            return super().page(number)
        first = rows[0]
        total = first[_TOTAL] if isinstance(first, dict) else getattr(first, _TOTAL)
        self.__dict__["count"] = total  # Django's cached_property
        return Page(rows, int(number), self)  # what Django's _get_page makes

    def _with_count(self, number: Any) -> list[Any]:
        queryset = self.object_list
        if not (isinstance(queryset, QuerySet) and _countable_by_window(queryset)):
            return []
        try:
            number = int(number)
        except (TypeError, ValueError):
            return []  # Django's page() names the error
        if number < 1:
            return []
        bottom = (number - 1) * self.per_page
        counted = queryset.annotate(**{_TOTAL: _COUNT_OVER_ALL})
        return list(counted[bottom : bottom + self.per_page])


def _countable_by_window(queryset: QuerySet[Any]) -> bool:
    query = queryset.query
    return (
        queryset._iterable_class in (ModelIterable, ValuesIterable)
        and not query.distinct
        and query.group_by is None
        and not query.combinator
        and not query.is_sliced
        and not query.annotations  # none that aggregate, nor a name taken
    )


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE
    django_paginator_class = CountingPaginator


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
