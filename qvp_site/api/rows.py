"""Lists of many rows answered without a model instance per row: the rows are read with
``values()`` and each becomes its JSON object through converters made once per serializer,
the very conversions DRF's fields make (issue 27: a year of daily bars spent more time in
model instances and DRF's field-by-field serialization than in the database).

Only serializers made of plain fields read from a column of the same name (floats,
integers, text, choices, decimals, booleans, times) qualify (``plain``): a view asks before
it reads, so a serializer that grows a computed field is answered by DRF's own way rather
than differently. The output is
what the serializer would have written, value for value (tests/qvp_site/test_request_path.py
compares them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, tzinfo
from functools import cache
from typing import Any

from django.utils import timezone
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

Converter = Callable[[Any], Any]
# Fields converted by their own to_representation, of an instance made once.
_BY_THE_FIELD = (
    serializers.BigIntegerField,  # type: ignore[attr-defined]  # DRF 3.15's, not in the stubs
    serializers.BooleanField,
    serializers.ChoiceField,
    serializers.DecimalField,
)
# DRF's own conversion of each of these, for a value that is not None.
_PLAIN: dict[type[serializers.Field[Any, Any, Any, Any]], Converter] = {
    serializers.FloatField: float,
    serializers.IntegerField: int,
    serializers.CharField: str,
}


@cache
def converters(serializer_class: type[serializers.Serializer[Any]]) -> tuple[tuple[str, Any], ...]:
    """(name, converter) of each field of ``serializer_class``, in its order; a converter is
    a function of the value, or ``datetime`` for a time (converted in ``rows``, in the
    request's time zone). ValueError when a field is not a plain column."""
    found = []
    for name, field in serializer_class().fields.items():
        if field.write_only:
            continue
        if field.source != name:
            raise ValueError(f"{serializer_class.__name__}.{name} is not read from its column")
        found.append((name, _converter(serializer_class, name, field)))
    return tuple(found)


def _converter(
    serializer_class: type, name: str, field: serializers.Field[Any, Any, Any, Any]
) -> Any:
    kind = type(field)
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in _BY_THE_FIELD:  # no state but the field's options: one instance serves all
        return field.to_representation
    if kind is serializers.DateTimeField:
        output = getattr(field, "format", api_settings.DATETIME_FORMAT)
        if output is not None and output.lower() == ISO_8601 and not hasattr(field, "timezone"):
            return datetime
    raise ValueError(f"{serializer_class.__name__}.{name}: {kind.__name__} is not plain")


def plain(serializer_class: type[serializers.Serializer[Any]]) -> bool:
    """Whether ``rows`` can write the serializer's objects (else DRF must)."""
    try:
        converters(serializer_class)
    except ValueError:
        return False
    return True


def rows(
    serializer_class: type[serializers.Serializer[Any]], found: Iterable[dict[str, Any]]
) -> list[dict[str, Any]]:
    """The JSON objects of ``found`` (``values()`` rows holding every field's column)."""
    fields = converters(serializer_class)
    zone = timezone.get_current_timezone()
    return [_row(fields, row, zone) for row in found]


def _row(fields: tuple[tuple[str, Any], ...], row: dict[str, Any], zone: tzinfo) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, convert in fields:
        value = row[name]
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
