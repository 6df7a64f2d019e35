"""``/api/v1/tca/``: transaction cost analysis of the user's accounts (``trading.tca`` says
what each number means).

- ``tca/executions/``: the stored costs (``ExecutionCost``, one row per live execution, kept
  by the ``tca`` command and the ``tca-refresh`` job), newest first in cursor pages, or every
  row of a bounded range in the bulk formats; a record by its id. Read-only: the application's
  role may read the table, not write it.
- ``tca/orders/``: each order's implementation shortfall (``trading.tca.shortfall``),
  computed on demand over a required range.
- ``tca/summary/``: the stored costs aggregated by a dimension (``trading.tca.summary``), of
  one account or of every account the user sees, aggregated together.

Scoped by account as the executions are (``trading.api.scoping``): a user reads the accounts
their groups grant, an auditor every account, and nobody writes here. An account one may not
see is refused as unknown (a 400 naming ``account``), so that none is revealed. The
functions run as the caller (SECURITY INVOKER), so row-level security applies again under the
application's role; the owner's connection (tests, the embedded default) relies on the
scoping here, which is why a call never reads an account the user may not see.

The costs' fields are the model's and the dimensions ``trading.tca.DIMENSIONS``: a field or a
dimension added there is served here.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.db import connection
from drf_spectacular.utils import extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolListField, symbol_relation
from marketdata.knowledge import NotSettled, knowledge_time
from qvp_site.api import (
    TimeField,
    TimeRangeQuery,
    WritesNeedModelPermission,
    id_field,
    newest_first,
    query_parameters,
    schema_parameters,
    time_lookups,
)
from qvp_site.api.bulk import BulkFormats
from trading import tca
from trading.api.scoping import AccountQuery, ScopedViewSet
from trading.models import Account, ExecutionCost, Side
from trading.querysets import reads_everything

# The longest range a shortfall or a summary reads in one request: a year, as a bulk read.
MAX_RANGE = timedelta(days=366)


# --- The stored costs ------------------------------------------------------------------------
class CostQuery(ResolvesSymbols, AccountQuery, TimeRangeQuery):
    symbol = SymbolListField(
        required=False,
        help_text="the instruments' symbols, comma-separated (AAPL,MSFT), on start's date",
    )
    order = id_field(required=False, help_text="an order id")
    side = serializers.ChoiceField(choices=Side.choices, required=False)
    markout_source = serializers.ChoiceField(
        choices=ExecutionCost.MarkoutSource.choices,
        required=False,
        allow_blank=True,
        help_text="where the markouts come from: ticks, minute_bars, or empty for no data",
    )


class ExecutionCostSerializer(serializers.ModelSerializer[ExecutionCost]):
    """What an execution cost: arrival price and slippage, the half-spread paid, markouts in
    basis points (a cost positive; a markout positive when the price moved our way), as the
    refresh computed them from market data known at ``known_at``."""

    instrument = symbol_relation(read_only=True)

    class Meta:
        model = ExecutionCost
        # Every column of the model, read-only: the fields added to the table are served as
        # they come (nothing here is written, so no column opens to writes).
        fields = [field.name for field in ExecutionCost._meta.concrete_fields]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(CostQuery)))
class ExecutionCostViewSet(
    BulkFormats, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """The stored costs of your accounts' executions, newest first (also in Arrow, Parquet,
    CSV); read-only: the tca command and the tca-refresh job write them."""

    queryset = ExecutionCost.objects.select_related("instrument")
    serializer_class = ExecutionCostSerializer
    pagination_class = newest_first("executed_at")
    query_class = CostQuery
    lookups = {
        "account": "account",
        "symbol": "instrument__in",
        "order": "order_id",
        "side": "side",
        "markout_source": "markout_source",
        **time_lookups("executed_at"),
    }
    bulk_ordering = ("executed_at", "pk")
    bulk_columns = {"instrument": "instrument__symbol"}


# --- On demand: shortfall and summary --------------------------------------------------------
class TcaRangeQuery(AccountQuery, TimeRangeQuery):
    """A required range of at most ``MAX_RANGE``, of one account the user may see (default:
    every one)."""

    start = TimeField(help_text="from this time on (inclusive), ISO 8601")
    end = TimeField(help_text="before this time (exclusive), ISO 8601")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if attrs["end"] - attrs["start"] > MAX_RANGE:
            raise serializers.ValidationError(
                {self._name("end"): [f"at most {MAX_RANGE.days} days after start"]}
            )
        return attrs


class ShortfallQuery(TcaRangeQuery):
    known_at = TimeField(
        required=False,
        help_text="read market data as the system knew it at this time (default: the latest"
        " settled moment), so that an answer repeats",
    )


class SummaryQuery(TcaRangeQuery):
    dimension = serializers.ChoiceField(
        choices=list(tca.DIMENSIONS),
        default="all",
        help_text="what the costs are grouped by (default: all, one group)",
        error_messages={
            "invalid_choice": f"{{input}} is not a dimension: one of {', '.join(tca.DIMENSIONS)}"
        },
    )


class ShortfallRowSerializer(serializers.Serializer[Any]):
    """An order's implementation shortfall: what was paid beyond the decision price, the fees,
    and the unfilled part valued at the close, in the order's currency and in basis points of
    the decision notional (null without market data)."""

    order_id = serializers.IntegerField()
    account_id = serializers.IntegerField()
    instrument_id = serializers.IntegerField()
    side = serializers.CharField(help_text="buy or sell")
    quantity = serializers.DecimalField(max_digits=20, decimal_places=8)
    filled = serializers.DecimalField(max_digits=20, decimal_places=8)
    decision_price = serializers.FloatField(allow_null=True)
    decision_source = serializers.CharField(
        help_text="order: the order's own decision price; arrival: the arrival price, the order"
        " recording none; empty: neither"
    )
    arrival_price = serializers.FloatField(allow_null=True)
    arrival_source = serializers.CharField(
        help_text="quote_mid, trade or bar_close; empty: no market data"
    )
    average_fill = serializers.DecimalField(max_digits=28, decimal_places=8, allow_null=True)
    fees = serializers.DecimalField(max_digits=28, decimal_places=8)
    close_price = serializers.FloatField(allow_null=True)
    execution_cost = serializers.FloatField(allow_null=True)
    opportunity_cost = serializers.FloatField(allow_null=True)
    shortfall = serializers.FloatField(allow_null=True)
    decision_notional = serializers.FloatField(allow_null=True)
    shortfall_bps = serializers.FloatField(allow_null=True)


# One answer, not a list: the view's action is named ``list`` (GET on the collection).
@extend_schema_serializer(many=False)
class ShortfallSerializer(serializers.Serializer[Any]):
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    account = serializers.IntegerField(allow_null=True, help_text="null: every account you see")
    known_at = serializers.DateTimeField(help_text="the knowledge time market data was read at")
    orders = ShortfallRowSerializer(many=True)


class SummaryRowSerializer(serializers.Serializer[Any]):
    """One group's measure: its notional-weighted mean over the rows that have it (n) and a
    95% confidence interval (null below two rows)."""

    group = serializers.CharField(source="grp", help_text="the group's value of the dimension")
    measure = serializers.CharField(help_text="slippage, spread_paid or markout_<horizon>, bps")
    executions = serializers.IntegerField(help_text="the group's executions")
    notional = serializers.DecimalField(max_digits=28, decimal_places=8)
    n = serializers.IntegerField(help_text="the executions having the measure")
    mean = serializers.FloatField(allow_null=True)
    ci_low = serializers.FloatField(allow_null=True)
    ci_high = serializers.FloatField(allow_null=True)


@extend_schema_serializer(many=False)
class SummarySerializer(serializers.Serializer[Any]):
    dimension = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    account = serializers.IntegerField(allow_null=True, help_text="null: every account you see")
    rows = SummaryRowSerializer(many=True)


def readable_accounts(request: Request, chosen: Account | None) -> list[int] | None:
    """The accounts a computation may read for the request: the one chosen (validated
    visible), else None for every account where the user reads them all, else the ids of
    those their groups grant (perhaps none)."""
    if chosen is not None:
        return [chosen.pk]
    if reads_everything(request.user):
        return None
    return list(Account.objects.visible_to(request.user).values_list("pk", flat=True))


class OnDemandViewSet(viewsets.ViewSet):
    """Computed on demand, nothing stored: a read for every logged-in user, over the accounts
    they may see; no write (405)."""

    permission_classes = [permissions.IsAuthenticated, WritesNeedModelPermission]


class ShortfallViewSet(OnDemandViewSet):
    """The implementation shortfall of your accounts' orders created in a range."""

    @extend_schema(
        parameters=schema_parameters(ShortfallQuery), responses={200: ShortfallSerializer}
    )
    def list(self, request: Request) -> Response:
        """Each order created in [start, end) with its decision price, arrival, average fill,
        fees, the unfilled part valued at the close, and the shortfall in money and in bps,
        by order id."""
        query = query_parameters(ShortfallQuery, request)
        try:
            known = knowledge_time(query.get("known_at"))
        except NotSettled as refusal:
            raise serializers.ValidationError({"known_at": [str(refusal)]}) from refusal
        chosen = query.get("account")
        accounts = readable_accounts(request, chosen)
        rows = shortfall(query["start"], query["end"], accounts, known)
        answer = {
            "start": query["start"],
            "end": query["end"],
            "account": chosen.pk if chosen is not None else None,
            "known_at": known,
            "orders": rows,
        }
        return Response(ShortfallSerializer(answer).data)


