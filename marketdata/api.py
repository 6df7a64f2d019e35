"""The market-data REST API: instruments, bars, bucketed bars, ticks, latest prices, the
revisions of bars and ticks, and deletions of bars.

Serializers and thin viewsets over the querysets, ``marketdata.buckets``,
``marketdata.prices`` and ``marketdata.batches`` (a posted batch of bars, written by the
ingest pipeline); the shared kit is ``qvp_site.api``. Query parameters go through serializers,
so bad input is a 400 that names the parameter, and the schema describes them. Instruments
are read-only here: ingest creates them and the admin edits them.

Every logged-in user reads market data; writing it needs the Django permission of the model
written (the group ``operators`` holds them, ``qvp_site.operators``) and is never an auditor's
(``WRITERS``): bars move valuations, VaR and snapshots.

A symbol names the instrument that bore it on the request's date (``marketdata.fields``):
``start`` for range reads, ``as_of`` for latest prices, else today; ``?symbol=FB&start=2020-01-01``
reads the bars of the instrument now called META, over the whole range even past its rename.
Answers echo the symbol asked. A batch of bars names the instrument that bore its symbol on
the bars' dates.

Every list of market data takes ``known_at``: the rows as the system knew them at that moment
(``known_at`` on the querysets), corrections learnt later undone, rows learnt later left out,
rows deleted since put back. A deletion (``bars/delete/``) is itself a revision, made by the
owner's ``marketdata_delete`` in the request's transaction, which names the user.

Bars, buckets and latest prices take ``adjustment``: ``raw`` (the default) as traded,
``split`` or ``total_return`` back-adjusted to the latest price by the corporate actions known
at ``known_at`` (``BarQuerySet.adjusted``, marketdata/sql/actions/0012.sql). An adjusted
bucket is computed from the adjusted bars, never from an aggregate (``marketdata.buckets``).

Bars, ticks and buckets answer in the bulk formats too (Arrow, Parquet, CSV:
``qvp_site.api.bulk``) with the JSON's rows, their parameters included: bars and ticks as
their lists, the buckets as their rows alone (bucket, open, high, low, close, volume,
bar_count), read by the same SELECT as the JSON's (``marketdata.buckets.statement``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import TYPE_CHECKING, Any, cast

from django.db import connection, transaction
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.batches import KINDS, write_batch
from marketdata.buckets import FIELDS as BUCKET_FIELDS
from marketdata.buckets import TIMEFRAMES, BucketRequest, bucket_count, fetch, statement
from marketdata.fields import ResolvesSymbols, SymbolField, SymbolListField, asked_symbol
from marketdata.ingest.instruments import SymbolRefused
from marketdata.models import (
    DailyBarRevision,
    Ingest,
    Instrument,
    MinuteBar,
    MinuteBarRevision,
    Tick,
    TickRevision,
)
from marketdata.prices import Price, latest_prices
from marketdata.querysets import ADJUSTMENTS
from qvp_site.api import (
    MAX_BATCH,
    CursorPagination,
    FiniteFloatField,
    PageNumberPagination,
    TimeField,
    TimeRangeQuery,
    query_parameters,
    schema_parameters,
    within,
)
from qvp_site.api import rows as api_rows
from qvp_site.api.bulk import BulkFormats
from qvp_site.api.bulk import columns as bulk_columns
from qvp_site.api.bulk.formats import BulkRenderer, Format
from qvp_site.api.bulk.views import bounded_range
from qvp_site.api.permissions import WritesNeedModelPermission, model_permissions
from qvp_site.db import aggregates
from qvp_site.db.intervals import Interval, parse_interval
from qvp_site.loading.refusals import IngestRefused

if TYPE_CHECKING:
    from django.contrib.auth.base_user import AbstractBaseUser

MAX_BUCKETS = 20_000
# Widths a bucket may have: from the bar's own period up to ten years.
MAX_WIDTH_MONTHS, MAX_WIDTH = 120, timedelta(days=3660)
TIMEFRAME_WIDTHS = {"1m": timedelta(minutes=1), "1d": timedelta(days=1)}
BAR_REVISIONS = {"1m": MinuteBarRevision, "1d": DailyBarRevision}
WRITERS = [permissions.IsAuthenticated, WritesNeedModelPermission]


# --- Pagination ------------------------------------------------------------------------------
class TimeCursorPagination(CursorPagination):
    """Bars in time order."""

    ordering: str | list[str] | tuple[str, ...] = "ts"


class TickCursorPagination(TimeCursorPagination):
    ordering = ("ts", "sequence")


class BarRevisionCursorPagination(TimeCursorPagination):
    """A bar's revisions in the order they were current."""

    ordering = ("ts", "known_until", "id")


