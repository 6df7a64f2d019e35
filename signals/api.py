"""The signals REST API: agents with their metrics, signals (batches), fused signals,
performance, news, social sentiment and alternative data.

Every endpoint needs a logged-in user; writes need the permission of the model written (add,
or change), and no auditor writes whatever their permissions (``WritesNeedModelPermission``).
A batch of signals is checked as a whole in the database (``signals.batches``: staged from the
posted JSON, typed and checked by one statement that looks up every agent and symbol, written
by one INSERT ... SELECT), refused with the index and field of each bad item: nothing is
written from a bad batch. News goes through the load of ``ingest_news``, from memory. Agents
and instruments are named (agent name, symbol) in writes and answers.

The lists of signals, fused signals, news and sentiment answer in Arrow, Parquet and CSV as
well (``qvp_site.api.bulk``: a bounded time range, oldest first). No account owns these rows
and no row-level security narrows them: every logged-in user reads all of them, in bulk as in
JSON.
"""

from __future__ import annotations

from datetime import timedelta
from operator import attrgetter
from typing import Any

from django.db.models import OuterRef, Prefetch, QuerySet, Subquery
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import mixins, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.pagination import BasePagination
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolListField
from qvp_site import parsers
from qvp_site.api import (
    MAX_BATCH,
    Batch,
    FiniteFloatField,
    NewestFirstPagination,
    PageNumberPagination,
    QueriedViewSet,
    RefusalsAsResponses,
    RefusalSerializer,
    TimeField,
    TimeRangeQuery,
    WritesNeedModelPermission,
    query_parameters,
    schema_parameters,
    within,
)
from qvp_site.api.bulk import BulkFormats
from qvp_site.api.permissions import ACTIONS, model_permissions
from qvp_site.api.rows import RowsList
from qvp_site.db import partitions
from qvp_site.loading.refusals import IngestRefused
from signals import batches, fusion
from signals.models import (
    Agent,
    AgentMetric,
    AlternativeData,
    FusedSignal,
    NewsArticle,
    Signal,
    SignalPerformance,
    SocialSentiment,
)
from signals.news_ingest import ingest_news

MAX_HORIZON = timedelta(days=366)
PERMISSIONS = [permissions.IsAuthenticated, WritesNeedModelPermission]


def symbols_filter(rows: QuerySet, query: dict, lookup: str = "instrument__in") -> QuerySet:
    return rows.filter(**{lookup: query["symbols"]}) if "symbols" in query else rows


class SignalsListViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, QueriedViewSet):
    """Rows for any logged-in user, the list filtered by a validated query (a 400 naming each
    bad parameter) in ``filtered``, newest first."""

    permission_classes = PERMISSIONS
    pagination_class: type[BasePagination] | None = NewestFirstPagination


# --- Agents and their metrics ------------------------------------------------------------------
class SignalPerformanceSerializer(serializers.ModelSerializer):
    agent: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        slug_field="name", read_only=True
    )

    class Meta:
        model = SignalPerformance
        fields = [
            "id",
            "agent",
            "window_days",
            "window_start",
            "window_end",
            "signal_count",
            "hit_rate",
            "information_coefficient",
            "average_return",
            "cumulative_return",
            "computed_at",
            "known_at",
            "code_version",
        ]


class AgentMetricSerializer(serializers.ModelSerializer):
    latency_ms = FiniteFloatField(min_value=0)
    ts = TimeField()

    class Meta:
        model = AgentMetric
        fields = ["ts", "latency_ms", "errors", "signals_emitted"]


class AgentSerializer(serializers.ModelSerializer):
    latest_metric = serializers.SerializerMethodField()
    performance = SignalPerformanceSerializer(many=True, read_only=True)

    class Meta:
        model = Agent
        fields = [
            "id",
            "name",
            "kind",
            "version",
            "description",
            "active",
            "created_at",
            "latest_metric",
            "performance",
        ]

    def get_latest_metric(self, agent: Any) -> dict[str, Any] | None:
        """``agent``: an Agent its queryset annotated with its latest metric (``metric_*``)."""
        if getattr(agent, "metric_ts", None) is None:
            return None
        return {
            "ts": serializers.DateTimeField().to_representation(agent.metric_ts),
            "latency_ms": agent.metric_latency_ms,
            "errors": agent.metric_errors,
            "signals_emitted": agent.metric_signals_emitted,
        }


