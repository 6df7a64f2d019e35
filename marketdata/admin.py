"""Admin for market data that stays fast on millions of rows: no full counts, raw id fields,
no date hierarchy, lists ordered by the key the tables are indexed on.

Bars, ticks and option quotes are viewed here, never added, changed or deleted: they come by
loads (``ingest_bars``, ``ingest_ticks``, ``POST /api/v1/bars/``), which record an Ingest, and
the application's database role may not UPDATE or DELETE them (marketdata/apps.py)."""

from __future__ import annotations

from django.contrib import admin

from marketdata.models import DailyBar, Ingest, Instrument, MinuteBar, OptionQuote, Tick
from qvp_site.admin_access import BlankToFieldIsThePk
from qvp_site.admin_bases import (
    AuditorsReadOnly,
    CsvExport,
    LargeTableAdmin,
    NotCounted,
    ViewOnly,
)


@admin.register(Instrument)
class InstrumentAdmin(CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    list_display = ["symbol", "asset_class", "exchange", "currency", "tick_size", "active"]
    list_filter = ["asset_class", "active", "exchange", "currency"]
    search_fields = ["symbol"]


class BarAdmin(ViewOnly, LargeTableAdmin):
    list_display = ["instrument", "ts", "open", "high", "low", "close", "volume"]
    list_filter = [("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


admin.site.register(MinuteBar, BarAdmin)
admin.site.register(DailyBar, BarAdmin)


@admin.register(Tick)
class TickAdmin(ViewOnly, LargeTableAdmin):
    list_display = ["instrument", "ts", "sequence", "kind", "price", "size", "bid", "ask", "side"]
    list_filter = ["kind", "side", ("ts", admin.DateFieldListFilter)]
    search_fields = ["instrument__symbol__exact"]
    ordering = ["-ts"]


@admin.register(OptionQuote)
class OptionQuoteAdmin(ViewOnly, LargeTableAdmin):
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
class IngestAdmin(BlankToFieldIsThePk, CsvExport, NotCounted, admin.ModelAdmin):
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
