"""The security master's REST API: an instrument's history, a version stated, the universe of
a date.

- ``GET instruments/{id}/listings/?known_at=``: the instrument's versions (symbol, name, MIC,
  currency, status, identifiers, valid from one date until another), as currently known or as
  known at a moment, in date order.
- ``POST listings/``: state an instrument's terms over [valid_from, valid_until)
  (``security_master.set_terms``: the versions replaced are kept, closed). The instrument is
  named by its id, or by the symbol it bore on ``on`` (default valid_from, else today). Needs
  ``marketdata.add_listing`` (the group ``operators``); never an auditor's.
- ``GET universe/?on=&known_at=``: the instruments listed or suspended on a date, with the
  terms they had then and their symbol now, delisted ones since included (no survivorship
  bias), in pages.

Bad input is a 400 naming the field; a symbol another listed instrument bears on those days
is a 400 naming it and its dates, never a 500.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.db.models import F, QuerySet
from django.db.models.expressions import RawSQL
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata import security_master
from marketdata.listings_load import (
    BEARER_RULE,
    ROW_SYMBOL_RULE,
    bearers_of,
    code_problem,
)
from marketdata.models import Instrument, Listing
from qvp_site.api import PageNumberPagination, TimeField, query_parameters, schema_parameters
from qvp_site.api.errors import RefusalsAsResponses, Refused
from qvp_site.api.fields import id_field
from qvp_site.api.permissions import WritesNeedModelPermission

WRITERS = [permissions.IsAuthenticated, WritesNeedModelPermission]
LISTING_FIELDS = [
    "id",
    "instrument",
    "valid_from",
    "valid_until",
    "symbol",
    "name",
    "mic",
    "currency",
    "status",
    "isin",
    "figi",
    "vendor_ids",
    "known_from",
    "known_until",
]


def known_at_field() -> TimeField:
    return TimeField(
        required=False,
        help_text="as the system knew it at this time, ISO 8601 (default: as known now)",
    )


# --- Queries ---------------------------------------------------------------------------------
class HistoryQuery(serializers.Serializer[Any]):
    known_at = known_at_field()


class UniverseQuery(serializers.Serializer[Any]):
    on = serializers.DateField(required=False, help_text="the date, YYYY-MM-DD (default: today)")
    known_at = known_at_field()


# --- Bodies and rows -------------------------------------------------------------------------
class ListingSerializer(serializers.ModelSerializer[Listing]):
    class Meta:
        model = Listing
        fields = LISTING_FIELDS


def code_field(name: str, required: bool = False) -> serializers.CharField:
    """A code (currency, MIC, ISIN, FIGI) checked against the database's own pattern."""

    def check(value: str) -> None:
        problem = code_problem(name, value) if value else None
        if problem:
            raise serializers.ValidationError(problem)

    extra: dict[str, Any] = {} if required else {"required": False, "default": ""}
    return serializers.CharField(allow_blank=not required, validators=[check], **extra)


# A version stated (a docstring would become the schema's description).
class ListingWriteSerializer(serializers.Serializer[Any]):
    instrument = id_field(required=False, help_text="the instrument's id")
    on = serializers.DateField(
        required=False,
        help_text="without instrument: the date the symbol names it on (default valid_from,"
        " else today)",
    )
    valid_from = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="empty: since always"
    )
    valid_until = serializers.DateField(
        required=False, allow_null=True, default=None, help_text="excluded; empty: still"
    )
    symbol = serializers.CharField(max_length=64)
    currency = code_field("currency", required=True)
    status = serializers.ChoiceField(choices=Listing.Status.choices, default="listed")
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    mic = code_field("mic")
    isin = code_field("isin")
    figi = code_field("figi")
    vendor_ids = serializers.DictField(
        child=serializers.CharField(max_length=200), required=False, default=dict
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        start, end = attrs["valid_from"], attrs["valid_until"]
        if start is not None and end is not None and end <= start:
            raise serializers.ValidationError({"valid_until": "must be after valid_from"})
        attrs["instrument"] = self._instrument(attrs)
        return attrs

    def _instrument(self, attrs: dict[str, Any]) -> Instrument:
        """The instrument named by id, or by the symbol it bore on the date."""
        if "instrument" in attrs:
            found = Instrument.objects.filter(pk=attrs["instrument"]).first()
            if found is None:
                raise serializers.ValidationError(
                    {"instrument": f"no instrument {attrs['instrument']}"}
                )
            return found
        day = attrs.get("on") or attrs["valid_from"] or security_master.today()
        try:
            return security_master.resolve(attrs["symbol"], day)
        except security_master.SymbolNotResolved as unresolved:
            raise serializers.ValidationError(
                {"symbol": f"{unresolved} (name the instrument by its id to rename it)"}
            ) from unresolved


class ListingResultSerializer(serializers.Serializer[Any]):
    instrument = serializers.IntegerField()
    versions_changed = serializers.IntegerField(help_text="0: known already, nothing written")
    listings = ListingSerializer(many=True, help_text="the instrument's history now")


class UniverseRowSerializer(serializers.Serializer[Any]):
    instrument = serializers.IntegerField()
    symbol = serializers.CharField(help_text="its symbol on the date")
    name = serializers.CharField()
    mic = serializers.CharField()
    currency = serializers.CharField()
    status = serializers.CharField(help_text="listed or suspended on the date")
    symbol_now = serializers.CharField(help_text="its symbol today")


# --- Views -----------------------------------------------------------------------------------
def current_history(instrument_id: int, known_at: datetime | None = None) -> QuerySet[Listing]:
    """The instrument's versions as known at ``known_at`` (None: now), in date order, by the
    database's ``marketdata_listings_known_at``."""
    known = RawSQL("SELECT id FROM marketdata_listings_known_at(%s::timestamptz)", [known_at])
    since = F("valid_from").asc(nulls_first=True)  # since always first
    return Listing.objects.filter(instrument_id=instrument_id, id__in=known).order_by(since, "id")


class InstrumentListingViewSet(mixins.ListModelMixin, viewsets.GenericViewSet[Listing]):
    """An instrument's security-master history: its versions in date order."""

    queryset = Listing.objects.all()
    serializer_class = ListingSerializer
    permission_classes = WRITERS
    pagination_class = PageNumberPagination

    def get_queryset(self) -> QuerySet[Listing]:
        if getattr(self, "swagger_fake_view", False):
            return Listing.objects.none()
        instrument = get_object_or_404(Instrument, pk=self.kwargs["instrument_id"])
        query = query_parameters(HistoryQuery, self.request)
        return current_history(instrument.pk, query.get("known_at"))

    @extend_schema(parameters=schema_parameters(HistoryQuery))
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)


