"""``BulkFormats``: a list's rows in Arrow, Parquet or CSV, streamed, as well as its JSON pages.

A viewset that mixes it in answers ``?format=arrow|parquet|csv`` (or the formats' media
types in ``Accept``) on its list with every row of a time range at once: the same queryset as
its JSON (filters, the user's scoping; row-level security as the user), without pages, read
straight into Arrow (``reader``) and written batch by batch (``formats``). A bulk list needs a
bounded range instead of pages: ``start`` and ``end`` both given, at most the setting
``bulk_max_range`` names apart (``QVP_API_BULK_MAX_RANGE``, a month for ticks: see
``bounded_range``), so that one request's cost is known ahead. Refusals (bad parameters, a
range too long, no permission) are JSON, as ever; a bulk format asked of anything but a list
(or another action the viewset names in ``bulk_actions``, which then streams by
``bulk_plan_response`` itself) is not offered there: a 406 naming what is.

The columns are the JSON rows' (``columns``): the serializer's fields by their sources, or
``bulk_columns`` where a field is computed. The rows come oldest first (``bulk_ordering``).

The stream is read after the view has returned and its request's transaction has ended, in
a transaction of the reader's own connection that names the user again and has the stream's
time limit, each statement and the stream as a whole (``time_limits.Deadline``), as the
admin's CSV export has. A stream past its limit, or that fails, is cut short: the server
drops the connection, and the client sees a failed download, never a file that looks whole.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, cast

import pyarrow as pa
from adbc_driver_manager import DatabaseError as AdbcError
from django.conf import settings
from django.db import connections
from django.db.models import QuerySet
from django.http import StreamingHttpResponse
from rest_framework import exceptions, serializers
from rest_framework.relations import ManyRelatedField, PrimaryKeyRelatedField, RelatedField
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.settings import api_settings

from qvp_site import time_limits
from qvp_site.acting import declaration
from qvp_site.api.bulk import columns as plans
from qvp_site.api.bulk import reader
from qvp_site.api.bulk.formats import RENDERERS, BulkRenderer, Format
from qvp_site.api.bulk.schema import BulkAutoSchema
from qvp_site.api.time_ranges import TimeRangeQuery

if TYPE_CHECKING:
    from rest_framework.views import APIView

    _ViewBase = APIView
else:
    _ViewBase = object

logger = logging.getLogger(__name__)
BULK_ACTOR = "api bulk read"
READ_AT = b"qvp:read_at"


class BoundedRange(TimeRangeQuery):
    """A bulk list's range: both bounds, at most the view's longest range apart (its
    ``bulk_max_range``, a setting's name, in the serializer's context)."""

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        missing = {
            self._name(bound): ["a bulk format reads a range: give start and end"]
            for bound in ("start", "end")
            if attrs.get(bound) is None
        }
        if missing:
            raise serializers.ValidationError(missing)
        setting = self.context.get("bulk_max_range", "QVP_API_BULK_MAX_RANGE")
        longest: timedelta = getattr(settings, setting)
        if attrs["end"] - attrs["start"] > longest:
            name = setting.replace("_RANGE", "_DAYS")
            raise serializers.ValidationError(
                {self._name("end"): [f"at most {span(longest)} after start ({name})"]}
            )
        return attrs


def span(length: timedelta) -> str:
    """``length`` in words: whole days as days, else hours."""
    if length % timedelta(days=1) == timedelta(0):
        return f"{length.days} days"
    return f"{length / timedelta(hours=1):g} hours"


def bounded_range(request: Request, setting: str = "QVP_API_BULK_MAX_RANGE") -> dict[str, datetime]:
    """The request's range, checked as a bulk read's against the setting ``setting``."""
    query = BoundedRange(data=request.query_params, context={"bulk_max_range": setting})
    query.is_valid(raise_exception=True)
    return {k: v for k, v in query.validated_data.items() if v is not None}


class BulkFormats(_ViewBase):
    """Mixin for a list's viewset (before its DRF bases): the bulk formats on its list."""

    schema = BulkAutoSchema()
    bulk_ordering: tuple[str, ...] = ("ts", "pk")
    bulk_max_range = "QVP_API_BULK_MAX_RANGE"  # the setting of its longest range
    # The actions that answer in the bulk formats: ``list`` here, others by their own code.
    bulk_actions: ClassVar[frozenset[str]] = frozenset({"list"})
    bulk_columns: Mapping[str, plans.Column] = {}  # name -> path or expression
    renderer_classes: list[type[BaseRenderer]] = [
        *cast("list[type[BaseRenderer]]", api_settings.DEFAULT_RENDERER_CLASSES),
        *RENDERERS,
    ]

    def get_renderers(self) -> list[BaseRenderer]:
        """The bulk formats on the actions that stream (``bulk_actions``) only: elsewhere
        content negotiation falls back to JSON, or answers 406 naming what is offered."""
        renderers: list[BaseRenderer] = super().get_renderers()
        if getattr(self, "action", None) in self.bulk_actions:
            return renderers
        return [r for r in renderers if not isinstance(r, BulkRenderer)]

    def finalize_response(self, request: Request, response: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(getattr(request, "accepted_renderer", None), BulkRenderer):
            # Not a stream: a refusal, or a 406's negotiation. Answered in JSON.
            request.accepted_renderer = JSONRenderer()
            request.accepted_media_type = JSONRenderer.media_type
        return super().finalize_response(request, response, *args, **kwargs)

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        renderer = getattr(request, "accepted_renderer", None)
        if not isinstance(renderer, BulkRenderer):
            return super().list(request, *args, **kwargs)  # type: ignore[misc]
        if not request.user.is_authenticated:  # a list opened to all: never read as the system
            raise exceptions.NotAuthenticated()
        bounds = bounded_range(request, self.bulk_max_range)
        rows = self.filter_queryset(self.get_queryset())  # type: ignore[attr-defined]
        return self.bulk_response(request, renderer.bulk, rows, bounds)

    def bulk_response(
        self, request: Request, fmt: Format, rows: QuerySet[Any], bounds: Mapping[str, Any]
    ) -> StreamingHttpResponse:
        """The stream of ``rows``'s columns in ``fmt``."""
        ordered = rows.order_by(*self.bulk_ordering)
        plan = plans.plan(ordered, self.get_bulk_columns(), csv=fmt.name == "csv")
        return self.bulk_plan_response(request, fmt, plan, bounds)

    def bulk_plan_response(
        self, request: Request, fmt: Format, plan: plans.ReadPlan, bounds: Mapping[str, Any]
    ) -> StreamingHttpResponse:
        """The stream of what ``plan`` reads (``plans.plan``, or ``plans.wrapped`` for a list
        read by SQL of its own) in ``fmt``."""
        filename = self.bulk_filename(fmt, bounds)
        if request.method == "HEAD":  # the headers alone: a server would read every row for
            return streamed(fmt, None, [], filename)  # nothing (gunicorn drops HEAD bodies)
        preamble = acting_preamble(request, plan.alias)
        return streamed(fmt, plan, preamble, filename)

    def get_bulk_columns(self) -> dict[str, plans.Column]:
        """The JSON rows' columns: each readable serializer field by its source, unless
        ``bulk_columns`` names it."""
        fields = self.get_serializer().fields  # type: ignore[attr-defined]
        columns: dict[str, plans.Column] = {}
        for name, field in fields.items():
            if name in self.bulk_columns:
                columns[name] = self.bulk_columns[name]
            elif not field.write_only:
                columns[name] = _path(type(self).__name__, name, field)
        return columns

    def bulk_filename(self, fmt: Format, bounds: Mapping[str, Any]) -> str:
        stamp = "-".join(bounds[b].astimezone(UTC).strftime("%Y%m%dT%H%M%SZ") for b in bounds)
        base = getattr(self, "basename", None) or "rows"
        return f"{base}-{stamp}.{fmt.extension}"


def _path(view: str, name: str, field: serializers.Field[Any, Any, Any, Any]) -> str:
    """The values() path of a serializer field's source: a key's own for a related field
    written as its key, the named field's for one written by a slug; a field computed in
    Python has none (the view's ``bulk_columns`` must say what it is)."""
    path = str(field.source).replace(".", "__")
    if isinstance(field, serializers.SlugRelatedField):
        return f"{path}__{field.slug_field}"
    computed = field.source == "*" or isinstance(
        field, serializers.SerializerMethodField | serializers.BaseSerializer | ManyRelatedField
    )  # a nested record or a list of keys: no one column
    if computed or (
        isinstance(field, RelatedField) and not isinstance(field, PrimaryKeyRelatedField)
    ):
        raise NotImplementedError(f"{view}: bulk_columns must say what {name} is")
    return path


def acting_preamble(request: Request, alias: str) -> list[str]:
    """The statements that make the reader's transaction act as Django's does on ``alias``:
    the role Django's connection acts as, the user (never the system: a request without a
    user is refused), the stream's time limit."""
    if not request.user.is_authenticated:
        raise exceptions.NotAuthenticated()
    connection = connections[alias]
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_user = session_user, current_user::text")
        same_role, role = cursor.fetchone()
    statements = [] if same_role else [plans.compose(alias, "SET LOCAL ROLE %s", [role])]
    sql, params = declaration(request.user, actor=BULK_ACTOR, limit=time_limits.STREAM)
    statements.append(plans.compose(alias, sql, params))
    statements.append("SET LOCAL TimeZone = 'UTC'")
    return statements


def streamed(
    fmt: Format, plan: plans.ReadPlan | None, preamble: list[str], filename: str
) -> StreamingHttpResponse:
    """The response streaming what ``plan`` reads in ``fmt``; with no plan, none (HEAD)."""
    content_type = f"{fmt.media_type}; charset=utf-8" if fmt.name == "csv" else fmt.media_type
    chunks = _chunks(fmt, plan, preamble) if plan is not None else iter(())
    response = StreamingHttpResponse(chunks, content_type=content_type)
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _chunks(fmt: Format, plan: plans.ReadPlan, preamble: list[str]) -> Iterator[bytes]:
    """The response's bytes, read when it is sent (see the module)."""
    deadline = time_limits.Deadline(time_limits.STREAM)
    try:
        with reader.reading(plan.alias, preamble, plan.sql) as batches:
            yield from fmt.write(plan.schema, _batches(batches, plan, deadline))
    except (AdbcError, OSError) as error:  # the driver's, or Arrow's while reading batches
        if not cancelled(error):
            logger.error("bulk read failed: %s", error)
            raise
        raise time_limits.TimeLimitExceeded(
            time_limits.message(time_limits.STREAM, error)
        ) from error
    except Exception:  # a value Arrow cannot convert, a writer's error: cut short, and said
        logger.exception("bulk read failed")
        raise


def cancelled(error: Exception) -> bool:
    """Whether the driver's ``error`` is the time limit's cancel: the driver's errors carry
    its SQLSTATE, Arrow's (raised reading a batch) only PostgreSQL's message."""
    text = str(error)
    return time_limits.QUERY_CANCELED in text or "canceling statement due to statement" in text


def _batches(
    batches: Iterable[pa.RecordBatch], plan: plans.ReadPlan, deadline: time_limits.Deadline
) -> Iterator[pa.RecordBatch]:
    for batch in batches:
        deadline.check()
        yield reader.converted(batch, plan.columns, plan.schema)
