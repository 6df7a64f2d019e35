"""Admin for the vectors: read-only, since every row is derived from bars and backtests by
build_embeddings and build_patterns (rebuild them rather than edit them). Large tables list
without full counts; regimes show their discovered labels."""

from __future__ import annotations

import math

from django.contrib import admin

from marketdata.admin import EstimatedCountPaginator
from vectors.models import FeatureEmbedding, FeatureSet, StrategyPattern, VolatilityRegime


class DerivedAdmin(admin.ModelAdmin):
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


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


@admin.register(FeatureEmbedding)
class FeatureEmbeddingAdmin(DerivedAdmin):
    list_display = ["instrument", "ts", "feature_set"]
    list_select_related = ["instrument", "feature_set"]
    list_filter = ["feature_set"]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(VolatilityRegime)
class VolatilityRegimeAdmin(DerivedAdmin):
    list_display = ["instrument", "period_end", "label", "cluster", "yang_zhang_21d"]
    list_select_related = ["instrument"]
    list_filter = ["label", "feature_set"]
    search_fields = ["instrument__symbol__exact"]
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
    list_filter = ["strategy"]
    raw_id_fields = ["backtest"]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]