class ListingViewSet(RefusalsAsResponses, viewsets.GenericViewSet[Listing]):
    """Versions of the security master stated: ``create`` only (they are never edited)."""

    queryset = Listing.objects.all()
    serializer_class = ListingWriteSerializer
    permission_classes = WRITERS

    @extend_schema(
        request=ListingWriteSerializer,
        responses={201: ListingResultSerializer, 200: ListingResultSerializer},
    )
    def create(self, request: Request) -> Response:
        """State an instrument's terms over [valid_from, valid_until): the versions there are
        closed (kept, as known before) and this one added; stating what is known already
        changes nothing (200)."""
        body = ListingWriteSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        instrument: Instrument = data["instrument"]
        terms = security_master.Terms(
            symbol=data["symbol"],
            currency=data["currency"],
            status=data["status"],
            name=data["name"],
            mic=data["mic"],
            isin=data["isin"],
            figi=data["figi"],
            vendor_ids=data["vendor_ids"],
        )
        changed = _set_terms(instrument.pk, data["valid_from"], data["valid_until"], terms)
        result = {
            "instrument": instrument.pk,
            "versions_changed": changed,
            "listings": ListingSerializer(current_history(instrument.pk), many=True).data,
        }
        return Response(result, status=201 if changed else 200)


def _set_terms(
    instrument_id: int, start: date | None, end: date | None, terms: security_master.Terms
) -> int:
    """``set_terms`` in a savepoint; a symbol borne by another listed instrument then is a 400
    naming it and its dates (the database's message names only the constraint)."""
    try:
        with transaction.atomic():
            return security_master.set_terms(instrument_id, start, end, terms)
    except DatabaseError as error:
        diag = getattr(error.__cause__, "diag", None)
        rule = (diag and diag.constraint_name) or ""
        if rule not in (BEARER_RULE, ROW_SYMBOL_RULE):
            raise  # RefusalsAsResponses answers the database's other refusals
        words = bearers_of(terms.symbol, start, end, instrument_id)
        raise Refused(words, rule) from error


class UniverseRows:
    """The universe of a date as the paginator's list: counted, and read a page at a time,
    by the database's ``marketdata_universe``."""

    def __init__(self, on: date, known_at: datetime | None):
        self.params: list[Any] = [on, known_at]

    def count(self) -> int:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT count(*) FROM marketdata_universe(%s::date, %s::timestamptz)",
                self.params,
            )
            found: int = cursor.fetchone()[0]
        return found

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, window: slice) -> list[dict[str, Any]]:
        start = window.start or 0
        size = (window.stop - start) if window.stop is not None else None
        with connection.cursor() as cursor:
            cursor.execute(
                """
                SELECT u.instrument_id, u.symbol, u.name, u.mic, u.currency, u.status,
                       i.symbol
                FROM marketdata_universe(%s::date, %s::timestamptz) u
                JOIN marketdata_instrument i ON i.id = u.instrument_id
                ORDER BY u.symbol, u.instrument_id
                LIMIT %s OFFSET %s
                """,
                [*self.params, size, start],
            )
            names = ("instrument", "symbol", "name", "mic", "currency", "status", "symbol_now")
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


class UniverseViewSet(viewsets.GenericViewSet[Instrument]):
    """The instruments listed or suspended on a date (default today), as known at a moment."""

    queryset = Instrument.objects.none()  # rows come from marketdata_universe: UniverseRows
    serializer_class = UniverseRowSerializer
    pagination_class = PageNumberPagination
    permission_classes = WRITERS

    @extend_schema(parameters=schema_parameters(UniverseQuery))
    def list(self, request: Request) -> Response:
        """The universe of ``on``: each instrument with its terms then and its symbol now,
        those delisted since included, by symbol, in pages."""
        query = query_parameters(UniverseQuery, request)
        rows = UniverseRows(query.get("on") or security_master.today(), query.get("known_at"))
        page = self.paginate_queryset(rows)  # type: ignore[arg-type]
        return self.get_paginated_response(UniverseRowSerializer(page, many=True).data)