class TickRevisionCursorPagination(TimeCursorPagination):
    ordering = ("ts", "sequence", "known_until", "id")


# --- Query parameters ------------------------------------------------------------------------
class WidthField(serializers.CharField):
    """A bucket width: 1h, 1d, 1w, 1mo, or any interval such as "15 minutes"."""

    # A CharField whose text is read into an Interval.
    def to_internal_value(self, data: Any) -> Interval:  # type: ignore[override]
        text = super().to_internal_value(data)
        try:
            width = parse_interval(text)
        except ValueError as error:
            raise serializers.ValidationError(str(error)) from None
        except OverflowError:
            raise serializers.ValidationError(f"{text!r} is too large") from None
        if width.months > MAX_WIDTH_MONTHS or width.fixed > MAX_WIDTH:
            raise serializers.ValidationError("must be at most ten years")
        return width


SYMBOL_ON_START = (
    "the instrument's symbol (required) on start's date (default: today): FB with a start in"
    " 2020 names the instrument now called META"
)


def known_at_field() -> TimeField:
    return TimeField(
        required=False,
        help_text="read the data as the system knew it at this time, ISO 8601 (default: as"
        " known now): corrections learnt later undone, rows learnt later left out",
    )


def adjustment_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(ADJUSTMENTS),
        default="raw",
        help_text="raw: prices as traded (default); split: back-adjusted for splits and stock"
        " dividends; total_return: for dividends and spin-offs too. Adjusted to the latest"
        " price by the corporate actions known at known_at",
    )


def timeframe_field() -> serializers.ChoiceField:
    return serializers.ChoiceField(
        choices=list(TIMEFRAMES), default="1m", help_text="1m: minute bars, 1d: daily bars"
    )


class RangeQuery(ResolvesSymbols, TimeRangeQuery):
    symbol = SymbolField(help_text=SYMBOL_ON_START)
    known_at = known_at_field()


class BarQuery(RangeQuery):
    timeframe = timeframe_field()
    adjustment = adjustment_field()


class BoundedRangeQuery(ResolvesSymbols, TimeRangeQuery):
    """One symbol's rows over [start, end), both bounds required."""

    symbol = SymbolField(help_text=SYMBOL_ON_START)
    start = TimeField(help_text="from this time on (inclusive), ISO 8601")
    end = TimeField(help_text="before this time (exclusive), ISO 8601")


class BarRangeQuery(BoundedRangeQuery):
    timeframe = timeframe_field()


class BucketQuery(BarQuery):
    start = TimeField(help_text="from this time on (inclusive), ISO 8601")
    end = TimeField(help_text="before this time (exclusive), ISO 8601")
    width = WidthField(help_text='bucket width: 1h, 1d, 1w, 1mo or an interval ("15 minutes")')
    gapfill = serializers.BooleanField(
        default=False, help_text="add an empty bucket (null prices) where there are no bars"
    )

    def validate(self, attrs: dict) -> dict:
        attrs = super().validate(attrs)
        width = attrs["width"]
        if not width.is_calendar and width.fixed < TIMEFRAME_WIDTHS[attrs["timeframe"]]:
            raise serializers.ValidationError({"width": "must not be finer than the timeframe"})
        count = bucket_count(width, attrs["start"], attrs["end"])
        if count > MAX_BUCKETS:
            raise serializers.ValidationError(
                {"width": f"start to end holds {count:,} buckets; at most {MAX_BUCKETS:,}"}
            )
        return attrs


class InstrumentQuery(serializers.Serializer):
    symbol = serializers.CharField(required=False, help_text="exactly this symbol")
    asset_class = serializers.ChoiceField(choices=Instrument.AssetClass.choices, required=False)
    active = serializers.BooleanField(required=False, allow_null=True, default=None)


class LatestPriceQuery(ResolvesSymbols):
    symbols = SymbolListField(
        help_text="comma-separated symbols, e.g. AAPL,MSFT, each the instrument that bore it"
        " on as_of's date (default: today)"
    )
    as_of = TimeField(required=False, help_text="the price at this time (default: now)")
    known_at = known_at_field()
    adjustment = adjustment_field()


