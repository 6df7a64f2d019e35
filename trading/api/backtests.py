"""``/api/v1/backtests/``: backtest runs with their trades (not account-scoped): recording one
needs add_backtestrun, never an auditor's; its trades come with it, written once.
``backtests/{id}/rerun/`` repeats a run over the bars as known at its ``known_at`` and compares
(trading/reruns.py): it writes nothing, so reading rights suffice (an auditor may rerun)."""

from __future__ import annotations

from typing import Any

from django.db.models import Count, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import symbol_relation
from qvp_site import parsers
from qvp_site.api import (
    MAX_BATCH,
    FiniteFloatField,
    PageNumberPagination,
    RefusalsAsResponses,
    WritesNeedModelPermission,
    query_parameters,
    schema_parameters,
)
from trading import reruns
from trading.api.executions import sign_problem
from trading.models import BacktestRun, BacktestTrade


class RerunQuery(serializers.Serializer[Any]):
    known_at = serializers.DateTimeField(
        required=False,
        help_text="read the bars as known at this time instead of the run's known_at (what"
        " corrections learnt since would change); without it, the run's own",
    )


class RerunSerializer(serializers.Serializer[Any]):
    run = serializers.IntegerField()
    strategy = serializers.CharField()
    known_at = serializers.DateTimeField(help_text="the knowledge time the rerun read at")
    known_at_is_the_runs = serializers.BooleanField()
    identical = serializers.BooleanField(help_text="the same trades and metrics, exactly")
    trades_stored = serializers.IntegerField()
    trades_rerun = serializers.IntegerField()
    differences = serializers.ListField(child=serializers.CharField(), help_text="the first ones")
    code_version_run = serializers.CharField(allow_null=True)
    code_version_now = serializers.CharField()
    code_changed = serializers.BooleanField(allow_null=True)


class BacktestQuery(serializers.Serializer[Any]):
    strategy = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=BacktestRun.Status.choices, required=False)


class BacktestTradeSerializer(serializers.ModelSerializer[BacktestTrade]):
    instrument = symbol_relation()

    class Meta:
        model = BacktestTrade
        fields = ["id", "instrument", "ts", "side", "quantity", "price", "fee", "pnl"]
        read_only_fields = ["id"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        errors = {}
        problem = sign_problem(attrs["side"], attrs["quantity"])
        if problem:
            errors["quantity"] = problem
        if attrs["price"] <= 0:
            errors["price"] = "must be positive"
        if attrs.get("fee", 0) < 0:
            errors["fee"] = "must not be negative"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def fraction(**kwargs: Any) -> FiniteFloatField:
    return FiniteFloatField(required=False, allow_null=True, min_value=0, max_value=1, **kwargs)


class BacktestRunSerializer(serializers.ModelSerializer[BacktestRun]):
    """A backtest run; its trades may come with it (``trades``, written once, listed at
    ``backtests/{id}/trades/``)."""

    total_return = FiniteFloatField(required=False, allow_null=True)
    sharpe = FiniteFloatField(required=False, allow_null=True)
    sortino = FiniteFloatField(required=False, allow_null=True)
    max_drawdown = fraction(help_text="a fraction, 0 to 1")
    hit_rate = fraction(help_text="a fraction, 0 to 1")
    turnover = FiniteFloatField(required=False, allow_null=True, min_value=0)
    created_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    trade_count = serializers.IntegerField(read_only=True)
    # Declared for the parser's depth bound on JSON text (a form's field); the model's default.
    parameters = parsers.JSONField(required=False)
    trades = serializers.ListField(
        child=BacktestTradeSerializer(), required=False, write_only=True, max_length=MAX_BATCH
    )

    class Meta:
        model = BacktestRun
        fields = [
            "id",
            # Writable.
            "strategy",
            "parameters",
            "period_start",
            "period_end",
            "status",
            "initial_capital",
            "total_return",
            "sharpe",
            "sortino",
            "max_drawdown",
            "hit_rate",
            "turnover",
            "error",
            "finished_at",
            "known_at",
            "code_version",
            "trades",
            # Read-only.
            "created_by",
            "created_at",
            "trade_count",
        ]
        read_only_fields = ["id", "created_by", "created_at", "trade_count"]

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs["period_start"], attrs["period_end"]
        if end <= start:
            raise serializers.ValidationError({"period_end": "must be after period_start"})
        if attrs.get("initial_capital", 1) <= 0:
            raise serializers.ValidationError({"initial_capital": "must be positive"})
        outside: dict[Any, Any] = {  # by the trade's index (an int; DRF writes it as text)
            index: {"ts": ["lies outside the run's period"]}
            for index, trade in enumerate(attrs.get("trades", []))
            if not start <= trade["ts"] <= end
        }
        if outside:
            raise serializers.ValidationError({"trades": outside})
        return attrs

    def create(self, validated_data: dict[str, Any]) -> BacktestRun:
        trades = validated_data.pop("trades", [])
        run = BacktestRun.objects.create(created_by=self.context["request"].user, **validated_data)
        BacktestTrade.objects.bulk_create(BacktestTrade(run=run, **trade) for trade in trades)
        # What the list's queryset annotates (the model declares no such attribute).
        setattr(run, "trade_count", len(trades))  # noqa: B010
        return run


@extend_schema_view(list=extend_schema(parameters=schema_parameters(BacktestQuery)))
class BacktestViewSet(
    RefusalsAsResponses,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[Any],  # runs, and a run's trades (``trades``)
):
    """Backtest runs (not account-scoped): recording one needs add_backtestrun."""

    # Ordered explicitly: Django drops Meta.ordering from a query that aggregates.
    queryset = (
        BacktestRun.objects.select_related("created_by")
        .annotate(trade_count=Count("trades"))
        .order_by("-created_at", "-id")
    )
    serializer_class = BacktestRunSerializer
    pagination_class = PageNumberPagination
    permission_classes = [permissions.IsAuthenticated, WritesNeedModelPermission]

    def get_queryset(self) -> QuerySet[Any]:
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return self.queryset.all()
        query = query_parameters(BacktestQuery, self.request)
        return self.queryset.filter(**query)

    @extend_schema(responses=BacktestTradeSerializer(many=True))
    @action(detail=True, serializer_class=BacktestTradeSerializer)
    def trades(self, request: Request, pk: str | None = None) -> Response:
        """The run's trades in time order."""
        run = self.get_object()
        trades = BacktestTrade.objects.filter(run=run).select_related("instrument")
        page = self.paginate_queryset(trades)
        return self.get_paginated_response(BacktestTradeSerializer(page, many=True).data)

    @extend_schema(request=RerunQuery, responses=RerunSerializer)
    @action(
        detail=True,
        methods=["post"],
        serializer_class=RerunSerializer,
        # A rerun writes nothing: whoever may read the run may repeat it, auditors included.
        permission_classes=[permissions.IsAuthenticated],
    )
    def rerun(self, request: Request, pk: str | None = None) -> Response:
        """Run it again over its bars as known at its ``known_at`` (a strategy of
        build_patterns); whether the trades and metrics are identical, or the first
        differences, and whether the code differs. 400 naming the field for a run that cannot
        be repeated (no ``known_at``; a strategy or ``parameters`` QVP cannot run)."""
        run = self.get_object()
        asked = RerunQuery(data=request.data)
        asked.is_valid(raise_exception=True)
        try:
            report = reruns.rerun(run, known_at=asked.validated_data.get("known_at"))
        except reruns.RerunRefused as refused:
            raise serializers.ValidationError({refused.field: [refused.message]}) from None
        return Response(RerunSerializer(report.as_dict()).data)
