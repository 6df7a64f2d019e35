"""Corporate actions in the REST API: listed and read as known at a moment, stated one or a
batch at a time, withdrawn.

- ``GET corporate-actions/?symbol=&instrument=&kind=&start=&end=&known_at=``: the actions by
  ex-date (``start`` included, ``end`` excluded), as currently known or as known at a moment
  (``marketdata_actions_known_at``), in numbered pages as the security master's lists. A
  symbol names the instrument that bore it on ``start`` (default today), as in the other
  doors (``marketdata.fields``).
- ``GET corporate-actions/{id}/``: one version, current or closed.
- ``POST corporate-actions/``: one action (an object) or a batch (a list), checked and stated
  by the same statements as ``manage.py ingest_actions`` (``marketdata.actions_load``): a
  symbol names the instrument that bore it on the ex-date; a batch with a bad item is refused
  whole, 400 naming each bad item's index and field, and nothing is written. Each action's
  answer says whether it was inserted, restated (the version it replaces kept, closed) or
  unchanged; 201 when anything changed, else 200.
- ``POST corporate-actions/withdraw/``: close the current action of an instrument, kind and
  ex-date (``marketdata_action_withdraw``); 404 when none is current.

Every logged-in user reads; writing needs ``marketdata.add_corporateaction`` (as the security
master's API needs ``add_listing``) and is never an auditor's.
"""

from __future__ import annotations

from typing import Any

from django.db import connection, transaction
from django.db.models import QuerySet
from django.db.models.expressions import RawSQL
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.actions_load import (
    ActionsRefused,
    Problem,
    column,
    staged_rows,
    state_actions,
)
from marketdata.fields import ResolvesSymbols, SymbolField
from marketdata.models import ActionKind, CorporateAction, Instrument
from qvp_site.api import (
    Batch,
    PageNumberPagination,
    TimeField,
    query_parameters,
    schema_parameters,
)
from qvp_site.api.errors import RefusalsAsResponses
from qvp_site.api.fields import id_field
from qvp_site.api.permissions import WritesNeedModelPermission
from qvp_site.loading.readers import RowsSource
from qvp_site.loading.refusals import IngestRefused

WRITERS = [permissions.IsAuthenticated, WritesNeedModelPermission]
ACTION_FIELDS = [
    "id",
    "instrument",
    "symbol",
    "kind",
    "ex_date",
    "ratio",
    "amount",
    "currency",
    "pay_date",
    "new_instrument",
    "new_symbol",
    "cost_fraction",
    "final_price",
    "known_from",
    "known_until",
]


def _decimal(name: str) -> serializers.DecimalField:
    """A number the column holds exactly (its digits and decimal places)."""
    found = column(name)
    return serializers.DecimalField(
        max_digits=found.max_digits,
        decimal_places=found.decimal_places,
        required=False,
        allow_null=True,
        help_text=str(found.help_text),
    )


# --- Queries ---------------------------------------------------------------------------------
class ActionQuery(ResolvesSymbols):
    symbols_dated_by = ("start",)

    symbol = SymbolField(
        required=False,
        help_text="the instrument that bore this symbol on start's date (default: today)",
    )
    instrument = id_field(required=False, help_text="the instrument's id")
    kind = serializers.ChoiceField(choices=ActionKind.choices, required=False)
    start = serializers.DateField(required=False, help_text="ex-dates from this date on")
    end = serializers.DateField(required=False, help_text="ex-dates before this date (excluded)")
    known_at = TimeField(
        required=False,
        help_text="the actions as the system knew them at this time, ISO 8601 (default: as"
        " known now): restatements learnt later undone, actions learnt later left out",
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"end": "must be after start"})
        return attrs


