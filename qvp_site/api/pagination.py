"""The API's pages: numbered pages for small tables, cursor pages for the tables that grow
without end, newest first unless a list says otherwise.

Every paginator lets a client choose ``?page_size=`` up to ``API_MAX_PAGE_SIZE``.
"""

from __future__ import annotations

from functools import cache

from django.conf import settings
from rest_framework import pagination


class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


class CursorPagination(pagination.CursorPagination):
    """Pages by position rather than offset: no count of millions of rows, each page an index
    range scan, and pages stay stable while new rows arrive. Subclasses say the ordering."""

    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


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
