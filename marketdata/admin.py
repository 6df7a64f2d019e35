"""Admin for market data that stays fast on millions of rows: no full counts, raw id fields,
no date hierarchy, lists ordered by the key the tables are indexed on."""

from __future__ import annotations

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connections
from django.utils.functional import cached_property

from marketdata.models import DailyBar, Ingest, Instrument, MinuteBar, OptionQuote, Tick
from qvp_site.admin_access import AuditorsReadOnly
from qvp_site.admin_export import CsvExport
from qvp_site.db import status


class EstimatedCountPaginator(Paginator):
    """Counts from the planner's estimate past a threshold instead of scanning every row."""

    exact_below = 10_000

    @cached_property
    def count(self) -> int:
        query = self.object_list.query
        if query.where:  # filtered: count exactly, but never past a bound
            return self.object_list[: self.exact_below + 1].count()
        with connections[self.object_list.db].cursor() as cursor:
            rows, _size = status.estimate(cursor, self.object_list.model._meta.db_table)
        return self.object_list.count() if rows < self.exact_below else rows


class NotCounted:
    """ModelAdmin mixin for tables that grow without end: no full count, no facet counts
    (a count per filter choice over millions of rows), a paginator that does not count."""

    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = EstimatedCountPaginator
    list_per_page = 100


class LargeTableAdmin(CsvExport, AuditorsReadOnly, NotCounted, admin.ModelAdmin):
    raw_id_fields = ["instrument"]
    list_select_related = ["instrument"]


@admin.register(Instrument)
class InstrumentAdmin(CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    list_display = ["symbol", "asset_class", "exchange", "currency", "tick_size", "active"]
    list_filter = ["asset_class", "active", "exchange", "currency"]
    search_fields = ["symbol"]


class BarAdmin(LargeTableAdmin):
    list_display = ["instrument", "ts", "open", "high", "low", "close", "volume"]
    list_filter = [("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


admin.site.register(MinuteBar, BarAdmin)
admin.site.register(DailyBar, BarAdmin)


@admin.register(Tick)
class TickAdmin(LargeTableAdmin):
    list_display = ["instrument", "ts", "sequence", "kind", "price", "size", "bid", "ask", "side"]
    list_filter = ["kind", "side", ("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(OptionQuote)
class OptionQuoteAdmin(LargeTableAdmin):
    list_display = ["underlying", "ts", "expiry", "strike", "right", "bid", "ask", "iv", "delta"]
    list_filter = [
        "right",
        ("ts", admin.DateFieldListFilter),
        ("expiry", admin.DateFieldListFilter),
    ]
    raw_id_fields = ["underlying"]
    list_select_related = ["underlying"]
    search_fields = ["underlying__symbol__exact"]
    ordering = ["-ts"]


@admin.register(Ingest)
class IngestAdmin(CsvExport, NotCounted, admin.ModelAdmin):
    """Who loaded which file, when, and what came of it: read-only, the record of the loads."""

    list_display = [
        "started_at",
        "file_name",
        "kind",
        "symbol",
        "status",
        "rows_read",
        "inserted",
        "updated",
        "rejected",
        "who",
    ]
    list_filter = [
        "kind",
        "status",
        "instrument_created",
        ("started_at", admin.DateFieldListFilter),
    ]
    search_fields = ["file_name", "symbol", "sha256__exact"]
    ordering = ["-started_at"]
    list_select_related = ["user"]
    raw_id_fields = ["instrument", "user"]

    @admin.display(description="who")
    def who(self, ingest: Ingest) -> str:
        return ingest.user.get_username() if ingest.user else ingest.os_user

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
