"""One time range for every list: ``start`` (inclusive) and ``end`` (exclusive), ISO 8601.

``since`` and ``until``, the names most lists took before, are still read as deprecated names
of the same bounds (and documented so in the schema); a bound given under both names is
refused, naming both, rather than one of them silently winning. A refusal names the
parameters as the client gave them.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from django.utils.datastructures import MultiValueDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers

from qvp_site.api.fields import TimeField

# Each bound's name -> its deprecated name.
DEPRECATED_NAMES = {"start": "since", "end": "until"}


class TimeRangeQuery(serializers.Serializer[Any]):
    """``start`` <= time < ``end``, either bound open unless a subclass requires it."""

    start = TimeField(required=False, help_text="from this time on (inclusive), ISO 8601")
    end = TimeField(required=False, help_text="before this time (exclusive), ISO 8601")

    deprecated_parameters = [
        OpenApiParameter(
            old,
            OpenApiTypes.DATETIME,
            deprecated=True,
            description=f"deprecated: the old name of {new}, still read (give one of the two)",
        )
        for new, old in DEPRECATED_NAMES.items()
    ]

    def run_validation(self, data: Any = serializers.empty) -> Any:
        data, self.given_as = by_current_names(data)
        try:
            return super().run_validation(data)
        except serializers.ValidationError as error:
            raise serializers.ValidationError(self._as_given(error.detail)) from error

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and start >= end:
            raise serializers.ValidationError({"start": f"must be before {self._name('end')}"})
        return attrs

    def _name(self, bound: str) -> str:
        """The name the client gave ``bound`` under."""
        given: dict[str, str] = getattr(self, "given_as", {})
        return given.get(bound, bound)

    def _as_given(self, detail: Any) -> Any:
        if not isinstance(detail, dict):
            return detail
        return {self._name(name): problems for name, problems in detail.items()}


def by_current_names(data: Any) -> tuple[Any, dict[str, str]]:
    """``data`` with the deprecated names of the bounds renamed, and which were (bound ->
    the name given); a bound given under both names is a 400 naming both."""
    if not hasattr(data, "keys"):
        return data, {}
    twice = {
        new: f"{new} and {old} (its deprecated name) are the same bound: give one"
        for new, old in DEPRECATED_NAMES.items()
        if new in data and old in data
    }
    if twice:
        raise serializers.ValidationError(
            {
                name: [message]
                for new, message in twice.items()
                for name in (new, DEPRECATED_NAMES[new])
            }
        )
    given = {new: old for new, old in DEPRECATED_NAMES.items() if old in data}
    if not given:
        return data, {}
    renamed = data.copy()
    for new, old in given.items():
        if isinstance(renamed, MultiValueDict):  # a query string's QueryDict
            renamed.setlist(new, renamed.pop(old))
        else:
            renamed[new] = renamed.pop(old)
    return renamed, given


def time_lookups(column: str) -> dict[str, str]:
    """A ``QueriedViewSet``'s lookups of the range on ``column``."""
    return {"start": f"{column}__gte", "end": f"{column}__lt"}


def within(rows: QuerySet[Any], query: dict[str, Any], column: str = "ts") -> QuerySet[Any]:
    """``rows`` whose ``column`` lies in the query's range (either bound may be open)."""
    lookups = time_lookups(column)
    return rows.filter(**{lookups[bound]: query[bound] for bound in lookups if bound in query})
