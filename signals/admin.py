"""Admin for signals and the data agents read: large tables listed without full counts, by
their time index; what was said (signals, fused signals, metrics, logs) and what was measured
(performance) is read-only, since the admin must not rewrite the record."""

from __future__ import annotations

from django.contrib import admin

from qvp_site.admin_bases import (
    AuditorsReadOnly,
    CsvExport,
    IndexedValueFilter,
    LargeTableAdmin,
    NotCounted,
    StaysWithItsInstrument,
    ViewOnly,
)
from qvp_site.display import duration_text
from signals.models import (
    Agent,
    AgentMetric,
    AlternativeData,
    FusedSignal,
    ModelPerformance,
    NewsArticle,
    Signal,
    SignalPerformance,
    SocialSentiment,
    SystemLog,
)


class TimeSeriesAdmin(LargeTableAdmin):
    ordering = ["-ts"]


def by_time(*filters) -> list:
    """``filters``, then the date filter on ``ts`` that every time series' list has."""
    return [*filters, ("ts", admin.DateFieldListFilter)]


class DirectionFilter(admin.SimpleListFilter):
    """The three directions the CHECK constraint allows, without SELECT DISTINCT."""

    title = "direction"
    parameter_name = "direction"

    def lookups(self, request, model_admin):
        return [("1", "long (1)"), ("0", "flat (0)"), ("-1", "short (-1)")]

    def queryset(self, request, queryset):
        return queryset.filter(direction=self.value()) if self.value() else queryset


class AlternativeDataKindFilter(IndexedValueFilter):
    title = "kind"
    parameter_name = "kind"  # leads alternativedata_kind_ts


@admin.register(Agent)
class AgentAdmin(CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    list_display = ["name", "kind", "version", "active", "created_at"]
    list_filter = ["kind", "active"]
    search_fields = ["name"]


@admin.register(Signal)
class SignalAdmin(ViewOnly, TimeSeriesAdmin):
    list_display = ["ts", "agent", "instrument", "direction", "strength", "confidence", "runs"]
    list_filter = by_time(DirectionFilter, "agent")
    list_select_related = ["agent", "instrument"]
    raw_id_fields = ["agent", "instrument"]
    search_fields = ["instrument__symbol__exact", "agent__name__exact"]

    @admin.display(description="horizon", ordering="horizon")
    def runs(self, signal: Signal) -> str:
        """The horizon in words ("2 days"), not a timedelta's "2 days, 0:00:00"."""
        return duration_text(signal.horizon)

    def get_fields(self, request, obj=None):
        return ["runs" if f == "horizon" else f for f in super().get_fields(request, obj)]

    def get_readonly_fields(self, request, obj=None):
        return [*super().get_readonly_fields(request, obj), "runs"]


@admin.register(FusedSignal)
class FusedSignalAdmin(ViewOnly, TimeSeriesAdmin):
    list_display = ["ts", "instrument", "target_weight", "confidence", "method", "input_count"]
    list_filter = by_time()
    search_fields = ["instrument__symbol__exact", "method__exact"]


@admin.register(SignalPerformance)
class SignalPerformanceAdmin(ViewOnly, CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    list_display = [
        "agent",
        "window_days",
        "signal_count",
        "hit_rate",
        "information_coefficient",
        "average_return",
        "cumulative_return",
        "window_end",
    ]
    list_filter = ["window_days", "agent", ("window_end", admin.DateFieldListFilter)]
    list_select_related = ["agent"]


@admin.register(ModelPerformance)
class ModelPerformanceAdmin(CsvExport, AuditorsReadOnly, NotCounted, admin.ModelAdmin):
    list_display = ["model_name", "model_version", "agent", "evaluated_at", "accuracy", "sharpe"]
    list_filter = ["agent", ("evaluated_at", admin.DateFieldListFilter)]
    list_select_related = ["agent"]
    search_fields = ["model_name"]
    ordering = ["-evaluated_at"]


@admin.register(NewsArticle)
class NewsArticleAdmin(TimeSeriesAdmin):
    list_display = ["ts", "source", "headline", "symbols", "sentiment"]
    list_filter = by_time()
    raw_id_fields: list[str] = []
    list_select_related: list[str] = []
    search_fields = ["headline", "source__exact"]
    search_help_text = "Words of a headline, or an exact source."


@admin.register(SocialSentiment)
class SocialSentimentAdmin(StaysWithItsInstrument, TimeSeriesAdmin):
    list_display = ["ts", "instrument", "platform", "sentiment", "mentions"]
    list_filter = by_time()
    search_fields = ["instrument__symbol__exact", "platform__exact"]


@admin.register(AlternativeData)
class AlternativeDataAdmin(TimeSeriesAdmin):
    list_display = ["ts", "source", "kind", "instrument"]
    list_filter = by_time(AlternativeDataKindFilter)
    search_fields = ["instrument__symbol__exact", "source__exact"]


@admin.register(AgentMetric)
class AgentMetricAdmin(ViewOnly, TimeSeriesAdmin):
    list_display = ["ts", "agent", "latency_ms", "errors", "signals_emitted"]
    list_filter = by_time("agent")
    list_select_related = ["agent"]
    raw_id_fields = ["agent"]


@admin.register(SystemLog)
class SystemLogAdmin(ViewOnly, TimeSeriesAdmin):
    list_display = ["ts", "level", "logger", "message"]
    list_filter = by_time("level")
    raw_id_fields: list[str] = []
    list_select_related: list[str] = []
    search_fields = ["logger__exact", "message"]