# --- Batches ---------------------------------------------------------------------------------
class BatchBarSerializer(serializers.Serializer):
    ts = serializers.DateTimeField()
    open = FiniteFloatField()
    high = FiniteFloatField()
    low = FiniteFloatField()
    close = FiniteFloatField()
    volume = FiniteFloatField(required=False, allow_null=True, min_value=0)

    def validate(self, attrs: dict) -> dict:
        errors = {}
        for name in ("open", "high", "low", "close"):
            if attrs[name] <= 0:
                errors[name] = "must be positive"
        if attrs["high"] < max(attrs["open"], attrs["close"], attrs["low"]):
            errors["high"] = "is below the open, close or low"
        if attrs["low"] > min(attrs["open"], attrs["close"]):
            errors["low"] = "is above the open or close"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# Bars of one symbol and timeframe, validated item by item: the index and field of each bad
# item is named. (A docstring would become the schema's description.)
class BarBatchSerializer(serializers.Serializer):
    symbol = serializers.CharField(
        max_length=64,
        help_text="an existing instrument's symbol on the bars' dates (the first and the last"
        " bar's must name the same instrument)",
    )
    timeframe = serializers.ChoiceField(choices=sorted(KINDS), default="1m")
    bars = serializers.ListField(
        child=BatchBarSerializer(), allow_empty=False, max_length=MAX_BATCH
    )

    def validate_bars(self, bars: list[dict]) -> list[dict]:
        seen: dict = {}
        for index, bar in enumerate(bars):
            if bar["ts"] in seen:
                by_index: dict[Any, Any] = {  # an int key: DRF writes it as text
                    index: {"ts": [f"repeats the time of item {seen[bar['ts']]}"]}
                }
                raise serializers.ValidationError(by_index)
            seen[bar["ts"]] = index
        return bars


# --- Responses -------------------------------------------------------------------------------
class InstrumentSerializer(serializers.ModelSerializer):
    class Meta:
        model = Instrument
        fields = [
            "id",
            "symbol",
            "asset_class",
            "exchange",
            "currency",
            "tick_size",
            "multiplier",
            "active",
        ]


class BarSerializer(serializers.ModelSerializer):
    """A minute or daily bar (both tables have these columns)."""

    class Meta:
        model = MinuteBar
        fields = ["ts", "open", "high", "low", "close", "volume", "vwap", "trade_count"]


class TickSerializer(serializers.ModelSerializer):
    class Meta:
        model = Tick
        fields = [
            "ts",
            "sequence",
            "kind",
            "price",
            "size",
            "bid",
            "ask",
            "bid_size",
            "ask_size",
            "side",
        ]


# What a revision adds to the row it keeps.
REVISION_FIELDS = ["known_from", "known_until", "change", "ingest", "actor", "user"]


class RevisionSerializer(serializers.ModelSerializer):
    """What a revision adds to the row it keeps (the subclasses say which rows)."""

    ingest = serializers.IntegerField(
        source="ingest_id", allow_null=True, help_text="the load that brought the change"
    )
    user = serializers.IntegerField(
        source="user_id", allow_null=True, help_text="the id of the user who acted, if one did"
    )


class BarRevisionSerializer(RevisionSerializer):
    """A bar as it stood before a load revised it or a deletion removed it."""

    class Meta:
        model = MinuteBarRevision
        fields = [*BarSerializer.Meta.fields, *REVISION_FIELDS]


class TickRevisionSerializer(RevisionSerializer):
    """A tick as it stood before a load revised it or a deletion removed it."""

    # Text, not the ticks' enum again: a second component using the enum of "kind" would
    # leave drf-spectacular no unique name for it (the schema's enums, ENUM_NAME_OVERRIDES).
    kind = serializers.CharField(help_text="trade or quote")

    class Meta:
        model = TickRevision
        fields = [*TickSerializer.Meta.fields, *REVISION_FIELDS]


class DeletedSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    timeframe = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    deleted = serializers.IntegerField(help_text="bars deleted (each kept as a revision)")


class BucketSerializer(serializers.Serializer):
    bucket = serializers.DateTimeField(help_text="start of the bucket")
    open = serializers.FloatField(allow_null=True)
    high = serializers.FloatField(allow_null=True)
    low = serializers.FloatField(allow_null=True)
    close = serializers.FloatField(allow_null=True)
    volume = serializers.FloatField(allow_null=True)
    bar_count = serializers.IntegerField(help_text="bars in the bucket")


class BucketsSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    width = serializers.CharField()
    start = serializers.DateTimeField()
    end = serializers.DateTimeField()
    # A declared field, not Field.source: DRF's metaclass takes it into _declared_fields.
    source = serializers.CharField(  # type: ignore[assignment]
        help_text="the table read: the bars, or an aggregate of them"
    )
    # Text, not an enum: see TickRevisionSerializer.kind.
    adjustment = serializers.CharField(
        help_text="how the prices are adjusted for corporate actions: raw, split or total_return"
    )
    buckets = BucketSerializer(many=True)


class PriceSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    ts = serializers.DateTimeField(allow_null=True, help_text="the bar the price comes from")
    price = serializers.FloatField(allow_null=True, help_text="null: no bar by as_of")
    # A declared field, not Field.source: DRF's metaclass takes it into _declared_fields.
    source = serializers.CharField(  # type: ignore[assignment]
        allow_null=True, help_text="minute or daily bars"
    )


class LatestPricesSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    known_at = serializers.DateTimeField(
        required=False, help_text="the knowledge time read, when one was asked"
    )
    # Text, not an enum: see TickRevisionSerializer.kind.
    adjustment = serializers.CharField(
        required=False, help_text="how the prices are adjusted (split, total_return), when asked"
    )
    prices = PriceSerializer(many=True)


# --- Views -----------------------------------------------------------------------------------
class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    """Instruments, by symbol order."""

    queryset = Instrument.objects.all()
    serializer_class = InstrumentSerializer
    pagination_class = PageNumberPagination
    permission_classes = WRITERS

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return queryset
        return queryset.filter(**query_parameters(InstrumentQuery, self.request))

    @extend_schema(parameters=schema_parameters(InstrumentQuery))
    def list(self, request, *args, **kwargs):
        if not api_rows.plain(InstrumentSerializer):
            return super().list(request, *args, **kwargs)
        # Plain rows, as bars are (BarViewSet.list).
        found = self.filter_queryset(self.get_queryset())
        page = self.paginate_queryset(found.values(*InstrumentSerializer.Meta.fields))
        return self.get_paginated_response(api_rows.rows(InstrumentSerializer, page or []))