def with_latest_metric(agents):
    """Each agent's newest metric as four columns (one backward scan of (agent, ts) each)."""
    newest = AgentMetric.objects.filter(agent=OuterRef("pk")).order_by("-ts")
    return agents.annotate(
        **{
            f"metric_{name}": Subquery(newest.values(name)[:1])
            for name in AgentMetricSerializer.Meta.fields
        }
    )


class AgentViewSet(
    RefusalsAsResponses,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    mixins.CreateModelMixin,
    mixins.UpdateModelMixin,
    viewsets.GenericViewSet,
):
    """Agents with their latest metric and their performance per window; record metrics."""

    queryset = Agent.objects.all()
    serializer_class = AgentSerializer
    permission_classes = PERMISSIONS
    pagination_class = PageNumberPagination

    def write_permissions(self, request: Request) -> set[str]:
        """Recording a metric writes an AgentMetric, not the agent; the rest writes agents."""
        if self.action == "metrics":
            return model_permissions(AgentMetric, "add")
        return model_permissions(Agent, ACTIONS[request.method or "POST"])

    def get_queryset(self):
        performance = Prefetch("performance", SignalPerformance.objects.select_related("agent"))
        return with_latest_metric(Agent.objects.prefetch_related(performance))

    # GET is a list in the cursor's pages (its parameters and its page documented by the
    # paginator); POST records one metric.
    @extend_schema(
        methods=["GET"],
        parameters=schema_parameters(TimeRangeQuery),
        responses=AgentMetricSerializer(many=True),
    )
    # 409: the agent has a metric at that time already (the table's unique key refuses it).
    @extend_schema(
        methods=["POST"],
        request=AgentMetricSerializer,
        responses={201: AgentMetricSerializer, 409: RefusalSerializer},
    )
    @action(detail=True, methods=["get", "post"], pagination_class=NewestFirstPagination)
    def metrics(self, request: Request, pk: str | None = None) -> Response:
        """GET: the agent's metrics, newest first; POST: record one (needs add_agentmetric)."""
        agent = self.get_object()
        if request.method == "POST":  # add_agentmetric: write_permissions
            metric = AgentMetricSerializer(data=request.data)
            metric.is_valid(raise_exception=True)
            ts = metric.validated_data["ts"]
            partitions.prepare_load(AgentMetric._meta.db_table, ts, ts)
            saved = metric.save(agent=agent)
            return Response(AgentMetricSerializer(saved).data, status=201)
        query = query_parameters(TimeRangeQuery, request)
        rows = within(AgentMetric.objects.filter(agent=agent), query)
        page = self.paginate_queryset(rows)
        return self.get_paginated_response(AgentMetricSerializer(page, many=True).data)


# --- Signals -----------------------------------------------------------------------------------
class NameField(serializers.CharField):
    """A related record by name, rather than by id: written as the name (which the batch
    looks up), read from ``path`` (``agent.name``). Readable, so that the schema documents it
    in the answer as well as in the request."""

    def __init__(self, path: str, **kwargs: Any):
        self.path = path
        super().__init__(**kwargs)

    def get_attribute(self, instance: Any) -> Any:
        return attrgetter(self.path)(instance)


class SignalSerializer(serializers.ModelSerializer):
    agent = NameField("agent.name", max_length=100, help_text="the agent's name")
    symbol = NameField("instrument.symbol", max_length=64, help_text="the instrument's symbol")
    ts = TimeField()
    direction = serializers.IntegerField(
        min_value=-1, max_value=1, required=False, help_text="-1, 0 or 1; the sign of strength"
    )
    strength = FiniteFloatField(min_value=-1, max_value=1)
    confidence = FiniteFloatField(min_value=0, max_value=1)
    horizon = serializers.DurationField(help_text='how long the signal runs: "1 00:00:00", "P1D"')
    # JSON text (a form's field) is read with the parser's depth bound.
    explanation = parsers.JSONField(required=False, help_text="features and reasons")

    class Meta:
        model = Signal
        fields = [  # the agent and symbol first, as the rows have always had them
            "agent",
            "symbol",
            "id",
            "ts",
            "direction",
            "strength",
            "confidence",
            "horizon",
            "explanation",
        ]
        read_only_fields = ["id"]

    def validate_horizon(self, value: timedelta) -> timedelta:
        if not timedelta(0) < value <= MAX_HORIZON:
            raise serializers.ValidationError("must be positive and at most 366 days")
        return value

    def validate_explanation(self, value) -> dict:
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be an object of features and reasons")
        return value

    def validate(self, attrs: dict) -> dict:
        sign = (attrs["strength"] > 0) - (attrs["strength"] < 0)
        direction = attrs.setdefault("direction", sign)
        if direction != sign:
            raise serializers.ValidationError(
                {"direction": f"is {direction} while strength {attrs['strength']:g} says {sign}"}
            )
        attrs.setdefault("explanation", {})
        return attrs


