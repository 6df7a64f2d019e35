"""CSV export of an admin changelist: the rows of the list as the user sees it, whole.

``CsvExport`` (a ModelAdmin mixin) adds ``<changelist>/export.csv``; the changelist's
"Export CSV" link (``templates/admin/change_list_object_tools.html``) carries the page's query
string there, so the export holds the rows of the page's filters, search and ordering, under
the same visibility as the page: the queryset is the one Django's ChangeList builds from the
ModelAdmin's ``get_queryset`` (account scoping included), and row-level security applies as
on any read. Viewing is enough to export: operators and auditors alike.

Columns: the primary key, then the ``list_display`` entries that are model fields, in their
order (computed columns are left out: they would cost Python, or queries, per row), or the
ModelAdmin's ``export_fields`` when it names them. A foreign
key gives two columns, ``<name>_id`` and ``<name>`` (the related record's unique name, such as
an instrument's symbol, when its model has one). Times are ISO 8601 in UTC.

The rows are streamed from a server-side cursor in chunks of ``values_list`` tuples, never the
whole table in memory, inside a transaction of their own that names the user to the database
again: the response is iterated after the request's transaction has ended, and without a
declared user row-level security would show nothing.

That transaction has its own time limit, QVP_STREAM_STATEMENT_TIMEOUT (the request's ended with
the request's transaction): each statement (each fetch of a chunk) within it, and the stream as
a whole too, checked between chunks. A stream past its limit is rolled back and cut short (the
server drops the connection mid-response): the client sees a failed download, never a file that
looks whole. gunicorn's worker timeout is set above it (``qvp_site/gunicorn_conf.py``).

Text cells that a spreadsheet would run as a formula (starting with = + - @, a tab or a
carriage return) are prefixed with an apostrophe; numbers are written as numbers.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal

from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import (
    ERROR_FLAG,
    IS_FACETS_VAR,
    IS_POPUP_VAR,
    PAGE_VAR,
    TO_FIELD_VAR,
    ChangeList,
)
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import DatabaseError, models
from django.http import HttpRequest, HttpResponseRedirect, StreamingHttpResponse
from django.urls import path, reverse

from qvp_site import time_limits
from qvp_site.acting import acting_as
from qvp_site.parsers import JSONFormField

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
# Parameters of the page, not of the list: the export is of every page, without facet counts.
PAGE_ONLY = (PAGE_VAR, IS_FACETS_VAR, ERROR_FLAG, IS_POPUP_VAR, TO_FIELD_VAR)
EXPORT_ACTOR = "admin csv export"


class CheckedChangeList(ChangeList):
    """A changelist whose filters' bad values are the admin's ``?e=1``, never a 500.

    Django turns a bad value into IncorrectLookupParameters for its own field filters, but a
    SimpleListFilter's ``queryset`` (``?account=abc`` filtering an integer column) raises
    ValueError or ValidationError straight through. Whatever a filter, the search or a
    lookup raises while the list's query is built from the query string is the client's
    wrong value."""

    def get_queryset(self, request, exclude_parameters=None):
        try:
            return super().get_queryset(request, exclude_parameters)
        except IncorrectLookupParameters:
            raise
        except (ValueError, TypeError, ValidationError, ArithmeticError) as error:
            raise IncorrectLookupParameters(error) from error


class ExportChangeList(CheckedChangeList):
    """The changelist's filters, search, ordering and scoping without its page: no count, no
    page of results (the export reads every row of the queryset once, streaming)."""

    def get_results(self, request) -> None:
        self.result_count = self.full_result_count = None
        self.result_list = self.queryset.none()
        self.can_show_all = self.multi_page = False


def neutralised(value: object) -> object:
    """A cell as the CSV should hold it; text that a spreadsheet would read as a formula is
    kept as text by a leading apostrophe."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, bool | int | float | Decimal):
        return value
    if isinstance(value, dict | list):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True, default=str)
    text = str(value)
    return f"'{text}" if text.startswith(FORMULA_STARTS) else text


class _Echo:
    """A file-like object whose write hands the line back, for csv.writer to stream."""

    def write(self, value: str) -> str:
        return value


def _label_field(model: type[models.Model]) -> str | None:
    """The field that names a related record for people: the user name, or the first unique
    text field (an account's name), or a text field a constraint keeps unique among some rows
    (an instrument's symbol, unique among listed instruments); None when there is none."""
    username = getattr(model, "USERNAME_FIELD", None)
    if username:
        return username
    texts = [f for f in model._meta.concrete_fields if isinstance(f, models.CharField)]
    for field in texts:
        if field.unique and not field.primary_key:
            return field.name
    kept_unique = {
        c.fields[0]
        for c in model._meta.constraints
        if isinstance(c, models.UniqueConstraint) and len(c.fields) == 1
    }
    return next((f.name for f in texts if f.name in kept_unique), None)