# --- Bodies and rows -------------------------------------------------------------------------
class CorporateActionSerializer(serializers.ModelSerializer[CorporateAction]):
    symbol = serializers.CharField(
        source="instrument.symbol", read_only=True, help_text="the instrument's symbol today"
    )
    new_symbol = serializers.CharField(
        source="new_instrument.symbol",
        read_only=True,
        allow_null=True,
        default=None,
        help_text="spin-off: the new instrument's symbol today",
    )

    class Meta:
        model = CorporateAction
        fields = ACTION_FIELDS


class ActionResultSerializer(CorporateActionSerializer):
    outcome = serializers.ChoiceField(
        choices=["inserted", "restated", "unchanged"],
        read_only=True,
        help_text="inserted: new; restated: the version it replaces is kept, closed;"
        " unchanged: known already, nothing written",
    )

    class Meta(CorporateActionSerializer.Meta):
        fields = [*ACTION_FIELDS, "outcome"]


class RatioField(serializers.CharField):
    """A ratio: a number, or shares for shares ("3:2", "3-for-2", "1:10"), read by the loader
    (as the CSV's ratio column is)."""


# An action stated: its instrument by symbol (the one that bore it on the ex-date) or id, and
# the terms its kind states (a docstring would become the schema's description).
class ActionWriteSerializer(serializers.Serializer[Any]):
    symbol = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        help_text="the instrument's symbol on the ex-date",
    )
    instrument = id_field(required=False, allow_null=True, help_text="or the instrument's id")
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    ex_date = serializers.DateField(help_text="the first day the shares trade without it")
    ratio = RatioField(
        required=False,
        allow_null=True,
        max_length=40,
        help_text="split: new shares per old one (1.5, 3:2 or 3-for-2); stock dividend and"
        " spin-off: new shares per share held",
    )
    amount = _decimal("amount")
    currency = serializers.CharField(
        max_length=5,
        required=False,
        allow_null=True,
        help_text="cash dividend: the instrument's currency",
    )
    pay_date = serializers.DateField(required=False, allow_null=True)
    new_symbol = serializers.CharField(
        max_length=64,
        required=False,
        allow_null=True,
        help_text="spin-off: the new instrument's symbol on the ex-date",
    )
    new_instrument = id_field(required=False, allow_null=True, help_text="or its id")
    cost_fraction = _decimal("cost_fraction")
    final_price = _decimal("final_price")


class WithdrawSerializer(ResolvesSymbols):
    symbols_dated_by = ("ex_date",)

    symbol = SymbolField(required=False, help_text="the instrument's symbol on the ex-date")
    instrument = id_field(required=False, help_text="or the instrument's id")
    kind = serializers.ChoiceField(choices=ActionKind.choices)
    ex_date = serializers.DateField()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if ("symbol" in attrs) == ("instrument" in attrs):
            raise serializers.ValidationError({"symbol": "give symbol or instrument (one)"})
        if "instrument" in attrs:
            found = Instrument.objects.filter(pk=attrs["instrument"]).first()
            if found is None:
                raise serializers.ValidationError(
                    {"instrument": f"no instrument {attrs['instrument']}"}
                )
            attrs["symbol"] = found
        return attrs


