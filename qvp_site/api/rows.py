"""Lists of many rows answered without a model instance per row: the rows are read with
``values()`` and each becomes its JSON object through converters made once per serializer,
the very conversions DRF's fields make (issue 27: a year of daily bars spent more time in
model instances and DRF's field-by-field serialization than in the database).

Only serializers made of plain fields read from a column of the same name (floats,
integers, text, choices, decimals, booleans, times, durations, JSON, and subclasses of these
that keep DRF's conversion) qualify (``plain``), and relations written as the related row's
id (``PrimaryKeyRelatedField``: its id column) or, given the column (``columns``, e.g.
``{"instrument": "instrument__symbol"}``), as a column of the related row: a view asks before
it reads, so a serializer that grows a computed field is answered by DRF's own way rather
than differently. The output is
what the serializer would have written, value for value (tests/qvp_site/test_request_path.py
compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from functools import cache
from typing import TYPE_CHECKING, Any, cast

from django.db.models import QuerySet
from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.settings import api_settings

from qvp_site.api.bulk.formats import BulkRenderer

if TYPE_CHECKING:
    from rest_framework.generics import GenericAPIView

Converter = Callable[[Any], Any]
# Fields converted by their own to_representation, of an instance made once.
_BY_THE_FIELD = (
    serializers.BigIntegerField,  # type: ignore[attr-defined]  # DRF 3.15's, not in the stubs
    serializers.BooleanField,
    serializers.ChoiceField,
    serializers.DecimalField,
    serializers.DurationField,
    serializers.JSONField,
)
# DRF's own conversion of each of these, for a value that is not None.
_PLAIN: dict[type[serializers.Field[Any, Any, Any, Any]], Converter] = {
    serializers.FloatField: float,
    serializers.IntegerField: int,
    serializers.CharField: str,
}


Columns = tuple[tuple[str, str], ...]  # (field name, the values() column it is read from)


@cache
def converters(
    serializer_class: type[serializers.Serializer[Any]], columns: Columns = ()
) -> tuple[tuple[str, str, Any], ...]:
    """(name, column, converter) of each field of ``serializer_class``, in its order; a
    converter is a function of the value, or ``datetime`` for a time (converted in ``rows``,
    in the request's time zone). A field named in ``columns`` is read from its column there.
    ValueError when a field is not a plain column."""
    given = dict(columns)
    found = []
    for name, field in serializer_class().fields.items():
        if field.write_only:
            continue
        if name in given:  # the view says where its value is: its source is not read
            found.append((name, given[name], _mapped(serializer_class, name, field)))
            continue
        if field.source != name or _overrides(field, "get_attribute"):
            raise ValueError(f"{serializer_class.__name__}.{name} is not read from its column")
        found.append((name, name, _converter(serializer_class, name, field)))
    return tuple(found)


def _overrides(field: serializers.Field[Any, Any, Any, Any], method: str) -> bool:
    """Whether ``field``'s class changes ``method`` from the DRF field it derives from."""
    for base in type(field).__mro__:
        if base.__module__.startswith("rest_framework."):
            return getattr(type(field), method) is not getattr(base, method)
    return True


def _kind(field: serializers.Field[Any, Any, Any, Any]) -> type | None:
    """The DRF field class whose conversion ``field`` writes with (a subclass that changes
    neither its conversion nor how it reads its value: e.g. a time field that only reads
    input differently); None if it changes them."""
    if _overrides(field, "to_representation"):
        return None
    return next(b for b in type(field).__mro__ if b.__module__.startswith("rest_framework."))


def _mapped(serializer_class: type, name: str, field: serializers.Field[Any, Any, Any, Any]) -> Any:
    """The converter of a field read from a column the view names: a related row's column
    shown as it is (a slug), or a plain field's own conversion."""
    if _kind(field) is serializers.SlugRelatedField:
        return _same
    return _converter(serializer_class, name, field)


def _same(value: Any) -> Any:
    return value


def _converter(
    serializer_class: type, name: str, field: serializers.Field[Any, Any, Any, Any]
) -> Any:
    kind = _kind(field)
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in _BY_THE_FIELD:  # no state but the field's options: one instance serves all
        return field.to_representation
    if kind is serializers.PrimaryKeyRelatedField and getattr(field, "pk_field", None) is None:
        # DRF writes the related row's id, read from the row's own id column (values()).
        return _same
    if kind is serializers.DateTimeField:
        output = getattr(field, "format", api_settings.DATETIME_FORMAT)
        if output is not None and output.lower() == ISO_8601 and not hasattr(field, "timezone"):
            return datetime
    raise ValueError(f"{serializer_class.__name__}.{name}: {type(field).__name__} is not plain")


def plain(serializer_class: type[serializers.Serializer[Any]], columns: Columns = ()) -> bool:
    """Whether ``rows`` can write the serializer's objects (else DRF must)."""
    try:
        converters(serializer_class, columns)
    except ValueError:
        return False
    return True


def values(
    found: QuerySet[Any], serializer_class: type[serializers.Serializer[Any]], columns: Columns = ()
) -> QuerySet[Any]:
    """``found`` as the ``values()`` rows ``rows`` writes the serializer's objects of."""
    return found.values(*dict.fromkeys(c for _, c, _ in converters(serializer_class, columns)))


def rows(
    serializer_class: type[serializers.Serializer[Any]],
    found: Iterable[dict[str, Any]],
    columns: Columns = (),
) -> list[dict[str, Any]]:
    """The JSON objects of ``found`` (``values()`` rows holding every field's column)."""
    fields = converters(serializer_class, columns)
    zone = timezone.get_current_timezone()
    return [_row(fields, row, zone) for row in found]


def _row(
    fields: tuple[tuple[str, str, Any], ...], row: dict[str, Any], zone: tzinfo
) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, column, convert in fields:
        value = row[column]
        if value is None:
            out[name] = None
        elif convert is datetime and value.tzinfo is not None:
            out[name] = _iso(value, zone)
        elif convert is datetime:  # naive: DRF's own way, whatever it is
            out[name] = serializers.DateTimeField().to_representation(value)
        else:
            out[name] = convert(value)
    return out


def _iso(value: datetime, zone: tzinfo) -> str:
    """DRF's DateTimeField in ISO 8601: in the current time zone, UTC written as Z."""
    text = value.astimezone(zone).isoformat()
    return text.removesuffix("+00:00") + "Z" if text.endswith("+00:00") else text


class RowsList:
    """A list view's mixin (put it first): its JSON pages written by ``rows`` from plain rows
    when its serializer is ``plain`` (the related rows' columns of ``rows_columns``), by DRF
    otherwise and in the bulk formats (``qvp_site.api.bulk``: their own columns). Same
    queryset, filters, scoping and pagination as DRF's list: only the writing differs."""

    rows_columns: Columns = ()

    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        view = cast("GenericAPIView[Any]", self)
        serializer_class = cast("type[serializers.Serializer[Any]]", view.get_serializer_class())
        bulk = isinstance(getattr(request, "accepted_renderer", None), BulkRenderer)
        if bulk or not plain(serializer_class, self.rows_columns):
            answer: Response = super().list(request, *args, **kwargs)  # type: ignore[misc]
            return answer
        found = values(
            view.filter_queryset(view.get_queryset()), serializer_class, self.rows_columns
        )
        page = view.paginate_queryset(found)
        if page is None:  # a view without pagination: the whole list
            return Response(rows(serializer_class, found, self.rows_columns))
        return view.get_paginated_response(rows(serializer_class, page, self.rows_columns))