def export_columns(model: type[models.Model], names: Iterable[str]) -> list[tuple[str, str]]:
    """(header, values_list lookup) for the primary key and each of ``names`` that is a
    concrete field of ``model``; a foreign key gives its id and its related record's label."""
    opts = model._meta
    columns = [(opts.pk.name, opts.pk.attname)]
    for name in names:
        try:
            field = opts.get_field(name)
        except FieldDoesNotExist:
            continue  # a computed column
        if not field.concrete or field.primary_key or field.many_to_many:
            continue
        if field.is_relation:
            columns.append((field.attname, field.attname))
            label = _label_field(field.related_model)
            if label:
                columns.append((field.name, f"{field.name}__{label}"))
        else:
            columns.append((field.name, field.name))
    return columns


def csv_lines(header: list[str], rows: Iterable[tuple]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([neutralised(value) for value in row])


class CsvExport:
    """ModelAdmin mixin: ``export.csv`` beside the changelist, and the link to it."""

    export_chunk_size = 2000
    export_fields: list[str] | None = None  # in place of list_display's fields

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        # Every admin of the site but auth's (which has no JSON) carries this mixin: its
        # forms' JSON fields are read here with the API parser's depth bound, a form error
        # rather than the decoder's RecursionError. Not CSV: the one hook all of them share.
        if isinstance(db_field, models.JSONField):
            kwargs.setdefault("form_class", JSONFormField)
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    def get_urls(self):
        opts = self.model._meta
        export = path(
            "export.csv",
            self.admin_site.admin_view(self.export_csv_view),
            name=f"{opts.app_label}_{opts.model_name}_export_csv",
        )
        # Before the ModelAdmin's own: its "<path:object_id>/" would take the path.
        return [export, *super().get_urls()]

    def changelist_view(self, request, extra_context=None):
        extra_context = {**(extra_context or {}), "csv_export_url": self.csv_export_url(request)}
        return super().changelist_view(request, extra_context)

    def csv_export_url(self, request: HttpRequest) -> str:
        """The export of the list that ``request`` shows: its filters, search and ordering."""
        opts = self.model._meta
        url = reverse(f"{self.admin_site.name}:{opts.app_label}_{opts.model_name}_export_csv")
        params = request.GET.copy()
        for name in PAGE_ONLY:
            params.pop(name, None)
        return f"{url}?{params.urlencode()}" if params else url

    def get_export_columns(self, request: HttpRequest) -> list[tuple[str, str]]:
        return export_columns(self.model, self.export_fields or self.get_list_display(request))

    def get_changelist(self, request, **kwargs):
        if getattr(request, "_qvp_csv_export", False):
            return ExportChangeList
        return CheckedChangeList

    def export_csv_view(self, request: HttpRequest):
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        request._qvp_csv_export = True
        try:
            queryset = self.get_changelist_instance(request).queryset
        except IncorrectLookupParameters:
            # As the changelist does with a filter it cannot apply: back to the list, flagged.
            changelist = reverse(
                f"{self.admin_site.name}:{self.opts.app_label}_{self.opts.model_name}_changelist"
            )
            return HttpResponseRedirect(f"{changelist}?{ERROR_FLAG}=1")
        response = StreamingHttpResponse(
            self.export_lines(request, queryset), content_type="text/csv; charset=utf-8"
        )
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        name = f"{self.opts.app_label}-{self.opts.model_name}-{stamp}.csv"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
        return response

    def export_lines(self, request: HttpRequest, queryset) -> Iterator[str]:
        """The CSV of the list's rows, line by line (the audit log's export is its own)."""
        columns = self.get_export_columns(request)
        rows = self._rows(request, queryset.values_list(*[lookup for _h, lookup in columns]))
        return csv_lines([header for header, _l in columns], rows)

    def _rows(self, request: HttpRequest, queryset) -> Iterator[tuple]:
        """The rows, read when the response is sent: in a transaction that names the user
        again (the request's has ended by then), from a server-side cursor in chunks, within
        the stream's time limit."""
        deadline = time_limits.Deadline(time_limits.STREAM)
        chunk = self.export_chunk_size
        with acting_as(
            EXPORT_ACTOR, user=request.user, using=queryset.db, limit=time_limits.STREAM
        ):
            try:
                for number, row in enumerate(queryset.iterator(chunk_size=chunk)):
                    if number % chunk == 0:
                        deadline.check()
                    yield row
            except DatabaseError as error:
                if not time_limits.cancelled(error):
                    raise
                raise time_limits.TimeLimitExceeded(
                    time_limits.message(time_limits.STREAM, error)
                ) from error
