"""Admin for the site's records: scheduler runs, the time-series catalog, archives and the audit
log (all read-only), the API tokens of programs, and Django's users and groups (re-registered
so that auditors change none of them, whatever permissions a group gives them)."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.apps import apps
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.contrib.auth import admin as auth_admin
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.db.models import Max, Min
from django.http import HttpResponseRedirect
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html

from qvp_site import (
    audit_export,
    logins_admin,  # noqa: F401  (the failed logins' list: registered with the rest at start-up)
    time_limits,
    tokens,
)
from qvp_site.admin_bases import (
    AuditorsReadOnly,
    CsvExport,
    IndexedValueFilter,
    NotCounted,
    ReadOnlyAdmin,
    history_url,
)
from qvp_site.models import (
    ApiToken,
    Archive,
    AuditCheckpoint,
    AuditEntry,
    JobRun,
    TimeSeriesAggregate,
    TimeSeriesTable,
)


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
    list_filter = [
        ("retention_default", admin.EmptyFieldListFilter),
        ("compress_after", admin.EmptyFieldListFilter),
    ]
    search_fields = ["table_name"]


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
    list_filter = ["source_table"]
    search_fields = ["view_name", "source_table"]


@admin.register(Archive)
class ArchiveAdmin(ReadOnlyAdmin):
    """Written by ``manage.py archive`` and ``restore``: the record of what left the tables."""

    list_display = [
        "table_name",
        "starts",
        "before",
        "rows",
        "size_bytes",
        "path",
        "created_at",
        "created_by",
        "restored_at",
        "restored_rows",
    ]
    list_filter = [
        "table_name",
        ("restored_at", admin.EmptyFieldListFilter),
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["table_name", "path", "sha256__exact"]


# --- The audit log ------------------------------------------------------------------------------


class AuditedTableFilter(IndexedValueFilter):
    title = "table"
    parameter_name = "table_name"


class OperationFilter(admin.ChoicesFieldListFilter):
    """The operations by their names (INSERT, UPDATE, DELETE, SNAPSHOT), as the list, the
    exports and the hashes write them, not the model's labels."""

    def choices(self, changelist):
        names = {label: name for name, label in AuditEntry.Operation.choices}
        for choice in super().choices(changelist):
            yield {**choice, "display": names.get(choice["display"], choice["display"])}


class ActorFilter(IndexedValueFilter):
    title = "actor"
    parameter_name = "actor"


class JobFilter(IndexedValueFilter):
    title = "job"
    parameter_name = "job"  # leads jobrun_latest_per_job_idx


@admin.register(JobRun)
class JobRunAdmin(NotCounted, ReadOnlyAdmin):
    list_display = ["job", "status", "started_at", "finished_at", "duration", "host", "pid"]
    list_filter = ["status", JobFilter, ("started_at", admin.DateFieldListFilter)]
    search_fields = ["job", "output"]


def _pretty_json(value) -> str:
    if value is None:
        return "-"
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    return format_html('<pre class="qvp-json">{}</pre>', text)