def record_batch(items: Any) -> int:
    """Check and write a batch in the database (``signals.batches``): a batch with any bad
    item is refused whole, with every bad item's index and fields (an item repeating an
    earlier one's agent, symbol and time is bad too); how many signals were new.

    Items the database cannot type alone (a number sent as text, a bad value...) are read by
    the serializer, one at a time as DRF's lists do: its messages name their fields, and the
    values it makes of the good ones are staged again with the batch."""
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH:
        raise serializers.ValidationError(
            {"non_field_errors": [f"send one signal or a list of 1 to {MAX_BATCH:,}"]}
        )
    result = batches.write(items)
    untyped = [p.index for p in result.problems if not p.typed]
    errors: dict[int, Any] = {}
    if untyped:
        items, errors = _serialized(items, untyped)
        if len(errors) < len(untyped):  # some read well: stage the batch with their values
            result = batches.write(items)
    for problem in result.problems:
        if problem.typed:
            errors[problem.index] = problem.by_field()
        elif problem.index not in errors:  # the serializer's values always stage typed
            raise RuntimeError(f"item {problem.index} staged untyped in its typed form")
    if errors:
        by_index: dict[Any, Any] = dict(sorted(errors.items()))  # int keys: DRF writes text
        raise serializers.ValidationError(by_index)
    return result.created


def _serialized(items: list[Any], indexes: list[int]) -> tuple[list[Any], dict[int, Any]]:
    """The batch with the items at ``indexes`` as the serializer validated them, and the
    serializer's refusals of the others, by index."""
    child = SignalSerializer()  # one serializer for every item, as DRF's lists do
    items, errors = list(items), {}
    for index in indexes:
        try:
            items[index] = batches.canonical(child.run_validation(items[index]))
        except serializers.ValidationError as error:
            errors[index] = error.detail
    return items, errors


class SignalQuery(ResolvesSymbols, TimeRangeQuery):
    agent = serializers.CharField(required=False, help_text="an agent's name")
    symbols = SymbolListField(required=False, help_text="comma-separated symbols")


class BatchAnswer(serializers.Serializer):
    created = serializers.IntegerField(help_text="signals recorded by this request")
    unchanged = serializers.IntegerField(help_text="signals recorded before (left as they were)")


@extend_schema_view(list=extend_schema(parameters=schema_parameters(SignalQuery)))
class SignalViewSet(RowsList, BulkFormats, SignalsListViewSet):
    """Signals, newest first, filtered by agent, symbols and time; create one or a batch.

    In the bulk formats: the JSON rows' columns, ``horizon`` a duration (microseconds),
    ``explanation`` its JSON text."""

    queryset = Signal.objects.select_related("agent", "instrument")
    serializer_class = SignalSerializer
    query_class = SignalQuery
    # Read by name (NameField), not as the keys the fields' sources are.
    bulk_columns = {"agent": "agent__name", "symbol": "instrument__symbol"}
    # The JSON list written from plain rows (qvp_site.api.rows), by the same names.
    rows_columns = (("agent", "agent__name"), ("symbol", "instrument__symbol"))

    def filtered(self, rows, query: dict):
        if "agent" in query:
            rows = rows.filter(agent__name=query["agent"])
        return within(symbols_filter(rows, query), query)

    @extend_schema(
        request=SignalSerializer(many=True),
        responses={201: BatchAnswer, 200: BatchAnswer},
        description=(
            "Record one signal (an object) or a batch (a list of up to 10,000). A batch with a "
            "bad item is refused whole: 400 with, for each bad item, its index and fields. A "
            "signal already recorded (same agent, symbol and time) is left as it was."
        ),
    )
    def create(self, request: Request) -> Response:
        items = Batch.of(request.data).items
        try:
            created = record_batch(items)
        except partitions.TooManyPartitions as error:
            raise serializers.ValidationError({"ts": [str(error)]}) from error
        answer = {"created": created, "unchanged": len(items) - created}
        return Response(answer, status=201 if created else 200)


