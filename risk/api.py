"""The risk REST API under /api/v1/risk/: metrics, VaR on demand, limits, alerts (acknowledge,
resolve), volatility estimates, factor exposures.

Scoped by account as trading's API (``trading.api.scoping``): lists hold the accounts the user
may see, changes need an account the user may trade (never an auditor's), and row-level
security applies the same rule again. Bad input is a 400 naming the field; the shared kit is
``qvp_site.api``. The metrics' list answers in the bulk formats too (``qvp_site.api.bulk``).
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from drf_spectacular.utils import extend_schema, extend_schema_serializer, extend_schema_view
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolField
from qvp_site.api import (
    FiniteFloatField,
    NewestFirstPagination,
    QueriedViewSet,
    RefusalSerializer,
    Refused,
    TimeField,
    TimeRangeQuery,
    WritesNeedModelPermission,
    newest_first,
    query_parameters,
    schema_parameters,
    time_lookups,
)
from qvp_site.api.bulk import BulkFormats
from risk import var
from risk.alerts import AlertStateError, acknowledge, resolve
from risk.estimators import ESTIMATORS
from risk.models import (
    Factor,
    FactorExposure,
    Metric,
    RiskAlert,
    RiskLimit,
    RiskMetric,
    Severity,
    VolatilityEstimate,
)
from trading.api.scoping import (
    AccountQuery,
    ScopedViewSet,
    TradableAccountField,
    VisibleAccountField,
)


# --- Metrics and exposures -------------------------------------------------------------------
class MetricQuery(AccountQuery, TimeRangeQuery):
    metric = serializers.ChoiceField(choices=Metric.choices, required=False)


class MetricSerializer(serializers.ModelSerializer):
    class Meta:
        model = RiskMetric
        fields = ["id", "account", "ts", "metric", "value", "confidence", "lookback", "run"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(MetricQuery)))
class MetricViewSet(BulkFormats, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Risk metrics of your accounts over time, newest first (read-only; compute_risk writes);
    every metric of a bounded range of ts, oldest first (ts, pk: the mixin's default), in Arrow,
    Parquet or CSV."""

    queryset = RiskMetric.objects.all()
    serializer_class = MetricSerializer
    pagination_class = NewestFirstPagination
    query_class = MetricQuery
    lookups = {"account": "account", "metric": "metric", **time_lookups("ts")}


class ExposureQuery(AccountQuery, TimeRangeQuery):
    factor = serializers.ChoiceField(choices=Factor.choices, required=False)


class ExposureSerializer(serializers.ModelSerializer):
    class Meta:
        model = FactorExposure
        fields = ["id", "account", "ts", "factor", "exposure"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(ExposureQuery)))
class ExposureViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Factor exposures of your accounts over time, newest first (read-only)."""

    queryset = FactorExposure.objects.all()
    serializer_class = ExposureSerializer
    pagination_class = NewestFirstPagination
    query_class = ExposureQuery
    lookups = {"account": "account", "factor": "factor", **time_lookups("ts")}


# --- VaR on demand ---------------------------------------------------------------------------
class VaRQuery(serializers.Serializer):
    account = VisibleAccountField(help_text="an account id")
    method = serializers.ChoiceField(choices=var.METHODS, default="historical")
    confidence = FiniteFloatField(default=0.95, help_text="between 0 and 1 (exclusive)")
    lookback = serializers.IntegerField(
        default=252, min_value=2, max_value=5000, help_text="days of returns"
    )
    as_of = TimeField(required=False, help_text="value as of this time (default now)")
    known_at = TimeField(
        required=False,
        help_text="read market data and executions as the system knew them at this time"
        " (default: as known now): a VaR of the past, repeated exactly",
    )

    def validate_confidence(self, value: float) -> float:
        if not 0 < value < 1:
            raise serializers.ValidationError("must be between 0 and 1 (exclusive)")
        return value


# One answer, not a list: the view's action is named ``list`` (GET on the collection).
@extend_schema_serializer(many=False)
class VaRSerializer(serializers.Serializer):
    account = serializers.IntegerField()
    method = serializers.CharField()
    confidence = serializers.FloatField()
    lookback = serializers.IntegerField()
    observations = serializers.IntegerField(help_text="days of returns used")
    portfolio_value = serializers.FloatField()
    var = serializers.FloatField(allow_null=True, help_text="loss, positive; null: too few days")
    cvar = serializers.FloatField(allow_null=True)


class VaRViewSet(viewsets.ViewSet):
    """Value at risk and CVaR of an account, computed on demand (nothing stored)."""

    permission_classes = [permissions.IsAuthenticated, WritesNeedModelPermission]

    @extend_schema(parameters=schema_parameters(VaRQuery), responses={200: VaRSerializer})
    def list(self, request: Request) -> Response:
        query = query_parameters(VaRQuery, request)
        (result,) = var.value_at_risk(
            query["account"].pk,
            methods=(query["method"],),
            confidence=query["confidence"],
            lookback=query["lookback"],
            as_of=query.get("as_of"),
            known_at=query.get("known_at"),
        )
        data = {"account": query["account"].pk, **result.__dict__}
        return Response(VaRSerializer(data).data)


# --- Limits ----------------------------------------------------------------------------------
class LimitQuery(AccountQuery):
    metric = serializers.ChoiceField(choices=Metric.choices, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)


class LimitSerializer(serializers.ModelSerializer):
    account = TradableAccountField(help_text="an account id you may trade")
    threshold = FiniteFloatField()

    class Meta:
        model = RiskLimit
        fields = [
            "id",
            "account",
            "metric",
            "threshold",
            "direction",
            "severity",
            "active",
            "note",
            "created_at",
        ]
        read_only_fields = ["id", "created_at"]

    def validate(self, attrs: dict) -> dict:
        if (
            self.instance is not None
            and "account" in attrs
            and attrs["account"] != self.instance.account
        ):
            raise serializers.ValidationError({"account": "a limit stays with its account"})
        return attrs


@extend_schema_view(list=extend_schema(parameters=schema_parameters(LimitQuery)))
class LimitViewSet(
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.UpdateModelMixin,
    mixins.DestroyModelMixin,
    ScopedViewSet,
):
    """Risk limits of your accounts: a metric breached above or below a threshold raises an
    alert at the next risk run. Every change is in the audit trail."""

    queryset = RiskLimit.objects.all()
    serializer_class = LimitSerializer
    query_class = LimitQuery
    lookups = {"account": "account", "metric": "metric", "active": "active"}

    def perform_create(self, serializer) -> None:
        with self.judged():
            serializer.save()

    def perform_update(self, serializer) -> None:
        with self.judged():
            serializer.save()

    @extend_schema(responses={204: None, 409: RefusalSerializer})
    def destroy(self, request: Request, *args, **kwargs) -> Response:
        limit = self.get_object()
        if limit.alerts.exists():
            raise Refused(
                "this limit has raised alerts, which keep it: deactivate it instead (active=false)",
                "risk_limit_has_alerts",
                status.HTTP_409_CONFLICT,
            )
        with self.judged():
            limit.delete()
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- Alerts ----------------------------------------------------------------------------------
class AlertQuery(AccountQuery, TimeRangeQuery):
    state = serializers.ChoiceField(choices=RiskAlert.State.choices, required=False)
    severity = serializers.ChoiceField(choices=Severity.choices, required=False)


class AlertSerializer(serializers.ModelSerializer):
    acknowledged_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )
    resolved_by: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True
    )

    class Meta:
        model = RiskAlert
        fields = [
            "id",
            "account",
            "limit",
            "metric",
            "value",
            "threshold",
            "direction",
            "severity",
            "measured_at",
            "raised_at",
            "state",
            "acknowledged_by",
            "acknowledged_at",
            "resolved_by",
            "resolved_at",
            "resolution",
        ]
        read_only_fields = fields


class ResolveSerializer(serializers.Serializer):
    resolution = serializers.CharField(max_length=500, required=False, default="", allow_blank=True)


@extend_schema_view(list=extend_schema(parameters=schema_parameters(AlertQuery)))
class AlertViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Alerts raised by your accounts' limits, newest first; acknowledge and resolve them."""

    queryset = RiskAlert.objects.select_related("acknowledged_by", "resolved_by")
    serializer_class = AlertSerializer
    pagination_class = newest_first("raised_at")
    query_class = AlertQuery
    lookups = {
        "account": "account",
        "state": "state",
        "severity": "severity",
        **time_lookups("raised_at"),
    }

    def _locked(self) -> RiskAlert:
        alert = self.get_object()  # scoping and the permission to trade the account
        return RiskAlert.objects.select_for_update().get(pk=alert.pk)

    def _changed(self, change) -> Response:
        with transaction.atomic():
            alert = self._locked()
            try:
                with self.judged():
                    change(alert)
            except AlertStateError as error:
                raise Refused(str(error), "risk_alert_legal_transition", 409) from error
        return Response(self.get_serializer(self.get_queryset().get(pk=alert.pk)).data)

    @extend_schema(request=None, responses={200: AlertSerializer, 409: RefusalSerializer})
    @action(detail=True, methods=["post"])
    def acknowledge(self, request: Request, pk: str | None = None) -> Response:
        """Say you have seen the alert (open alerts only); who and when are recorded."""
        return self._changed(lambda alert: acknowledge(alert, request.user))

    @extend_schema(
        request=ResolveSerializer, responses={200: AlertSerializer, 409: RefusalSerializer}
    )
    @action(detail=True, methods=["post"])
    def resolve(self, request: Request, pk: str | None = None) -> Response:
        """Close the alert, with an optional note of what was done; who and when are recorded.
        A breach that persists raises a new alert at the next risk run."""
        params = ResolveSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        note = params.validated_data["resolution"]
        return self._changed(lambda alert: resolve(alert, request.user, note))


# --- Volatility ------------------------------------------------------------------------------
class VolatilityQuery(ResolvesSymbols, TimeRangeQuery):
    symbol = SymbolField(required=False, help_text="the instrument's symbol")
    estimator = serializers.ChoiceField(choices=sorted(ESTIMATORS), required=False)
    timeframe = serializers.ChoiceField(choices=["1m", "1d"], required=False)
    window = serializers.IntegerField(required=False, min_value=1, max_value=100_000)


class VolatilitySerializer(serializers.ModelSerializer):
    symbol = serializers.CharField(source="instrument.symbol", read_only=True)

    class Meta:
        model = VolatilityEstimate
        fields = ["id", "symbol", "ts", "timeframe", "estimator", "window", "value"]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=schema_parameters(VolatilityQuery)))
class VolatilityViewSet(mixins.ListModelMixin, QueriedViewSet):
    """Volatility estimates of instruments (annualised), newest first (market data: every
    authenticated user reads them)."""

    queryset = VolatilityEstimate.objects.select_related("instrument")
    serializer_class = VolatilitySerializer
    pagination_class = NewestFirstPagination
    permission_classes = [permissions.IsAuthenticated, WritesNeedModelPermission]
    query_class = VolatilityQuery
    lookups = {
        "symbol": "instrument",
        "estimator": "estimator",
        "timeframe": "timeframe",
        "window": "window",
        **time_lookups("ts"),
    }