@admin.register(AuditEntry)
class AuditEntryAdmin(AuditorsReadOnly, NotCounted, ReadOnlyAdmin):
    """Written by the database's trigger only: read-only for everyone, superusers included.

    Lists stay on the indexes: the history of a row (table, row key), an actor's entries, a
    time range (list_filter rather than a date hierarchy, which reads every date), newest first
    by id; no full counts. Searching a row key alone scans the log on PostgreSQL before 18 (no
    index skip scan there): pick the table first.
    """

    list_display = ["id", "at", "table_name", "op", "row_key", "actor", "db_role", "row"]
    list_filter = [
        AuditedTableFilter,
        ("operation", OperationFilter),
        ActorFilter,
        ("at", admin.DateFieldListFilter),
    ]
    search_fields = ["row_key__exact"]
    search_help_text = "An exact row key (the record's id); choose the table to go straight to it."
    ordering = ["-id"]
    fields = [
        "id",
        "at",
        "table_name",
        "row_key",
        "row",
        "record",
        "op",
        "actor",
        "db_role",
        "changed_fields",
        "old_row_json",
        "new_row_json",
        "prev_hash",
        "hash",
    ]
    readonly_fields = fields

    @admin.display(description="operation", ordering="operation")
    def op(self, entry: AuditEntry) -> str:
        return entry.operation  # the name the hash covers, as the exports write it

    def history_view(self, request, object_id, extra_context=None):
        """An entry's HISTORY button: the audit entries of the row it records (Django's
        history of the entry itself, changes made in the admin, is empty: nobody changes one)."""
        entry = self.get_object(request, unquote(object_id))
        if entry is None:
            return self._get_obj_does_not_exist_redirect(request, self.opts, object_id)
        if not self.has_view_or_change_permission(request, entry):
            raise PermissionDenied
        return HttpResponseRedirect(history_url(entry.table_name, entry.row_key))

    def export_lines(self, request, queryset) -> Iterator[str]:
        """The export an auditor verifies offline (qvp_site/audit_export.py), not the list's
        columns: the stretch of the chain between the signed checkpoints around the linked
        entries the list shows (the entries in between included: each link needs the one
        before), with the exact text each hash covers and the checkpoints."""
        using = queryset.db
        deadline = time_limits.Deadline(time_limits.STREAM)
        limit = time_limits.STREAM
        with audit_export.snapshot(using, user=request.user, limit=limit):
            try:
                shown = queryset.aggregate(first=Min("seq"), last=Max("seq"))
                first, last = (1, 0)
                if shown["first"] is not None:
                    first, last = audit_export.stretch(shown["first"], shown["last"], using)
                yield from audit_export.lines(first, last, using=using, deadline=deadline)
            except DatabaseError as error:
                if not time_limits.cancelled(error):
                    raise
                raise time_limits.TimeLimitExceeded(
                    time_limits.message(time_limits.STREAM, error)
                ) from error

    @admin.display(description="history of the row")
    def row(self, entry: AuditEntry) -> str:
        return format_html(
            '<a href="{}">{} {}</a>',
            history_url(entry.table_name, entry.row_key),
            entry.table_name,
            entry.row_key,
        )

    @admin.display(description="record")
    def record(self, entry: AuditEntry) -> str:
        """The record itself in the admin, while it exists and the admin shows its model."""
        model = _models_by_table().get(entry.table_name)
        if model is None or entry.operation == AuditEntry.Operation.DELETE:
            return "-"
        opts = model._meta
        try:
            url = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[entry.row_key])
        except NoReverseMatch:
            return "-"
        return format_html('<a href="{}">{} {}</a>', url, opts.verbose_name, entry.row_key)

    @admin.display(description="changed fields")
    def changed_fields(self, entry: AuditEntry) -> str:
        if entry.operation != AuditEntry.Operation.UPDATE:
            return "-"
        old, new = entry.old_row or {}, entry.new_row or {}
        return ", ".join(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k)))

    @admin.display(description="old row")
    def old_row_json(self, entry: AuditEntry) -> str:
        return _pretty_json(entry.old_row)

    @admin.display(description="new row")
    def new_row_json(self, entry: AuditEntry) -> str:
        return _pretty_json(entry.new_row)


def _models_by_table() -> dict:
    return {model._meta.db_table: model for model in apps.get_models()}


@admin.register(AuditCheckpoint)
class AuditCheckpointAdmin(AuditorsReadOnly, NotCounted, ReadOnlyAdmin):
    """The chain's heads the sealer signed (qvp_site/audit_sealer.py): read-only for everyone;
    ``verify_audit`` checks them with the public keys."""

    list_display = ["seq", "hash", "signed_at", "key_id"]
    list_filter = [("signed_at", admin.DateFieldListFilter)]
    search_fields = ["hash__exact", "key_id__exact"]
    search_help_text = "A chain hash or a key id, exactly."
    ordering = ["-seq"]
    fields = ["seq", "hash", "signed_at", "key_id", "signature"]
    readonly_fields = fields


