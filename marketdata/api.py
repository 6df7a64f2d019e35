"""The market-data REST API: instruments, bars, bucketed bars, ticks and latest prices.

Serializers and thin viewsets over the querysets, ``marketdata.buckets`` and
``marketdata.prices``. Query parameters go through serializers, so bad input is a 400 that
names the parameter, and the schema describes them. Instruments are read-only here: ingest
creates them and the admin edits them.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, pagination, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.batches import BarBatchSerializer, write_batch
from marketdata.buckets import TIMEFRAMES, BucketRequest, bucket_count, bucketed
from marketdata.ingest.pipeline import IngestRefused
from marketdata.models import Instrument, MinuteBar, Tick
from marketdata.prices import Price, latest_prices
from qvp_site.db.intervals import Interval, parse_interval

MAX_BUCKETS = 20_000
MAX_SYMBOLS = 1_000
# Widths a bucket may have: from the bar's own period up to ten years.
MAX_WIDTH_MONTHS, MAX_WIDTH = 120, timedelta(days=3660)
TIMEFRAME_WIDTHS = {"1m": timedelta(minutes=1), "1d": timedelta(days=1)}
# Times the API accepts: far enough out for any history, never near datetime's limits.
EARLIEST, LATEST = datetime(1800, 1, 1, tzinfo=UTC), datetime(3000, 1, 1, tzinfo=UTC)


# --- Pagination ------------------------------------------------------------------------------
class PageNumberPagination(pagination.PageNumberPagination):
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


class TimeCursorPagination(pagination.CursorPagination):
    """Pages in time order, by position rather than offset: each page is an index range
    scan, and pages stay stable while new rows arrive."""

    ordering = "ts"
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE


class TickCursorPagination(TimeCursorPagination):
    ordering = ("ts", "sequence")


# --- Query parameters ------------------------------------------------------------------------
class SymbolField(serializers.CharField):
    """An instrument's symbol; validates to the Instrument, refusing unknown symbols."""

    def run_validation(self, data=serializers.empty) -> Instrument:
        # Looked up after CharField's own checks, which refuse NUL characters PostgreSQL can't take.
        symbol = super().run_validation(data)
        instrument = Instrument.objects.filter(symbol=symbol).first()
        if instrument is None:
            raise serializers.ValidationError(f"unknown symbol {symbol!r}")
        return instrument


class SymbolListField(serializers.CharField):
    """Comma-separated symbols; validates to their Instruments in the order given."""

    def run_validation(self, data=serializers.empty) -> list[Instrument]:
        text = super().run_validation(data)
        names = [n for n in dict.fromkeys(s.strip() for s in text.split(",")) if n]
        if not names or len(names) > MAX_SYMBOLS:
            raise serializers.ValidationError(f"give 1 to {MAX_SYMBOLS} symbols, comma-separated")
        found = {i.symbol: i for i in Instrument.objects.filter(symbol__in=names)}
        unknown = [n for n in names if n not in found]
        if unknown:
            raise serializers.ValidationError(f"unknown symbols: {', '.join(unknown)}")
        return [found[n] for n in names]


class TimeField(serializers.DateTimeField):
    """An ISO 8601 time or date, UTC unless it carries an offset."""

    # A "+" left unencoded in a query string arrives as a space: "...T09:30:00 01:00".
    _SPACED_OFFSET = re.compile(r" (\d\d:?\d\d)$")

    def to_internal_value(self, value) -> datetime:
        if isinstance(value, str):
            value = self._SPACED_OFFSET.sub(r"+\1", value.strip())
        moment = super().to_internal_value(value)
        if not EARLIEST <= moment < LATEST:
            raise serializers.ValidationError(
                f"must lie between {EARLIEST:%Y-%m-%d} and {LATEST:%Y-%m-%d}"
            )
        return moment


class WidthField(serializers.CharField):
    """A bucket width: 1h, 1d, 1w, 1mo, or any interval such as "15 minutes"."""

    def to_internal_value(self, data) -> Interval:
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


class RangeQuery(serializers.Serializer):
    symbol = SymbolField(help_text="the instrument's symbol (required)")
    start = TimeField(required=False, help_text="from this time on (inclusive), ISO 8601")
    end = TimeField(required=False, help_text="before this time (exclusive), ISO 8601")

    def validate(self, attrs: dict) -> dict:
        start, end = attrs.get("start"), attrs.get("end")
        if start is not None and end is not None and start >= end:
            raise serializers.ValidationError({"start": "must be before end"})
        return attrs


class BarQuery(RangeQuery):
    timeframe = serializers.ChoiceField(
        choices=list(TIMEFRAMES), default="1m", help_text="1m: minute bars, 1d: daily bars"
    )


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


class LatestPriceQuery(serializers.Serializer):
    symbols = SymbolListField(help_text="comma-separated symbols, e.g. AAPL,MSFT")
    as_of = TimeField(required=False, help_text="the price at this time (default: now)")


