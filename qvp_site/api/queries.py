"""Query parameters through serializers: validated (bad input is a 400 naming the parameter),
described in the schema, and a list filtered by them.

``QueriedViewSet`` is the list of every app: its rows (narrowed by ``visible``, where records
belong to someone), filtered by the query's ``lookups`` (or an app's own ``filtered``).
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers, viewsets
from rest_framework.request import Request

from qvp_site.api.errors import RefusalsAsResponses


def query_parameters(
    serializer_class: type[serializers.Serializer[Any]], request: Request
) -> dict[str, Any]:
    """The request's query parameters, validated (a 400 naming each bad one otherwise); those
    given no value (an optional parameter left out) are left out."""
    query = serializer_class(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    return {name: value for name, value in query.validated_data.items() if value is not None}


def schema_parameters(
    serializer_class: type[serializers.Serializer[Any]],
) -> list[type[serializers.Serializer[Any]] | OpenApiParameter]:
    """The query's parameters for ``extend_schema(parameters=...)``: its fields, and the
    deprecated names it still reads (``deprecated_parameters``, e.g. a time range's since)."""
    return [serializer_class, *getattr(serializer_class, "deprecated_parameters", ())]


class QueriedViewSet(RefusalsAsResponses, viewsets.GenericViewSet[Any]):
    """Rows filtered by a validated query (``query_class``): each parameter by its queryset
    lookup (``lookups``), unless ``filtered`` says otherwise."""

    query_class: type[serializers.Serializer[Any]]
    lookups: dict[str, str] = {}  # query parameter -> queryset lookup

    def get_queryset(self) -> QuerySet[Any]:
        rows = self.visible(super().get_queryset())
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return rows
        return self.filtered(rows, query_parameters(self.query_class, self.request))

    def visible(self, rows: QuerySet[Any]) -> QuerySet[Any]:
        """The rows the user may see: all of them, unless a view narrows them."""
        return rows

    def filtered(self, rows: QuerySet[Any], query: dict[str, Any]) -> QuerySet[Any]:
        return rows.filter(**{self.lookups[name]: value for name, value in query.items()})