@admin.register(ApiToken)
class ApiTokenAdmin(CsvExport, AuditorsReadOnly, admin.ModelAdmin):
    """Tokens are added here (the key shown once), listed and revoked; never edited or
    deleted, so the record of who could act, and until when, stays."""

    list_display = [
        "name",
        "user",
        "prefix",
        "created_at",
        "created_by",
        "expires_at",
        "last_used_at",
        "revoked_at",
        "revoked_by",
    ]
    list_filter = [
        ("revoked_at", admin.EmptyFieldListFilter),
        "expires_at",
        ("created_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["user"]
    search_fields = ["name", "prefix", "user__username"]
    raw_id_fields = ["user"]
    actions = ["revoke_tokens"]

    def get_fields(self, request, obj=None):
        if obj is not None:
            return self.list_display
        # A token acts as its user: only the superuser names another one (tokens.may_issue);
        # everyone else makes tokens for themselves, and is not offered the field.
        if request.user.is_superuser:
            return ["user", "name", "expires_at"]
        return ["name", "expires_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else self.list_display

    def has_delete_permission(self, request, obj=None):
        return False

    def save_model(self, request, obj, form, change):
        if change:
            return
        if not request.user.is_superuser:
            obj.user = request.user
        if not tokens.may_issue(request.user, obj.user):
            raise PermissionDenied
        obj.created_by = request.user.get_username()
        key = tokens.issue_key(obj)
        super().save_model(request, obj, form, change)
        messages.warning(
            request, f"The key of {obj.name}, shown this once (only its digest is kept): {key}"
        )

    @admin.action(description="Revoke the selected tokens", permissions=["change"])
    def revoke_tokens(self, request, queryset):
        # Anyone may revoke their own tokens; another user's are the superuser's to revoke (a
        # staff user could otherwise cut the superuser's programs off).
        if not request.user.is_superuser:
            queryset = queryset.filter(user=request.user)
        count = tokens.revoke(queryset, request.user.get_username())
        self.message_user(request, f"Revoked {count} token(s).")


# --- Django's users and groups ------------------------------------------------------------------
# Re-registered with AuditorsReadOnly: an auditor whose other group grants add_group or
# change_user would otherwise create groups, or put themselves in one, from the admin.


# What makes a user more powerful: only a superuser grants it, or a staff user allowed to
# change users could make themselves superuser, join any group or take over the superuser.
_PRIVILEGES = ("is_superuser", "is_staff", "groups", "user_permissions")


class SiteUserAdmin(AuditorsReadOnly, auth_admin.UserAdmin):
    """Django's user admin; auditors view users and change none (passwords included).
    Privileges are granted by superusers only. A staff user allowed to change users changes
    their own record only (never their privileges): setting another user's password would be
    logging in as them, with groups the staff user was never granted."""

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else fields + _PRIVILEGES

    def has_change_permission(self, request, obj=None) -> bool:
        if not _may_change_user(request.user, obj):
            return False
        return super().has_change_permission(request, obj)

    def has_delete_permission(self, request, obj=None) -> bool:
        if not _may_change_user(request.user, obj):
            return False
        return super().has_delete_permission(request, obj)


def _may_change_user(requester, user) -> bool:
    """Whether ``requester`` may change (or delete) ``user``: a superuser anyone, others
    themselves (``user`` None: the question of the list, answered per row)."""
    return user is None or requester.is_superuser or user.pk == requester.pk


class SiteGroupAdmin(AuditorsReadOnly, auth_admin.GroupAdmin):
    """Django's group admin; auditors view groups and change none. A group's permissions are
    granted by superusers only (a staff user could otherwise widen their own group)."""

    def get_readonly_fields(self, request, obj=None):
        fields = tuple(super().get_readonly_fields(request, obj))
        return fields if request.user.is_superuser else (*fields, "permissions")


for _model, _admin in ((get_user_model(), SiteUserAdmin), (Group, SiteGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
