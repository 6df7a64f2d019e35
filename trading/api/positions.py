"""``/api/v1/positions/``: positions of the user's accounts, kept by their executions
(read-only: the database's books write them)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from marketdata.fields import ResolvesSymbols, SymbolField, symbol_relation
from qvp_site.api import schema_parameters
from qvp_site.api.rows import RowsList
from trading.api.scoping import AccountQuery, ScopedViewSet
from trading.models import Position


class PositionQuery(ResolvesSymbols, AccountQuery):
    symbol = SymbolField(required=False, help_text="the instrument's symbol")


class PositionSerializer(serializers.ModelSerializer[Position]):
    instrument = symbol_relation(read_only=True)

    class Meta:
        model = Position
        fields = [
            "id",
            "account",
            "instrument",
            "quantity",
            "average_cost",
            "realized_pnl",
            "last_sequence",
            "last_execution_at",
            "updated_at",
        ]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(PositionQuery)))
class PositionViewSet(RowsList, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Positions of your accounts, kept by their executions (read-only)."""

    queryset = Position.objects.select_related("instrument")
    serializer_class = PositionSerializer
    query_class = PositionQuery
    lookups = {"account": "account", "symbol": "instrument"}
    # The list written from plain rows (qvp_site.api.rows), the instrument its symbol today.
    rows_columns = (("instrument", "instrument__symbol"),)