# --- Fused signals and performance --------------------------------------------------------------
class FusedSignalSerializer(serializers.ModelSerializer):
    symbol: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        source="instrument", slug_field="symbol", read_only=True
    )

    class Meta:
        model = FusedSignal
        fields = [
            "id",
            "symbol",
            "ts",
            "target_weight",
            "confidence",
            "method",
            "input_count",
            "inputs",
        ]


class FusedQuery(ResolvesSymbols, TimeRangeQuery):
    symbols = SymbolListField(required=False, help_text="comma-separated symbols")
    method = serializers.CharField(required=False, max_length=50)


class FuseRequest(ResolvesSymbols):
    as_of = TimeField(required=False, help_text="the time to fuse at (default: now)")
    symbols = SymbolListField(required=False, help_text="comma-separated symbols (default: all)")


@extend_schema_view(list=extend_schema(parameters=schema_parameters(FusedQuery)))
class FusedSignalViewSet(BulkFormats, SignalsListViewSet):
    """Fused signals, newest first; POST fuses the running signals now (or as of a time).
    In the bulk formats, ``inputs`` is its JSON text."""

    queryset = FusedSignal.objects.select_related("instrument")
    serializer_class = FusedSignalSerializer
    query_class = FusedQuery
    bulk_columns = {"symbol": "instrument__symbol"}  # the slug, not the key "instrument" is

    def filtered(self, rows, query: dict):
        if "method" in query:
            rows = rows.filter(method=query["method"])
        return within(symbols_filter(rows, query), query)

    # A list, not a page: drf-spectacular would document the viewset's pagination (the
    # list's) for a serializer of many, which this answer never has.
    @extend_schema(
        request=FuseRequest,
        responses={
            201: OpenApiResponse(
                {"type": "array", "items": {"$ref": "#/components/schemas/FusedSignal"}},
                description="the fused signals written, one per instrument",
            )
        },
    )
    def create(self, request: Request) -> Response:
        params = FuseRequest(data=request.data)
        params.is_valid(raise_exception=True)
        chosen = params.validated_data.get("symbols")
        result = fusion.fuse(
            params.validated_data.get("as_of"), [i.id for i in chosen] if chosen else None
        )
        return Response(FusedSignalSerializer(result.fused, many=True).data, status=201)


class PerformanceQuery(serializers.Serializer):
    agent = serializers.CharField(required=False, help_text="an agent's name")
    days = serializers.IntegerField(required=False, min_value=1, help_text="window in days")


@extend_schema_view(list=extend_schema(parameters=schema_parameters(PerformanceQuery)))
class PerformanceViewSet(SignalsListViewSet):
    """Each agent's performance per window, as the scheduler last measured it."""

    queryset = SignalPerformance.objects.select_related("agent").order_by(
        "agent__name", "window_days"
    )
    serializer_class = SignalPerformanceSerializer
    pagination_class = PageNumberPagination
    query_class = PerformanceQuery

    def filtered(self, rows, query: dict):
        if "agent" in query:
            rows = rows.filter(agent__name=query["agent"])
        if "days" in query:
            rows = rows.filter(window_days=query["days"])
        return rows


# --- News --------------------------------------------------------------------------------------
class NewsArticleSerializer(serializers.ModelSerializer):
    ts = TimeField()
    sentiment = FiniteFloatField(min_value=-1, max_value=1, required=False, allow_null=True)
    symbols = serializers.ListField(
        child=serializers.CharField(max_length=64), required=False, default=list
    )

    class Meta:
        model = NewsArticle
        fields = ["id", "ts", "source", "headline", "body", "url", "symbols", "sentiment"]
        read_only_fields = ["id"]
        # The natural key is checked by the load (a repeat is left as it was), not here.
        validators: list[Any] = []


class NewsQuery(TimeRangeQuery):
    symbol = serializers.CharField(required=False, max_length=64, help_text="articles about it")
    # A declared field, not Field.source: DRF's metaclass takes it into _declared_fields.
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, max_length=100
    )