ACTIONS_IN = PolymorphicProxySerializer(
    component_name="CorporateActionOrBatch",
    serializers=[ActionWriteSerializer, ActionWriteSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)
ACTIONS_OUT = PolymorphicProxySerializer(
    component_name="CorporateActionResultOrBatch",
    serializers=[ActionResultSerializer, ActionResultSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


# --- Views -----------------------------------------------------------------------------------
@extend_schema_view(list=extend_schema(parameters=schema_parameters(ActionQuery)))
class CorporateActionViewSet(
    RefusalsAsResponses,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet[CorporateAction],
):
    """Corporate actions: listed as known at a moment, stated (one or a batch), withdrawn."""

    queryset = CorporateAction.objects.select_related("instrument", "new_instrument")
    serializer_class = CorporateActionSerializer
    pagination_class = PageNumberPagination
    permission_classes = WRITERS
    lookup_value_regex = "[0-9]+"

    def get_queryset(self) -> QuerySet[CorporateAction]:
        rows = super().get_queryset()
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return rows
        return filtered(rows, query_parameters(ActionQuery, self.request))

    @extend_schema(
        request=ACTIONS_IN,
        responses={201: ACTIONS_OUT, 200: ACTIONS_OUT},
        description=(
            "State one action (an object) or a batch (a list of up to 10,000), all or nothing:"
            " a batch with a bad item is refused whole, 400 with the index and field of each"
            " bad item. Each answer says whether the action was inserted, restated (the"
            " version it replaces kept, closed) or unchanged; 201 when anything changed."
        ),
    )
    def create(self, request: Request) -> Response:
        posted = Batch.of(request.data)
        batch = posted.validated(ActionWriteSerializer, one_by_its_fields=True)
        items: list[dict[str, Any]] = list(batch.validated_data)
        header, rows = staged_rows(items)
        try:  # in a savepoint of the request's transaction, which names the user
            result = state_actions(RowsSource.of("corporate actions", header, rows))
        except ActionsRefused as refused:
            raise serializers.ValidationError(_by_item(refused.problems, posted.single)) from None
        except IngestRefused as refused:  # the database refused what the checks let through
            raise serializers.ValidationError({"non_field_errors": [str(refused)]}) from None
        found = CorporateAction.objects.select_related("instrument", "new_instrument").in_bulk(
            result.action_ids.values()
        )
        answered = []
        for row in sorted(result.outcomes):
            current = found[result.action_ids[row]]
            current.outcome = result.outcomes[row]  # type: ignore[attr-defined]
            answered.append(current)
        data = ActionResultSerializer(answered, many=True).data
        return Response(data[0] if posted.single else data, status=201 if result.changed else 200)

    @extend_schema(
        request=WithdrawSerializer, responses={200: CorporateActionSerializer, 404: None}
    )
    @action(detail=False, methods=["post"])
    def withdraw(self, request: Request) -> Response:
        """Withdraw an action (announced, then cancelled): its current version is closed
        (kept, as known before); 404 when none is current."""
        body = WithdrawSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instrument: Instrument = data["symbol"]
        kind, ex_date = data["kind"], data["ex_date"]
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT marketdata_action_withdraw(%s, %s, %s)", [instrument.pk, kind, ex_date]
            )
            withdrawn = cursor.fetchone()[0]
        if not withdrawn:
            raise NotFound(
                f"no current {kind} of {instrument.symbol} (instrument {instrument.pk})"
                f" on {ex_date}"
            )
        closed = self.get_queryset().filter(
            instrument=instrument, kind=kind, ex_date=ex_date, known_until__isnull=False
        )
        return Response(self.get_serializer(closed.latest("known_until", "id")).data)


def filtered(rows: QuerySet[CorporateAction], query: dict[str, Any]) -> QuerySet[CorporateAction]:
    """The actions a list asks for: as known at ``known_at`` (default: the current ones)."""
    known_at = query.get("known_at")
    if known_at is None:
        rows = rows.filter(known_until__isnull=True)
    else:
        known = RawSQL("SELECT id FROM marketdata_actions_known_at(%s::timestamptz)", [known_at])
        rows = rows.filter(id__in=known)
    lookups = {
        "symbol": "instrument",
        "instrument": "instrument_id",
        "kind": "kind",
        "start": "ex_date__gte",
        "end": "ex_date__lt",
    }
    chosen = rows.filter(**{lookups[k]: v for k, v in query.items() if k in lookups})
    return chosen.order_by("ex_date", "id")


def _by_item(problems: list[Problem], single: bool) -> dict[Any, Any]:
    """The loader's problems as DRF's errors: by field, under each item's index (the staged
    row less one) unless one object was posted alone."""
    errors: dict[int, dict[str, list[str]]] = {}
    for problem in problems:
        fields = errors.setdefault(problem.position - 1, {})
        fields.setdefault(problem.field or "non_field_errors", []).append(problem.reason)
    if single:
        return errors.get(0, {})
    return dict(errors)
