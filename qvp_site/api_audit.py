"""The audit log in the REST API: ``GET /api/v1/audit/`` (and one entry, ``audit/{id}/``), for
auditors and superusers only, read-only.

Who reads it: the members of the group ``auditors`` (``qvp_site.auditors.is_auditor``) and
superusers; everyone else is refused with a 403 (rule ``audit_readers``), even holding the
model's view permission (``qvp_site.view_auditentry``). The log has no row-level security (the
application's role reads all of it, qvp_site/apps.py) and holds the rows before and after
every change of every account's books: reading it is reading every account, which is the
auditors' rule for the books (they see every account), not a desk's. A view permission can
come with any group (a desk's group given every view permission to browse its books in the
admin) and would open every other desk's books through the log.

The admin (``AuditEntryAdmin``) lets in staff holding that view permission. As migrated, only
the auditors group holds it (``qvp_site.admin_access.grant_auditors_view``) and superusers
hold every permission, so the two agree on every site until someone grants the permission to
another group; then the admin is the wider of the two, and this endpoint does not follow it.

Written only by the database's trigger (``qvp_site/db/audit.py``): no write here, every other
method answers 405 (after the 403 for those who may not read it at all).

Filters: ``start``/``end`` on ``at`` (the time of the change), ``table``, ``operation``,
``actor`` and ``row_key`` (a row's history: only with ``table``, as a key names a row only
within its table). The table's indexes serve a row's history, an actor's entries and a time
range; ``operation`` narrows what they find. Newest first, by cursor (``at``, then ``id``).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers
from rest_framework.request import Request
from rest_framework.views import APIView

from qvp_site.api import (
    QueriedViewSet,
    TimeRangeQuery,
    newest_first,
    schema_parameters,
    time_lookups,
)
from qvp_site.api.bulk import BulkFormats
from qvp_site.api.permissions import refusal
from qvp_site.auditors import is_auditor
from qvp_site.models import AuditEntry

AUDIT_READERS_RULE = "audit_readers"


class AuditReaders(permissions.BasePermission):
    """Auditors and superusers read the audit log; nobody writes it (see the module)."""

    message: Any = refusal(
        "the audit log is read by auditors and superusers only", AUDIT_READERS_RULE
    )

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        if not user.is_authenticated:
            return False
        return bool(getattr(user, "is_superuser", False)) or is_auditor(user)


class AuditQuery(TimeRangeQuery):
    """``start``/``end`` bound ``at``; the rest are exact values."""

    # The lengths are the columns': longer text matches nothing, and is refused instead.
    table = serializers.CharField(
        required=False,
        max_length=63,
        help_text="the audited table's name, e.g. trading_order",
    )
    operation = serializers.ChoiceField(
        choices=AuditEntry.Operation.choices,
        required=False,
        help_text="INSERT, UPDATE, DELETE, or SNAPSHOT (a row's state when auditing began)",
    )
    actor = serializers.CharField(
        required=False,
        max_length=150,
        help_text="who acted: the user's name, a command (system:...), or the database role",
    )
    row_key = serializers.CharField(
        required=False,
        max_length=100,
        help_text="the row's key (its id) within table: the history of one row (needs table)",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        if "row_key" in attrs and "table" not in attrs:
            raise serializers.ValidationError(
                {"row_key": "give table too: a row key names a row only within its table"}
            )
        return attrs


class AuditEntrySerializer(serializers.ModelSerializer[AuditEntry]):
    """An entry as the trigger wrote it, with its links in the hash chain (null until the
    sealer has linked it)."""

    class Meta:
        model = AuditEntry
        fields = [
            "id",
            "at",
            "table_name",
            "row_key",
            "operation",
            "actor",
            "db_role",
            "old_row",
            "new_row",
            "seq",
            "prev_hash",
            "hash",
        ]
        read_only_fields = fields


@extend_schema_view(
    list=extend_schema(
        parameters=schema_parameters(AuditQuery),
        description="The audit trail, newest first: every insert, update and delete of an"
        " audited table with the rows before and after and who acted. Auditors and superusers"
        " only (403 for everyone else).",
    ),
    retrieve=extend_schema(description="One entry of the audit trail (auditors and superusers)."),
)
class AuditViewSet(BulkFormats, mixins.ListModelMixin, mixins.RetrieveModelMixin, QueriedViewSet):
    """The audit trail, read-only, for auditors and superusers; in the bulk formats too
    (the rows before and after as JSON text), oldest first."""

    bulk_ordering = ("at", "id")

    queryset = AuditEntry.objects.all()
    serializer_class = AuditEntrySerializer
    permission_classes = [AuditReaders]
    pagination_class = newest_first("at")
    lookup_value_regex = "[0-9]+"
    query_class = AuditQuery
    lookups = {
        "table": "table_name",
        "operation": "operation",
        "actor": "actor",
        "row_key": "row_key",
        **time_lookups("at"),
    }
