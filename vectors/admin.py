"""Admin for the vectors: read-only, since every row is derived from bars and backtests by
build_embeddings and build_patterns (rebuild them rather than edit them). Large tables list
without full counts; regimes show their discovered labels."""

from __future__ import annotations

import math

from django.contrib import admin

from qvp_site.admin_bases import CsvExport, IndexedValueFilter, NotCounted, ViewOnly
from vectors.models import (
    FeatureBuild,
    FeatureEmbedding,
    FeatureSet,
    StrategyPattern,
    VolatilityRegime,
)
from vectors.regimes import LABELS


class DerivedAdmin(ViewOnly, CsvExport, NotCounted, admin.ModelAdmin):
    """Rows derived by build_embeddings and build_patterns: rebuilt, never edited."""


class RegimeLabelFilter(admin.SimpleListFilter):
    """The labels regimes are named by, calmest first, without SELECT DISTINCT over them
    (more clusters than labels are named regime-<n>: searched by exact label)."""

    title = "label"
    parameter_name = "label"

    def lookups(self, request, model_admin):
        return [(label, label) for label in LABELS]

    def queryset(self, request, queryset):
        return queryset.filter(label=self.value()) if self.value() else queryset


class StrategyFilter(IndexedValueFilter):
    title = "strategy"
    parameter_name = "strategy"  # leads pattern_by_strategy_time


@admin.register(FeatureSet)
class FeatureSetAdmin(DerivedAdmin):
    list_display = [
        "name",
        "version",
        "kind",
        "dimensions",
        "timeframe",
        "stride",
        "fitted_rows",
        "created_at",
    ]
    list_filter = ["kind"]


@admin.register(FeatureBuild)
class FeatureBuildAdmin(DerivedAdmin):
    """What each build read (the bars as known at), with which code: to repeat it."""

    list_display = ["id", "feature_set", "known_at", "code_version", "started_at"]
    list_select_related = ["feature_set"]
    list_filter = ["feature_set", ("started_at", admin.DateFieldListFilter)]
    search_fields = ["code_version__exact"]
    ordering = ["-started_at", "-id"]


@admin.register(FeatureEmbedding)
class FeatureEmbeddingAdmin(DerivedAdmin):
    list_display = ["instrument", "ts", "feature_set"]
    list_select_related = ["instrument", "feature_set"]
    list_filter = ["feature_set", ("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(VolatilityRegime)
class VolatilityRegimeAdmin(DerivedAdmin):
    list_display = ["instrument", "period_end", "label", "cluster", "yang_zhang_21d"]
    list_select_related = ["instrument"]
    list_filter = [RegimeLabelFilter, "feature_set", ("period_end", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact", "label__exact"]
    ordering = ["-period_end"]

    @admin.display(description="Yang-Zhang 21d (annualised)")
    def yang_zhang_21d(self, obj: VolatilityRegime) -> str:
        value = obj.statistics.get("yang_zhang_21d")
        return "-" if value is None else f"{math.exp(value):.1%}"


@admin.register(StrategyPattern)
class StrategyPatternAdmin(DerivedAdmin):
    list_display = [
        "strategy",
        "instrument",
        "ts",
        "position",
        "forward_return",
        "sharpe",
        "max_drawdown",
        "backtest",
    ]
    list_select_related = ["instrument", "backtest"]
    list_filter = [StrategyFilter, ("ts", admin.DateFieldListFilter)]
    raw_id_fields = ["backtest"]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]