def parameters(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The request's query parameters, validated (a 400 naming each bad one otherwise)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data


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
    source = serializers.CharField(help_text="the table read: the bars, or an aggregate of them")
    buckets = BucketSerializer(many=True)


class PriceSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    ts = serializers.DateTimeField(allow_null=True, help_text="the bar the price comes from")
    price = serializers.FloatField(allow_null=True, help_text="null: no bar by as_of")
    source = serializers.CharField(allow_null=True, help_text="minute or daily bars")


class LatestPricesSerializer(serializers.Serializer):
    as_of = serializers.DateTimeField()
    prices = PriceSerializer(many=True)


# --- Views -----------------------------------------------------------------------------------
class InstrumentViewSet(viewsets.ReadOnlyModelViewSet):
    """Instruments, by symbol order."""

    queryset = Instrument.objects.all()
    serializer_class = InstrumentSerializer
    pagination_class = PageNumberPagination

    def get_queryset(self):
        queryset = super().get_queryset()
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return queryset
        query = parameters(InstrumentQuery, self.request)
        lookups = {k: v for k, v in query.items() if v is not None}
        return queryset.filter(**lookups)

    @extend_schema(parameters=[InstrumentQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class BatchResultSerializer(serializers.Serializer):
    ingest = serializers.IntegerField(source="record.id")
    rows = serializers.IntegerField(source="rows_read")
    inserted = serializers.IntegerField()
    updated = serializers.IntegerField()
    unchanged = serializers.IntegerField()


class BarViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Bars of one symbol in time order, their OHLCV in buckets, and batches written."""

    queryset = MinuteBar.objects.none()  # the table depends on ?timeframe=: get_queryset
    serializer_class = BarSerializer
    pagination_class = TimeCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        query = parameters(BarQuery, self.request)
        bars = TIMEFRAMES[query["timeframe"]].objects.filter(instrument=query["symbol"])
        return bars.between(query.get("start"), query.get("end"))

    @extend_schema(parameters=[BarQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=BarBatchSerializer, responses={201: BatchResultSerializer})
    def create(self, request: Request) -> Response:
        """Write a batch of bars (upserted on their time): refused whole, with the index and
        field of each bad item, when any is bad."""
        batch = BarBatchSerializer(data=request.data)
        batch.is_valid(raise_exception=True)
        data = batch.validated_data
        try:
            result = write_batch(data["symbol"], data["timeframe"], data["bars"], request.user)
        except IngestRefused as refusal:
            items = {index: [reason] for index, reason in refusal.items.items()}
            raise serializers.ValidationError({"bars": items or [str(refusal)]}) from refusal
        return Response(BatchResultSerializer(result).data, status=201)

    @extend_schema(parameters=[BucketQuery], responses=BucketsSerializer)
    @action(detail=False, pagination_class=None)
    def buckets(self, request: Request) -> Response:
        """OHLCV in buckets of a width over [start, end), from the hourly or daily aggregate
        where it serves the request, else from the bars."""
        query = parameters(BucketQuery, request)
        instrument = query["symbol"]
        found = bucketed(
            BucketRequest(
                instrument.id, query["width"], query["start"], query["end"], query["timeframe"]
            ),
            fill=query["gapfill"],
        )
        # The rows are plain dicts of JSON-ready values, written as they are: DRF's field by
        # field serialization of a year of hourly buckets takes longer than the query.
        # BucketsSerializer describes them in the schema.
        return Response(
            {
                "symbol": instrument.symbol,
                "width": query["width"].sql(),
                "start": query["start"],
                "end": query["end"],
                "source": found.source,
                "buckets": found.rows,
            }
        )


class TickViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """Trade and quote ticks of one symbol in time order."""

    queryset = Tick.objects.none()
    serializer_class = TickSerializer
    pagination_class = TickCursorPagination

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return self.queryset
        query = parameters(RangeQuery, self.request)
        ticks = Tick.objects.filter(instrument=query["symbol"])
        return ticks.between(query.get("start"), query.get("end"))

    @extend_schema(parameters=[RangeQuery])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)


class PriceViewSet(viewsets.ViewSet):
    """Latest prices, as trading and risk value positions (``marketdata.prices``)."""

    @extend_schema(parameters=[LatestPriceQuery], responses=LatestPricesSerializer)
    @action(detail=False)
    def latest(self, request: Request) -> Response:
        """The close of the newest bar at or before as_of for each symbol."""
        query = parameters(LatestPriceQuery, request)
        as_of = query.get("as_of") or timezone.now()
        instruments = query["symbols"]
        found = latest_prices([i.id for i in instruments], as_of=as_of)
        prices = [_price_row(i.symbol, found.get(i.id)) for i in instruments]
        return Response(LatestPricesSerializer({"as_of": as_of, "prices": prices}).data)


def _price_row(symbol: str, price: Price | None) -> dict:
    if price is None:  # no bar by as_of: listed all the same, so no symbol goes missing
        return {"symbol": symbol, "ts": None, "price": None, "source": None}
    return {"symbol": symbol, "ts": price.ts, "price": price.price, "source": price.source}
