"""Risk in the admin: limits edited (audited), alerts acknowledged and resolved by actions,
everything else read-only (written by compute_risk, detect_anomalies and the deliveries).
Scoping, auditors' read-only access and the database's refusals as messages come from
trading's admin classes."""

from __future__ import annotations

from django.contrib import admin

from risk.alerts import acknowledge, resolve
from risk.models import (
    AlertDelivery,
    FactorExposure,
    MarketAnomaly,
    RiskAlert,
    RiskLimit,
    RiskMetric,
    RiskRun,
    TradingCalendar,
    TradingPeriod,
    VolatilityEstimate,
)
from trading.admin import AccountFilter, AccountScopedAdmin, ReadOnly, TradingAdmin


class TimeframeFilter(admin.SimpleListFilter):
    """The bars' timeframes the estimates are computed on (the CHECK constraint's), without
    SELECT DISTINCT over the estimates."""

    title = "timeframe"
    parameter_name = "timeframe"

    def lookups(self, request, model_admin):
        return [("1m", "1 minute"), ("1d", "1 day")]

    def queryset(self, request, queryset):
        return queryset.filter(timeframe=self.value()) if self.value() else queryset


class RiskScopedAdmin(AccountScopedAdmin):
    list_select_related = ["account"]
    raw_id_fields = []


@admin.register(RiskLimit)
class RiskLimitAdmin(RiskScopedAdmin):
    list_display = ["account", "metric", "direction", "threshold", "severity", "active", "note"]
    list_filter = [AccountFilter, "metric", "direction", "severity", "active"]
    add_fields = ["account", "metric", "direction", "threshold", "severity", "active", "note"]
    changeable_fields = ["threshold", "severity", "active", "note"]
    audited = True
    ordering = ["account", "metric"]


@admin.register(RiskAlert)
class RiskAlertAdmin(ReadOnly, RiskScopedAdmin):
    """Raised by compute_risk; people acknowledge and resolve them with the actions."""

    list_display = [
        "raised_at",
        "account",
        "metric",
        "value",
        "direction",
        "threshold",
        "severity",
        "state",
        "acknowledged_by",
        "resolved_by",
    ]
    list_filter = [
        AccountFilter,
        "severity",
        "state",
        "metric",
        "direction",
        ("raised_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["account", "acknowledged_by", "resolved_by"]
    ordering = ["-raised_at", "-id"]
    actions = ["acknowledge_alerts", "resolve_alerts"]

    def get_actions(self, request):
        found = super().get_actions(request)
        if not self.may(request, "change"):
            found.pop("acknowledge_alerts", None)
            found.pop("resolve_alerts", None)
        return found

    @admin.action(description="Acknowledge the selected open alerts")
    def acknowledge_alerts(self, request, queryset) -> None:
        open_ones = queryset.filter(state=RiskAlert.State.OPEN).select_for_update(of=("self",))
        self.write_each(request, open_ones, lambda a: acknowledge(a, request.user), "acknowledged")

    @admin.action(description="Resolve the selected alerts")
    def resolve_alerts(self, request, queryset) -> None:
        unresolved = queryset.exclude(state=RiskAlert.State.RESOLVED).select_for_update(
            of=("self",)
        )
        self.write_each(request, unresolved, lambda a: resolve(a, request.user), "resolved")


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnly, RiskScopedAdmin):
    list_display = ["attempted_at", "alert", "channel", "target", "attempt", "outcome", "error"]
    list_filter = [AccountFilter, "channel", "outcome", ("attempted_at", admin.DateFieldListFilter)]
    raw_id_fields = ["alert"]
    ordering = ["-attempted_at", "-id"]


@admin.register(RiskRun)
class RiskRunAdmin(ReadOnly, TradingAdmin):
    """What each run read (as of, known at), with which code and options: to repeat it."""

    list_display = [
        "id", "as_of", "known_at", "code_version", "started_at", "finished_at", "actor",
        "repeat_of", "identical",
    ]  # fmt: skip
    list_filter = [
        ("started_at", admin.DateFieldListFilter),
        ("as_of", admin.DateFieldListFilter),
        "identical",
    ]
    search_fields = ["code_version__exact", "actor__exact"]
    raw_id_fields = ["repeat_of"]
    ordering = ["-started_at", "-id"]


@admin.register(RiskMetric)
class RiskMetricAdmin(ReadOnly, RiskScopedAdmin):
    list_display = ["ts", "account", "metric", "value", "confidence", "lookback"]
    list_filter = [AccountFilter, "metric", ("ts", admin.DateFieldListFilter)]
    ordering = ["-ts"]


@admin.register(FactorExposure)
class FactorExposureAdmin(ReadOnly, RiskScopedAdmin):
    list_display = ["ts", "account", "factor", "exposure"]
    list_filter = [AccountFilter, "factor", ("ts", admin.DateFieldListFilter)]
    ordering = ["-ts"]


@admin.register(VolatilityEstimate)
class VolatilityEstimateAdmin(ReadOnly, TradingAdmin):
    list_display = ["ts", "instrument", "timeframe", "estimator", "window", "value"]
    list_filter = ["estimator", TimeframeFilter, ("ts", admin.DateFieldListFilter)]
    list_select_related = ["instrument"]
    raw_id_fields = ["instrument"]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(MarketAnomaly)
class MarketAnomalyAdmin(ReadOnly, TradingAdmin):
    list_display = ["ts", "instrument", "kind", "value", "score", "until", "detected_at"]
    list_filter = ["kind", ("ts", admin.DateFieldListFilter)]
    list_select_related = ["instrument"]
    raw_id_fields = ["instrument"]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(TradingCalendar)
class TradingCalendarAdmin(ReadOnly, TradingAdmin):
    list_display = ["name", "sessions_from", "sessions_to", "loaded_at"]
    search_fields = ["name__exact"]
    ordering = ["name"]


@admin.register(TradingPeriod)
class TradingPeriodAdmin(ReadOnly, TradingAdmin):
    list_display = ["opens_at", "closes_at", "calendar"]
    list_filter = ["calendar", ("opens_at", admin.DateFieldListFilter)]
    list_select_related = ["calendar"]
    search_fields = ["calendar__name__exact"]
    ordering = ["-opens_at"]
