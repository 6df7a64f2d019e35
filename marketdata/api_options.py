"""Option quotes in the REST API: ``GET /api/v1/options/quotes/?symbol=`` (read-only).

The quotes of one underlying's contracts (expiry, strike, right) in time order, with their
Greeks: the underlying named by its symbol on ``start``'s date (default today), as every
market-data list names it (``marketdata.fields``), narrowed by ``start``/``end`` on ``ts``,
``expiry``, a strike range (``strike_min``, ``strike_max``, both inclusive) and ``right``
(``C`` or ``call``, ``P`` or ``put``). ``known_at`` reads them as the system knew them at a
moment: option quotes keep revisions as bars and ticks do (``OptionQuoteRevision``, read by
``marketdata_optionquote_known_at``, marketdata/sql/revisions/0011.sql).

Every logged-in user reads market data (as bars); quotes are written by loads only, so every
other method answers 405.

Pages follow the contract's whole key, (ts, expiry, strike, right), which is unique for one
underlying: a chain quoted at one moment holds thousands of contracts of the same ``ts``,
which DRF's cursor (a position on the first column, and an offset it caps at 1,000) could not
page through.
"""

from __future__ import annotations

import math
from datetime import date, datetime
from typing import Any, cast

from django.conf import settings
from django.db.models import Q, QuerySet
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import mixins, pagination, serializers
from rest_framework.exceptions import NotFound
from rest_framework.request import Request
from rest_framework.views import APIView

from marketdata.api import WRITERS, known_at_field
from marketdata.fields import ResolvesSymbols, SymbolField
from marketdata.models import OptionQuote
from marketdata.querysets import TimeRangeQuerySet
from qvp_site.api import (
    FiniteFloatField,
    QueriedViewSet,
    TimeRangeQuery,
    schema_parameters,
    within,
)
from qvp_site.api.bulk import BulkFormats

# The order of the pages: a contract's quotes in time, the chain at one time by contract.
KEY = ("ts", "expiry", "strike", "right")
# A cursor's position: the key's values of the last row shown, joined by this.
SEPARATOR = "|"
# What ``right`` accepts -> the column's value.
RIGHTS = {"C": "C", "P": "P", "call": "C", "put": "P"}

# A cursor's position read: the key's values, or a time alone (see parse_key).
Position = tuple[datetime] | tuple[datetime, date, float, str]


# --- Pagination ------------------------------------------------------------------------------
class ContractTimeCursorPagination(pagination.CursorPagination):
    """Cursor pages positioned on the whole key (``KEY``), which no two rows of the list share:
    each page is the rows after the last one shown, never an offset past rows of equal time.

    DRF's bookkeeping of next and previous pages is kept: with unique positions it always
    writes offset 0 and the last (or first) row's position."""

    ordering = KEY
    page_size_query_param = "page_size"
    max_page_size = settings.API_MAX_PAGE_SIZE

    def paginate_queryset(
        self, queryset: QuerySet[Any], request: Request, view: APIView | None = None
    ) -> list[Any] | None:
        self.request = request
        self.page_size = self.get_page_size(request)
        if not self.page_size:
            return None
        self.base_url = request.build_absolute_uri()
        self.cursor = self.decode_cursor(request)
        reverse = bool(self.cursor and self.cursor.reverse)
        position = self.cursor.position if self.cursor else None
        rows = ordered(queryset, reverse)
        if position is not None:
            rows = beyond(rows, parse_key(str(position), self.invalid_cursor_message), reverse)
        results = list(rows[: self.page_size + 1])
        page = results[: self.page_size]
        if reverse:
            page.reverse()  # read backwards from the position: shown in order
        following = key_text(results[-1]) if len(results) > self.page_size else None
        self.page = page
        self._place(reverse, position, following)
        return page

    def decode_cursor(self, request: Request) -> pagination.Cursor | None:
        cursor = super().decode_cursor(request)
        # No page writes an offset (positions are unique): one sent is dropped, not followed.
        return cursor._replace(offset=0) if cursor is not None else None

    def _place(self, reverse: bool, position: Any, following: str | None) -> None:
        """Where the page lies, as DRF's ``get_next_link`` and ``get_previous_link`` read it."""
        if reverse:
            self.has_next, self.next_position = position is not None, position
            self.has_previous, self.previous_position = following is not None, following
        else:
            self.has_next, self.next_position = following is not None, following
            self.has_previous, self.previous_position = position is not None, position
        self.display_page_controls = self.has_previous or self.has_next

    def _get_position_from_instance(self, instance: Any, ordering: Any) -> str:
        return key_text(instance)


def ordered(rows: QuerySet[Any], reverse: bool) -> QuerySet[Any]:
    return rows.order_by(*(f"-{name}" for name in KEY) if reverse else KEY)


def key_text(quote: OptionQuote) -> str:
    """A row's position: its key's values as text that reads back exactly (``repr`` of the
    strike, the time with its offset)."""
    parts = (quote.ts.isoformat(), quote.expiry.isoformat(), repr(quote.strike), quote.right)
    return SEPARATOR.join(parts)


