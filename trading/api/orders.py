"""``/api/v1/orders/``: orders of the user's accounts: create, list, retrieve, cancel.

The serializer mirrors the database's rules (prices by order type, a positive quantity, one
client order id per account), so bad input is a 400 naming the field; the database judges the
lifecycle (``order_legal_transition``: 409).

The list answers in the bulk formats too (``qvp_site.api.bulk``): every order created in a
bounded range, oldest first, scoped as the JSON list is.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolField, symbol_relation
from qvp_site.api import RefusalSerializer, TimeRangeQuery, schema_parameters, time_lookups
from qvp_site.api.bulk import BulkFormats
from qvp_site.api.rows import RowsList
from signals.models import Agent
from trading import books
from trading.api.scoping import AccountQuery, ScopedViewSet, TradableAccountField
from trading.models import Order


class OrderQuery(ResolvesSymbols, AccountQuery, TimeRangeQuery):
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    symbol = SymbolField(required=False, help_text="the instrument's symbol")


class OrderSerializer(serializers.ModelSerializer[Order]):
    """An order; ``instrument`` is the symbol. Status and fills are kept by the database."""

    account = TradableAccountField(help_text="an account id you may trade")
    instrument = symbol_relation()
    # Who decided it, for transaction cost analysis (trading/tca.py): the agent's id, as the
    # account is named by its id (an id column keeps its nulls in every bulk format).
    agent = serializers.PrimaryKeyRelatedField(
        queryset=Agent.objects.all(),
        allow_null=True,
        required=False,
        help_text="the id of the agent that decided it (null: none)",
    )

    class Meta:
        model = Order
        fields = [
            "id",
            # Writable: the order's terms, which never change afterwards.
            "account",
            "instrument",
            "client_order_id",
            "side",
            "order_type",
            "quantity",
            "limit_price",
            "stop_price",
            "time_in_force",
            "strategy",
            "agent",
            "decision_price",
            # Read-only: the lifecycle.
            "filled_quantity",
            "status",
            "status_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "filled_quantity",
            "status",
            "status_reason",
            "created_at",
            "updated_at",
        ]
        # (account, client_order_id) is checked in validate(), naming the field.
        validators: list[Any] = []

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = price_problems(attrs)
        decision = attrs.get("decision_price")
        if decision is not None and decision <= 0:
            errors["decision_price"] = "must be positive"
        if attrs["quantity"] <= 0:
            errors["quantity"] = "must be positive"
        taken = Order.objects.filter(
            account=attrs["account"], client_order_id=attrs["client_order_id"]
        )
        if taken.exists():
            errors["client_order_id"] = f"already used in account {attrs['account']}"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# Which prices each order type carries (the database's order_prices_match_type).
PRICES_BY_TYPE = {
    Order.Type.MARKET: set(),
    Order.Type.LIMIT: {"limit_price"},
    Order.Type.STOP: {"stop_price"},
    Order.Type.STOP_LIMIT: {"limit_price", "stop_price"},
}


def price_problems(attrs: dict[str, Any]) -> dict[str, str]:
    kind, errors = attrs.get("order_type", Order.Type.MARKET), {}
    for name in ("limit_price", "stop_price"):
        price, wanted = attrs.get(name), name in PRICES_BY_TYPE[kind]
        if price is not None and price <= 0:
            errors[name] = "must be positive"
        elif wanted and price is None:
            errors[name] = f"a {kind} order needs one"
        elif not wanted and price is not None:
            errors[name] = f"a {kind} order has none"
    return errors


class CancelSerializer(serializers.Serializer[Any]):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


@extend_schema_view(list=extend_schema(parameters=schema_parameters(OrderQuery)))
class OrderViewSet(
    RowsList,
    BulkFormats,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """Orders of your accounts: create, list (also in Arrow, Parquet, CSV), retrieve, cancel."""

    queryset = Order.objects.select_related("instrument")
    serializer_class = OrderSerializer
    query_class = OrderQuery
    lookups = {
        "account": "account",
        "status": "status",
        "symbol": "instrument",
        **time_lookups("created_at"),
    }
    # Bulk formats: the range is on created_at (``lookups``), so are the rows' order; the
    # instrument is its symbol today, as the JSON's (``symbol_relation``).
    bulk_ordering = ("created_at", "pk")
    bulk_columns = {"instrument": "instrument__symbol"}
    # The JSON list written from plain rows (qvp_site.api.rows), the same symbol.
    rows_columns = (("instrument", "instrument__symbol"),)

    # 400: bad fields, or a database refusal; documented for every operation by
    # qvp_site.schema.document_refusals.
    @extend_schema(responses={201: OrderSerializer})
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(
        request=CancelSerializer,
        responses={200: OrderSerializer, 409: RefusalSerializer},
        description="Cancel the order. An order already cancelled is returned as it is; one "
        "no longer open is refused by the database, 409, naming its current state.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        params = CancelSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        if order.status == Order.Status.CANCELLED:  # cancelling again changes nothing
            return Response(self.get_serializer(order).data)
        # By the owner's function (the application's role may not update orders); the
        # database judges the transition (order_legal_transition).
        with self.judged():
            books.cancel_order(order.pk, params.validated_data["reason"])
        order.refresh_from_db(fields=["status", "status_reason", "updated_at"])
        return Response(self.get_serializer(order).data)