def shortfall(
    start: datetime, end: datetime, accounts: list[int] | None, known_at: datetime
) -> list[dict[str, Any]]:
    """``trading.tca.shortfall`` of ``accounts`` (None: every account), in one statement
    whatever their number, by order id."""
    if accounts is None:
        return tca.shortfall(start, end, None, known_at)
    if not accounts:
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT s.* FROM unnest(%s::bigint[]) AS a (id)"
            " CROSS JOIN LATERAL trading_tca_shortfall(%s, %s, a.id, %s) AS s"
            " ORDER BY s.order_id",
            [accounts, start, end, known_at],
        )
        names = [column.name for column in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class SummaryViewSet(OnDemandViewSet):
    """Your accounts' stored costs aggregated by a dimension."""

    @extend_schema(parameters=schema_parameters(SummaryQuery), responses={200: SummarySerializer})
    def list(self, request: Request) -> Response:
        """The stored costs of executions in [start, end) grouped by ``dimension``: per group
        and measure the executions, notional, the rows having the measure (n), its
        notional-weighted mean and a 95% confidence interval. Of one account (``account``),
        or of every account you see, aggregated together."""
        query = query_parameters(SummaryQuery, request)
        chosen = query.get("account")
        accounts = readable_accounts(request, chosen)
        dimension, start, end = query["dimension"], query["start"], query["end"]
        # A user granted no account reads nothing, not every account.
        rows = [] if accounts == [] else tca.summary(dimension, start, end, accounts)
        answer = {
            "dimension": dimension,
            "start": start,
            "end": end,
            "account": chosen.pk if chosen is not None else None,
            "rows": rows,
        }
        return Response(SummarySerializer(answer).data)
