"""``/api/v1/asof/<kind>/``: the row of a market-data table as of each of up to 100 times,
for one symbol: the latest quote, trade, tick, minute bar or daily bar at or before each time
(``direction=backward``), or the first at or after it (``forward``), as ``pandas.merge_asof``
answers.

Built on the psql functions (marketdata/sql/asof/: ``marketdata_quote_asof``,
``marketdata_quote_after``... ``marketdata_dailybar_after``), so that the API answers exactly
what a user gets in psql, in one statement: the times ``unnest``-ed with their order and each
met by ``LEFT JOIN LATERAL <function>(...)``. The options are the functions' and the queryset
method's (qvp_site/db/asof.py): ``tolerance`` (inclusive; seconds or an ISO 8601 duration),
``allow_exact`` (false: strictly before, or after), and ``offset``, added to each time first
(a markout: the first quote at or after a fill plus five minutes).

The answer lists the times in the order asked (repeats kept), each with its match or null.
Market data is every logged-in user's to read, as the other market-data reads; nothing here
writes (405). Bad input is a 400 naming the parameter: an unknown symbol, a time that is not
one, a negative tolerance, more than 100 times.

Why 100: the times travel in the query string, and a request line longer than gunicorn's
limit (4,094 bytes) never reaches the site; 100 UTC times with microseconds fit. A longer list
is a join in SQL (the functions) or in Python (``queryset.asof``).
"""

from __future__ import annotations

import math
from datetime import date, datetime, timedelta
from typing import Any

from django.db import connection
from django.utils.dateparse import parse_duration
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema, extend_schema_field
from rest_framework import permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.api import BarSerializer, TickSerializer
from marketdata.fields import ResolvesSymbols, SymbolField, as_date, asked_symbol
from qvp_site.api import TimeField, WritesNeedModelPermission, query_parameters, schema_parameters
from qvp_site.db.asof import DIRECTIONS

MAX_TIMES = 100  # see the module's docstring
# A tolerance or an offset beyond ten years says nothing a missing one does not, and keeps
# each time plus or minus it far inside PostgreSQL's range of times.
LONGEST = timedelta(days=3660)
# Each kind: the functions' prefix (``<prefix>_asof``, ``<prefix>_after``) and the columns
# answered, the list's of the same rows (``/api/v1/ticks/``, ``/api/v1/bars/``).
TICK_COLUMNS = tuple(TickSerializer.Meta.fields)
BAR_COLUMNS = tuple(BarSerializer.Meta.fields)
KINDS: dict[str, tuple[str, tuple[str, ...]]] = {
    "quotes": ("marketdata_quote", TICK_COLUMNS),
    "trades": ("marketdata_trade", TICK_COLUMNS),
    "ticks": ("marketdata_tick", TICK_COLUMNS),
    "minute-bars": ("marketdata_minutebar", BAR_COLUMNS),
    "daily-bars": ("marketdata_dailybar", BAR_COLUMNS),
}
FUNCTIONS = {"backward": "asof", "forward": "after"}


@extend_schema_field(OpenApiTypes.STR)
class DurationField(serializers.Field[timedelta, Any, Any, Any]):
    """A length of time: seconds (``300``, ``0.5``) or an ISO 8601 duration (``PT5M``,
    ``P1DT2H``), at most ten years either way; negative only where ``signed``."""

    def __init__(self, *, signed: bool = False, **kwargs: Any) -> None:
        self.signed = signed
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> timedelta:
        if not isinstance(data, str | int | float) or isinstance(data, bool):
            raise serializers.ValidationError("must be seconds or an ISO 8601 duration")
        length = _duration(str(data).strip())
        if length < timedelta(0) and not self.signed:
            raise serializers.ValidationError("must not be negative")
        return length

    def to_representation(self, value: timedelta) -> float:
        return value.total_seconds()


TOO_LONG = f"must be at most {LONGEST.days} days either way"


def _duration(text: str) -> timedelta:
    """Seconds or an ISO 8601 duration as a timedelta of at most ``LONGEST`` either way."""
    unreadable = f"{text[:40]!r} is neither seconds nor an ISO 8601 duration (PT5M)"
    try:
        seconds = float(text)
    except ValueError:
        try:
            length = parse_duration(text) if text else None
        except OverflowError:  # more days than a timedelta holds
            raise serializers.ValidationError(TOO_LONG) from None
        except ValueError:
            length = None
        if length is None:
            raise serializers.ValidationError(unreadable) from None
    else:
        if not math.isfinite(seconds):
            raise serializers.ValidationError("must be a finite number of seconds")
        if abs(seconds) > LONGEST.total_seconds():
            raise serializers.ValidationError(TOO_LONG)
        length = timedelta(seconds=seconds)
    if abs(length) > LONGEST:
        raise serializers.ValidationError(TOO_LONG)
    return length


class AsOfQuery(ResolvesSymbols):
    symbol = SymbolField(help_text="the instrument's symbol on the earliest time's date")
    at = serializers.ListField(
        child=TimeField(),
        min_length=1,
        max_length=MAX_TIMES,
        help_text=f"the times, ISO 8601, the parameter repeated (at=...&at=...), 1 to {MAX_TIMES}",
    )
    direction = serializers.ChoiceField(
        choices=list(DIRECTIONS),
        default="backward",
        help_text="backward: the latest row at or before each time; forward: the first at or"
        " after it",
    )
    tolerance = DurationField(
        required=False,
        help_text="how far from the time a match may lie, inclusive: seconds or an ISO 8601"
        " duration (default: any distance)",
    )
    allow_exact = serializers.BooleanField(
        default=True, help_text="whether a row at exactly the time matches (false: strictly)"
    )
    offset = DurationField(
        signed=True,
        required=False,
        help_text="added to each time before the lookup (a markout: PT5M), seconds or an ISO"
        " 8601 duration, negative allowed",
    )

    def symbols_date(self, attrs: dict[str, Any]) -> date:
        times = attrs.get("at") or []
        return as_date(min(times)) if times else super().symbols_date(attrs)


