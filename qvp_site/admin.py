"""Admin for the site's records: scheduler runs and the time-series catalog (all read-only)."""

from __future__ import annotations

from django.contrib import admin

from qvp_site.models import JobRun, TimeSeriesAggregate, TimeSeriesTable


class ReadOnlyAdmin(admin.ModelAdmin):
    """Written by the scheduler or by migrations, never by hand."""

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(JobRun)
class JobRunAdmin(ReadOnlyAdmin):
    list_display = ["job", "status", "started_at", "finished_at", "duration", "host", "pid"]
    list_filter = ["status", "job"]
    search_fields = ["job", "output"]
    show_full_result_count = False


@admin.register(TimeSeriesTable)
class TimeSeriesTableAdmin(ReadOnlyAdmin):
    list_display = [
        "table_name",
        "time_column",
        "chunk_interval",
        "retention_default",
        "compress_after",
        "retention_last_run",
        "retention_last_result",
    ]


@admin.register(TimeSeriesAggregate)
class TimeSeriesAggregateAdmin(ReadOnlyAdmin):
    list_display = [
        "view_name",
        "source_table",
        "bucket_width",
        "refresh_window",
        "refreshed_at",
        "refreshed_from",
        "refreshed_to",
    ]