def parse_key(text: str, invalid: str) -> Position:
    """The key a cursor's position names: the four values a page writes, or a time alone
    (the rows after every contract quoted then, as a time is a position in the site's other
    cursor lists). Each time with its offset (kept: converted to UTC, a time at the calendar's
    ends would leave Python's range, which PostgreSQL's holds), a finite strike, a right the
    column holds. DRF's 404 "Invalid cursor" for any other text, never a database error."""
    parts = text.split(SEPARATOR)
    try:
        ts = datetime.fromisoformat(parts[0])
        if ts.tzinfo is not None and len(parts) == 1:
            return (ts,)
        if ts.tzinfo is not None and len(parts) == len(KEY):
            expiry, strike, right = date.fromisoformat(parts[1]), float(parts[2]), parts[3]
            if math.isfinite(strike) and right in ("C", "P"):
                return (ts, expiry, strike, right)
    except ValueError:
        pass
    raise NotFound(invalid)


def beyond(rows: QuerySet[Any], key: Position, reverse: bool) -> QuerySet[Any]:
    """The rows after ``key`` in the key's order (before it, reading backwards): the row
    comparison (ts, expiry, strike, right) > key spelt out, behind a plain bound on ``ts``
    that prunes the partitions and bounds the index scan. A time alone: the rows after it."""
    past = "lt" if reverse else "gt"
    if len(key) == 1:
        return rows.filter(**{f"ts__{past}": key[0]})
    ts, expiry, strike, right = key
    condition = Q(**{f"right__{past}": right})
    condition = Q(**{f"strike__{past}": strike}) | (Q(strike=strike) & condition)
    condition = Q(**{f"expiry__{past}": expiry}) | (Q(expiry=expiry) & condition)
    condition = Q(**{f"ts__{past}": ts}) | (Q(ts=ts) & condition)
    bound = {"ts__lte" if reverse else "ts__gte": ts}
    return rows.filter(**bound).filter(condition)


# --- Query parameters ------------------------------------------------------------------------
class OptionRightField(serializers.ChoiceField):
    """A contract's right: C or call, P or put; read as the column's C or P."""

    def __init__(self, **kwargs: Any) -> None:
        labels = {"C": "call", "P": "put"}
        super().__init__(choices=[(given, labels[RIGHTS[given]]) for given in RIGHTS], **kwargs)

    def to_internal_value(self, data: Any) -> str:
        return RIGHTS[super().to_internal_value(data)]


class OptionQuoteQuery(ResolvesSymbols, TimeRangeQuery):
    symbol = SymbolField(
        help_text="the underlying's symbol (required) on start's date (default: today)"
    )
    expiry = serializers.DateField(required=False, help_text="contracts expiring on this date")
    strike_min = FiniteFloatField(
        required=False, help_text="contracts with a strike of at least this"
    )
    strike_max = FiniteFloatField(
        required=False, help_text="contracts with a strike of at most this"
    )
    right = OptionRightField(required=False, help_text="C or call, P or put")
    known_at = known_at_field()

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        low, high = attrs.get("strike_min"), attrs.get("strike_max")
        if low is not None and high is not None and low > high:
            raise serializers.ValidationError({"strike_min": "must not exceed strike_max"})
        return attrs


# --- Responses and the view ------------------------------------------------------------------
class OptionQuoteSerializer(serializers.ModelSerializer[OptionQuote]):
    class Meta:
        model = OptionQuote
        fields = [
            "ts",
            "expiry",
            "strike",
            "right",
            "bid",
            "ask",
            "last",
            "iv",
            "delta",
            "gamma",
            "theta",
            "vega",
            "rho",
        ]
        read_only_fields = fields


# Each narrowing parameter's lookup; symbol, known_at and the time range are read apart.
CONTRACT_LOOKUPS = {
    "expiry": "expiry",
    "strike_min": "strike__gte",
    "strike_max": "strike__lte",
    "right": "right",
}


@extend_schema_view(
    list=extend_schema(
        parameters=schema_parameters(OptionQuoteQuery),
        description="Option quotes of one underlying in time order (then by expiry, strike"
        " and right), with their Greeks; as known at known_at when given.",
    )
)
class OptionQuoteViewSet(BulkFormats, mixins.ListModelMixin, QueriedViewSet):
    """Option quotes of one underlying, read-only; in the bulk formats too, in the pages'
    order."""

    bulk_max_range = "QVP_API_BULK_MAX_TICK_RANGE"  # a month: a liquid year outlasts a stream

    bulk_ordering = KEY

    queryset = OptionQuote.objects.all()
    serializer_class = OptionQuoteSerializer
    pagination_class = ContractTimeCursorPagination
    permission_classes = WRITERS  # reads for every logged-in user; nothing to write here
    query_class = OptionQuoteQuery

    def filtered(self, rows: QuerySet[Any], query: dict[str, Any]) -> QuerySet[Any]:
        # The view's queryset is OptionQuote's manager's: a TimeRangeQuerySet.
        as_known = cast("TimeRangeQuerySet", rows).known_at(query.get("known_at"))
        quotes = as_known.filter(underlying=query["symbol"])
        narrowed = {
            CONTRACT_LOOKUPS[name]: query[name] for name in CONTRACT_LOOKUPS if name in query
        }
        return within(quotes.filter(**narrowed), query)