class BatchResultSerializer(serializers.Serializer):
    ingest = serializers.IntegerField(source="record.id")
    rows = serializers.IntegerField(source="rows_read")
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class BarViewSet(BulkFormats, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Bars of one symbol in time order, their OHLCV in buckets, and batches written."""

    queryset = MinuteBar.objects.none()  # the table depends on ?timeframe=: get_queryset
    serializer_class = BarSerializer
    pagination_class = TimeCursorPagination
    permission_classes = WRITERS
    bulk_actions = frozenset({"list", "buckets"})  # buckets streams by its own code
    bulk_ordering = ("ts",)  # (instrument, ts) is unique: no tie to break, no extra sort

    def write_permissions(self, request: Request) -> set[str]:
        """A batch is upserted into the table of its timeframe (add, and change: it overwrites
        bars) and recorded as an Ingest; a deletion deletes from it. A timeframe the body does
        not name or that does not exist asks for the default's: the serializer refuses the
        latter with a 400."""
        data: object = request.data  # a list, or any JSON, until the serializer has read it
        timeframe = data.get("timeframe") if isinstance(data, dict) else None
        model = TIMEFRAMES.get(timeframe, MinuteBar) if isinstance(timeframe, str) else MinuteBar
        if self.action == "delete_range":
            return model_permissions(model, "delete")
        return model_permissions(model, "add", "change") | model_permissions(Ingest, "add")

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        query = query_parameters(BarQuery, self.request)
        model = TIMEFRAMES[query["timeframe"]]
        bars = (
            model.objects.known_at(query.get("known_at"))
            .adjusted(query["adjustment"])
            .filter(instrument=query["symbol"])
        )
        return within(bars, query)

    @extend_schema(parameters=schema_parameters(BarQuery))
    def list(self, request, *args, **kwargs):
        bulk = isinstance(getattr(request, "accepted_renderer", None), BulkRenderer)
        if bulk or not api_rows.plain(BarSerializer):
            return super().list(request, *args, **kwargs)
        # A page of bars (up to API_MAX_PAGE_SIZE) as plain rows, written by the converters of
        # BarSerializer's fields: no model instance per bar (qvp_site/api/rows.py).
        bars = self.filter_queryset(self.get_queryset()).values(*BarSerializer.Meta.fields)
        page = self.paginate_queryset(bars)
        return self.get_paginated_response(api_rows.rows(BarSerializer, page or []))

    @extend_schema(request=BarBatchSerializer, responses={201: BatchResultSerializer})
    def create(self, request: Request) -> Response:
        """Write a batch of bars (upserted on their time): refused whole, with the index and
        field of each bad item, when any is bad."""
        batch = BarBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        data = batch.validated_data
        try:
            # The endpoint's permissions let in only authenticated users.
            user = cast("AbstractBaseUser", request.user)
            result = write_batch(data["symbol"], data["timeframe"], data["bars"], user)
        except SymbolRefused as refusal:
            raise serializers.ValidationError({"symbol": [str(refusal)]}) from refusal
        except IngestRefused as refusal:
            # items: set by marketdata.batches on the loading engine's refusal, which is being
            # moved (qvp_site/loading/); declared there once the move lands.
            found = refusal.items  # type: ignore[attr-defined]
            items = {index: [reason] for index, reason in found.items()}
            raise serializers.ValidationError({"bars": items or [str(refusal)]}) from refusal
        return Response(BatchResultSerializer(result).data, status=201)

    @extend_schema(parameters=schema_parameters(BucketQuery), responses=BucketsSerializer)
    @action(detail=False, pagination_class=None)
    def buckets(self, request: Request) -> Response | StreamingHttpResponse:
        """OHLCV in buckets of a width over [start, end), from the hourly or daily aggregate
        where it serves the request, else from the bars; with known_at, from the bars as
        known then (the aggregates hold the present); adjusted (split, total_return), from
        the adjusted bars, so that a bucket spanning an ex-date is the adjusted bars' OHLCV.
        In a bulk format, the buckets' rows alone (the source is not said)."""
        fmt = _bulk_format(request)
        bounds = bounded_range(request) if fmt is not None else None
        query = query_parameters(BucketQuery, request)
        instrument = query["symbol"]
        found = statement(
            BucketRequest(
                instrument.id,
                query["width"],
                query["start"],
                query["end"],
                query["timeframe"],
                known_at=query.get("known_at"),
                adjustment=query["adjustment"],
            ),
            fill=query["gapfill"],
        )
        if fmt is not None and bounds is not None:
            # Run where the JSON's runs (``marketdata.buckets.fetch``: Django's connection).
            fields = {name: (name, field) for name, field in BUCKET_FIELDS.items()}
            plan = bulk_columns.wrapped(
                connection.alias, found.sql, found.params, fields, csv=fmt.name == "csv"
            )
            return self.bulk_plan_response(request, fmt, plan, bounds)
        # The rows are plain dicts of JSON-ready values, written as they are: DRF's field by
        # field serialization of a year of hourly buckets takes longer than the query.
        # BucketsSerializer describes them in the schema.
        return Response(
            {
                "symbol": asked_symbol(instrument),
                "width": query["width"].sql(),
                "start": query["start"],
                "end": query["end"],
                "source": found.source,
                "adjustment": query["adjustment"],
                "buckets": fetch(found.sql, found.params),
            }
        )

    def bulk_filename(self, fmt: Format, bounds: Mapping[str, Any]) -> str:
        """The buckets' file is named apart from the bars' of the same range."""
        name = super().bulk_filename(fmt, bounds)
        return f"buckets-{name}" if self.action == "buckets" else name

    @extend_schema(
        parameters=schema_parameters(BarRangeQuery), responses=BarRevisionSerializer(many=True)
    )
    @action(
        detail=False,
        serializer_class=BarRevisionSerializer,
        pagination_class=BarRevisionCursorPagination,
    )
    def revisions(self, request: Request) -> Response:
        """The revisions of one symbol's bars in [start, end): each bar as it stood before a
        load revised it or a deletion removed it, with when it was current (known_from to
        known_until), the change, the load that brought it and who acted."""
        query = query_parameters(BarRangeQuery, request)
        model = BAR_REVISIONS[query["timeframe"]]
        return _paged(self, within(model.objects.filter(instrument=query["symbol"]), query))

    @extend_schema(request=BarRangeQuery, responses=DeletedSerializer)
    @action(detail=False, methods=["post"], url_path="delete")
    def delete_range(self, request: Request) -> Response:
        """Delete one symbol's bars of a timeframe in [start, end) (a bad vendor file): they
        leave the present and stay readable as known before (known_at), each kept as a
        'deleted' revision naming the user. Needs the permission to delete bars of the
        timeframe (marketdata.delete_minutebar or marketdata.delete_dailybar). A POST with
        the range in its body: the list's route answers GET and POST only. The aggregates of
        the range are refreshed once the request commits, as after a load."""
        body = BarRangeQuery(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        table = TIMEFRAMES[data["timeframe"]]._meta.db_table
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(
                "SELECT marketdata_delete(%s::regclass, %s, %s, %s)",
                [table, data["symbol"].id, data["start"], data["end"]],
            )
            deleted = cursor.fetchone()[0]
            if deleted:
                aggregates.refresh_after_commit(table, data["start"], data["end"])
        return Response(
            DeletedSerializer(
                {
                    "symbol": asked_symbol(data["symbol"]),
                    "timeframe": data["timeframe"],
                    "start": data["start"],
                    "end": data["end"],
                    "deleted": deleted,
                }
            ).data
        )


class TickViewSet(BulkFormats, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Trade and quote ticks of one symbol in time order."""

    bulk_max_range = "QVP_API_BULK_MAX_TICK_RANGE"  # a month: a liquid year outlasts a stream

    queryset = Tick.objects.none()
    serializer_class = TickSerializer
    pagination_class = TickCursorPagination
    permission_classes = WRITERS
    bulk_ordering = ("ts", "sequence")  # as the JSON's cursor pages

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        query = query_parameters(RangeQuery, self.request)
        ticks = Tick.objects.known_at(query.get("known_at")).filter(instrument=query["symbol"])
        return within(ticks, query)

    @extend_schema(parameters=schema_parameters(RangeQuery))
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(
        parameters=schema_parameters(BoundedRangeQuery),
        responses=TickRevisionSerializer(many=True),
    )
    @action(
        detail=False,
        serializer_class=TickRevisionSerializer,
        pagination_class=TickRevisionCursorPagination,
    )
    def revisions(self, request: Request) -> Response:
        """The revisions of one symbol's ticks in [start, end), as the bars' revisions."""
        query = query_parameters(BoundedRangeQuery, request)
        return _paged(self, within(TickRevision.objects.filter(instrument=query["symbol"]), query))


class PriceViewSet(viewsets.ViewSet):
    """Latest prices, as trading and risk value positions (``marketdata.prices``)."""

    permission_classes = WRITERS

    @extend_schema(parameters=schema_parameters(LatestPriceQuery), responses=LatestPricesSerializer)
    @action(detail=False)
    def latest(self, request: Request) -> Response:
        """The close of the newest bar at or before as_of for each symbol, from the bars as
        known at known_at (default: as known now), adjusted as adjustment says (default:
        raw, as traded)."""
        query = query_parameters(LatestPriceQuery, request)
        as_of = query.get("as_of") or timezone.now()
        known_at, adjustment = query.get("known_at"), query["adjustment"]
        instruments = query["symbols"]
        found = latest_prices(
            [i.id for i in instruments], as_of=as_of, known_at=known_at, adjustment=adjustment
        )
        prices = [_price_row(asked_symbol(i), found.get(i.id)) for i in instruments]
        answer: dict[str, Any] = {"as_of": as_of, "prices": prices}
        # As known now and as traded: the answer it always was.
        if known_at is not None:
            answer["known_at"] = known_at
        if adjustment != "raw":
            answer["adjustment"] = adjustment
        return Response(LatestPricesSerializer(answer).data)


def _bulk_format(request: Request) -> Format | None:
    """The bulk format content negotiation chose for ``request``; None for JSON."""
    renderer = getattr(request, "accepted_renderer", None)
    return renderer.bulk if isinstance(renderer, BulkRenderer) else None


def _paged(view: viewsets.GenericViewSet, rows) -> Response:
    """A cursor page of ``rows`` in the view's serializer."""
    page = view.paginate_queryset(rows)
    return view.get_paginated_response(view.get_serializer(page, many=True).data)


def _price_row(symbol: str, price: Price | None) -> dict:
    if price is None:  # no bar by as_of: listed all the same, so no symbol goes missing
        return {"symbol": symbol, "ts": None, "price": None, "source": None}
    return {"symbol": symbol, "ts": price.ts, "price": price.price, "source": price.source}