class AsOfAnswerSerializer(serializers.Serializer[Any]):
    """What every as-of answer says of the request."""

    symbol = serializers.CharField(help_text="the symbol asked")
    direction = serializers.CharField(help_text="backward or forward")
    tolerance = serializers.FloatField(allow_null=True, help_text="seconds; null: any distance")
    allow_exact = serializers.BooleanField()
    offset = serializers.FloatField(help_text="seconds added to each time before the lookup")


class TickMatchSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(help_text="the time asked")
    match = TickSerializer(allow_null=True, help_text="the tick as of the time; null: none")


class BarMatchSerializer(serializers.Serializer[Any]):
    at = serializers.DateTimeField(help_text="the time asked")
    match = BarSerializer(allow_null=True, help_text="the bar as of the time; null: none")


class AsOfTicksSerializer(AsOfAnswerSerializer):
    results = TickMatchSerializer(many=True, help_text="each time asked, in order")


class AsOfBarsSerializer(AsOfAnswerSerializer):
    results = BarMatchSerializer(many=True, help_text="each time asked, in order")


def matches(
    kind: str,
    instrument: int,
    times: list[datetime],
    *,
    direction: str,
    tolerance: timedelta | None,
    allow_exact: bool,
    offset: timedelta,
) -> list[dict[str, Any]]:
    """For each of ``times`` in order, ``{"at": time, "match": row or None}``: the psql as-of
    function of ``kind`` and ``direction`` at the time plus ``offset``, in one statement."""
    prefix, columns = KINDS[kind]
    function = f"{prefix}_{FUNCTIONS[direction]}"  # from the two fixed tables above
    selected = ", ".join(f"m.{name}" for name in columns)
    sql = (
        f"SELECT l.at, m.ts IS NOT NULL, {selected}"
        " FROM unnest(%s::timestamptz[]) WITH ORDINALITY AS l (at, n)"
        f" LEFT JOIN LATERAL {function}(%s, l.at + %s::interval, %s::interval, %s) AS m ON true"
        " ORDER BY l.n"
    )
    params: list[Any] = [times, instrument, offset, tolerance, allow_exact]  # psycopg adapts all
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    return [
        {"at": at, "match": dict(zip(columns, values, strict=True)) if found else None}
        for at, found, *values in rows
    ]


class AsOfViewSet(viewsets.ViewSet):
    """Market data as of given times, one symbol a request (nothing written)."""

    permission_classes = [permissions.IsAuthenticated, WritesNeedModelPermission]

    def _answer(self, request: Request, kind: str, serializer: type[AsOfAnswerSerializer]) -> Any:
        query = query_parameters(AsOfQuery, request)
        instrument = query["symbol"]
        offset = query.get("offset") or timedelta(0)
        tolerance = query.get("tolerance")
        found = matches(
            kind,
            instrument.pk,
            query["at"],
            direction=query["direction"],
            tolerance=tolerance,
            allow_exact=query["allow_exact"],
            offset=offset,
        )
        answer = {
            "symbol": asked_symbol(instrument),
            "direction": query["direction"],
            "tolerance": None if tolerance is None else tolerance.total_seconds(),
            "allow_exact": query["allow_exact"],
            "offset": offset.total_seconds(),
            "results": found,
        }
        return Response(serializer(answer).data)

    @extend_schema(parameters=schema_parameters(AsOfQuery), responses=AsOfTicksSerializer)
    @action(detail=False)
    def quotes(self, request: Request) -> Response:
        """The quote as of each time (marketdata_quote_asof / marketdata_quote_after)."""
        return self._answer(request, "quotes", AsOfTicksSerializer)

    @extend_schema(parameters=schema_parameters(AsOfQuery), responses=AsOfTicksSerializer)
    @action(detail=False)
    def trades(self, request: Request) -> Response:
        """The trade as of each time (marketdata_trade_asof / marketdata_trade_after)."""
        return self._answer(request, "trades", AsOfTicksSerializer)

    @extend_schema(parameters=schema_parameters(AsOfQuery), responses=AsOfTicksSerializer)
    @action(detail=False)
    def ticks(self, request: Request) -> Response:
        """The tick, trade or quote, as of each time (marketdata_tick_asof / _after)."""
        return self._answer(request, "ticks", AsOfTicksSerializer)

    @extend_schema(parameters=schema_parameters(AsOfQuery), responses=AsOfBarsSerializer)
    @action(detail=False, url_path="minute-bars")
    def minute_bars(self, request: Request) -> Response:
        """The minute bar as of each time, by its start (marketdata_minutebar_asof /
        _after)."""
        return self._answer(request, "minute-bars", AsOfBarsSerializer)

    @extend_schema(parameters=schema_parameters(AsOfQuery), responses=AsOfBarsSerializer)
    @action(detail=False, url_path="daily-bars")
    def daily_bars(self, request: Request) -> Response:
        """The daily bar as of each time, by its start (marketdata_dailybar_asof / _after)."""
        return self._answer(request, "daily-bars", AsOfBarsSerializer)
