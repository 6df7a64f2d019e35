"""The bases every app's admin builds on: the one module an app's ``admin.py`` imports them
from, so that big tables, exports, auditors and read-only records behave the same in every app.

- ``NotCounted`` (with ``EstimatedCountPaginator``): lists of tables that grow without end,
  never counted in full; ``LargeTableAdmin`` adds what a table of an instrument's rows needs.
- ``CsvExport`` (``qvp_site.admin_export``): the list as CSV, as filtered.
- ``AuditorsReadOnly`` (``qvp_site.admin_access``): auditors view, never change.
- ``ViewOnly``: records written by jobs, commands or migrations, never by hand.
- ``IndexedValueFilter``: a list filter whose choices come from an index, not a scan.
- ``history_url``: the audit log's entries of one row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar
from urllib.parse import urlencode

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property

from qvp_site.admin_access import AuditorsReadOnly, BlankToFieldIsThePk
from qvp_site.admin_export import CsvExport
from qvp_site.db import status
from qvp_site.db.scans import distinct_leading_values

__all__ = [
    "AuditorsReadOnly",
    "CsvExport",
    "EstimatedCountPaginator",
    "IndexedValueFilter",
    "LargeTableAdmin",
    "NotCounted",
    "ReadOnlyAdmin",
    "StaysWithItsInstrument",
    "ViewOnly",
    "history_url",
]

# Django's ModelAdmin and Paginator are generic in the stubs only: subscripted for mypy alone.
if TYPE_CHECKING:
    _ModelAdmin = admin.ModelAdmin[Any]
    _Paginator = Paginator[Any]
else:
    _ModelAdmin = admin.ModelAdmin
    _Paginator = Paginator


class EstimatedCountPaginator(_Paginator):
    """Counts from the planner's estimate past a threshold instead of scanning every row."""

    object_list: QuerySet[Any]  # an admin changelist's rows
    exact_below = 10_000

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if query.where:  # filtered: count exactly, but never past a bound
            return self.object_list[: self.exact_below + 1].count()
        with connections[self.object_list.db].cursor() as cursor:
            rows, _size = status.estimate(cursor, self.object_list.model._meta.db_table)
        return self.object_list.count() if rows < self.exact_below else rows


class NotCounted:
    """ModelAdmin mixin for tables that grow without end: no full count, no facet counts
    (a count per filter choice over millions of rows), a paginator that does not count."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator: ClassVar[type[_Paginator]] = EstimatedCountPaginator
    list_per_page = 100


class LargeTableAdmin(CsvExport, AuditorsReadOnly, NotCounted, _ModelAdmin):
    """A table of an instrument's rows (bars, ticks, signals...): not counted, the instrument
    a raw id (a select of every instrument would be one query per row's page)."""

    raw_id_fields = ["instrument"]
    list_select_related = ["instrument"]


class ViewOnly(BlankToFieldIsThePk):
    """ModelAdmin mixin (put it first) for records written by jobs, commands or migrations:
    viewed, never added, changed or deleted here, since the admin must not rewrite them."""

    def has_add_permission(self, request: HttpRequest, *args: Any) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdmin(ViewOnly, CsvExport, _ModelAdmin):
    """Written by the scheduler, by commands or by migrations, never by hand."""


class StaysWithItsInstrument:
    """For a row of a table distributed by instrument on Citus: its instrument read-only once
    stored, and a change saved without it. Citus refuses an UPDATE that sets a distribution
    column, even to the value it holds ("modifying the partition value of rows is not
    allowed"), and Django's save sets every column; a row about another instrument is another
    row, deleted and added again. The same on every engine, so that the admin behaves alike."""

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return fields if obj is None else [*fields, "instrument"]

    def save_model(self, request: HttpRequest, obj: Any, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)  # type: ignore[misc]
            return
        kept = [f.name for f in obj._meta.concrete_fields if not f.primary_key]
        obj.save(update_fields=[name for name in kept if name != "instrument"])


class IndexedValueFilter(admin.SimpleListFilter):
    """Choices from the values present, without a scan (``parameter_name`` must lead an index
    of the model's table); filters on equality."""

    parameter_name: str  # required: SimpleListFilter refuses a filter without one

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        table = model_admin.model._meta.db_table
        return [(v, v) for v in distinct_leading_values(self.parameter_name, table=table)]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        value = self.value()
        return queryset.filter(**{self.parameter_name: value}) if value else queryset


def history_url(table_name: str, row_key: object) -> str:
    """The audit log's changelist narrowed to one row's entries (the history index's key)."""
    query = urlencode({"table_name": table_name, "row_key": str(row_key)})
    return f"{reverse('admin:qvp_site_auditentry_changelist')}?{query}"
