"""``/api/v1/cash/``: the cash ledger of the user's accounts. People post deposits,
withdrawals and adjustments (through the owner's ``trading_add_cash``: ``trading.books``); the
trade and fee entries are the database's, written with each execution.

The list answers in the bulk formats too (``qvp_site.api.bulk``): every entry of a bounded range
of ``entry_at``, oldest first, scoped as the JSON list is."""

from __future__ import annotations

import re
from typing import Any

from django.utils import timezone
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, serializers

from qvp_site.api import TimeField, TimeRangeQuery, schema_parameters, time_lookups
from qvp_site.api.bulk import BulkFormats
from trading import books
from trading.api.scoping import AccountQuery, ScopedViewSet, TradableAccountField
from trading.models import CashEntry

PEOPLE_CASH_KINDS = (
    CashEntry.Kind.DEPOSIT,
    CashEntry.Kind.WITHDRAWAL,
    CashEntry.Kind.ADJUSTMENT,
)
CURRENCY = re.compile(r"^[A-Z0-9]{3,5}$")


class CashQuery(AccountQuery, TimeRangeQuery):
    kind = serializers.ChoiceField(choices=CashEntry.Kind.choices, required=False)
    currency = serializers.RegexField(CURRENCY, required=False)


class CashEntrySerializer(serializers.ModelSerializer[CashEntry]):
    """A movement of cash. People write deposits, withdrawals and adjustments; the trade and
    fee entries are the database's, written with each execution."""

    account = TradableAccountField(help_text="an account id you may trade")
    currency = serializers.RegexField(
        CURRENCY, max_length=5, required=False, help_text="default: the account's base currency"
    )
    entry_at = TimeField(required=False, help_text="default: now")

    class Meta:
        model = CashEntry
        fields = [
            "id",
            # Writable.
            "account",
            "kind",
            "amount",
            "currency",
            "entry_at",
            "note",
            # Read-only.
            "execution",
            "created_at",
        ]
        read_only_fields = ["id", "execution", "created_at"]

    def validate_kind(self, kind: str) -> str:
        if kind not in PEOPLE_CASH_KINDS:
            raise serializers.ValidationError(f"{kind} entries are written by executions only")
        return kind

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        amount, kind = attrs["amount"], attrs["kind"]
        if amount == 0:
            raise serializers.ValidationError({"amount": "must not be zero"})
        if kind == CashEntry.Kind.DEPOSIT and amount < 0:
            raise serializers.ValidationError({"amount": "a deposit is positive"})
        if kind == CashEntry.Kind.WITHDRAWAL and amount > 0:
            raise serializers.ValidationError({"amount": "a withdrawal is negative"})
        attrs.setdefault("currency", attrs["account"].base_currency)
        attrs.setdefault("entry_at", timezone.now())
        return attrs

    def create(self, validated_data: dict[str, Any]) -> CashEntry:
        # By the owner's function: the application's role may not insert cash entries.
        entry_id = books.add_cash(
            validated_data["account"].pk,
            validated_data["kind"],
            validated_data["amount"],
            currency=validated_data["currency"],
            entry_at=validated_data["entry_at"],
            note=validated_data.get("note", ""),
        )
        return CashEntry.objects.get(pk=entry_id)


@extend_schema_view(list=extend_schema(parameters=schema_parameters(CashQuery)))
class CashViewSet(
    BulkFormats,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    ScopedViewSet,
):
    """The cash ledger of your accounts (listed also in Arrow, Parquet, CSV); deposits,
    withdrawals and adjustments are posted."""

    queryset = CashEntry.objects.all()
    serializer_class = CashEntrySerializer
    query_class = CashQuery
    lookups = {
        "account": "account",
        "kind": "kind",
        "currency": "currency",
        **time_lookups("entry_at"),
    }
    bulk_ordering = ("entry_at", "pk")  # the range is on entry_at (``lookups``)

    def perform_create(self, serializer: serializers.BaseSerializer[CashEntry]) -> None:
        with self.judged():
            serializer.save()