@extend_schema_view(list=extend_schema(parameters=schema_parameters(NewsQuery)))
class NewsViewSet(BulkFormats, SignalsListViewSet):
    """News, newest first, by symbol, source and time; POST one article or a batch, checked
    and written by the same load as ``ingest_news``. In the bulk formats, ``symbols`` is a
    list of texts (in CSV, the array as JSON)."""

    queryset = NewsArticle.objects.all()
    serializer_class = NewsArticleSerializer
    query_class = NewsQuery

    def filtered(self, rows, query: dict):
        if "symbol" in query:
            rows = rows.about(query["symbol"])
        if "source" in query:
            rows = rows.filter(source=query["source"])
        return within(rows, query)

    # 200 when every article was recorded before (nothing inserted), as for signals.
    @extend_schema(
        request=NewsArticleSerializer(many=True), responses={201: BatchAnswer, 200: BatchAnswer}
    )
    def create(self, request: Request) -> Response:
        batch = Batch.of(request.data).validated(NewsArticleSerializer)
        try:
            result = ingest_news(batch.validated_data, name="the posted articles")
        except IngestRefused as refusal:
            # Row n is item n - 1.
            by_item: dict[Any, Any] = {row - 1: [reason] for row, reason in refusal.rows}
            raise serializers.ValidationError(by_item or [str(refusal)]) from refusal
        answer = {"created": result.inserted, "unchanged": result.unchanged}
        return Response(answer, status=201 if result.inserted else 200)


# --- Social sentiment and alternative data (read-only: loaded by their feeds) ----------------
class SocialSentimentSerializer(serializers.ModelSerializer):
    symbol: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        source="instrument", slug_field="symbol", read_only=True
    )

    class Meta:
        model = SocialSentiment
        fields = ["id", "ts", "symbol", "platform", "sentiment", "mentions", "bullish", "bearish"]
        read_only_fields = fields


class SentimentQuery(ResolvesSymbols, TimeRangeQuery):
    symbols = SymbolListField(required=False, help_text="comma-separated symbols")
    platform = serializers.CharField(required=False, max_length=50)


@extend_schema_view(list=extend_schema(parameters=schema_parameters(SentimentQuery)))
class SocialSentimentViewSet(BulkFormats, SignalsListViewSet):
    """Social sentiment per instrument and platform, newest first."""

    queryset = SocialSentiment.objects.select_related("instrument")
    serializer_class = SocialSentimentSerializer
    query_class = SentimentQuery
    bulk_columns = {"symbol": "instrument__symbol"}  # the slug, not the key "instrument" is

    def filtered(self, rows, query: dict):
        if "platform" in query:
            rows = rows.filter(platform=query["platform"])
        return within(symbols_filter(rows, query), query)


class AlternativeDataSerializer(serializers.ModelSerializer):
    # Null for data about no instrument (a region's, a sector's): the column may be empty.
    symbol: serializers.SlugRelatedField[Any] = serializers.SlugRelatedField(
        source="instrument", slug_field="symbol", read_only=True, allow_null=True
    )

    class Meta:
        model = AlternativeData
        fields = ["id", "ts", "source", "kind", "symbol", "payload"]
        read_only_fields = fields


class AlternativeDataQuery(ResolvesSymbols, TimeRangeQuery):
    kind = serializers.CharField(required=False, max_length=50)
    # A declared field, not Field.source: DRF's metaclass takes it into _declared_fields.
    source = serializers.CharField(  # type: ignore[assignment]
        required=False, max_length=100
    )
    symbols = SymbolListField(required=False, help_text="comma-separated symbols")
    contains = parsers.JSONField(  # the query's JSON text, read with the parser's depth bound
        required=False,
        help_text='payloads holding these values, a JSON object: {"region": "EU"} (GIN index)',
    )

    def validate_contains(self, value):
        if not isinstance(value, dict):
            raise serializers.ValidationError("must be a JSON object")
        return value


@extend_schema_view(list=extend_schema(parameters=schema_parameters(AlternativeDataQuery)))
class AlternativeDataViewSet(SignalsListViewSet):
    """Alternative data by kind, source, instrument, time and payload values, newest first."""

    queryset = AlternativeData.objects.select_related("instrument")
    serializer_class = AlternativeDataSerializer
    query_class = AlternativeDataQuery

    def filtered(self, rows, query: dict):
        if "kind" in query:
            rows = rows.of_kind(query["kind"], query.get("source"))
        elif "source" in query:
            rows = rows.filter(source=query["source"])
        if "contains" in query:
            rows = rows.matching(query["contains"])  # a mapping: keys are the user's
        return within(symbols_filter(rows, query), query)
