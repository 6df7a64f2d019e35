"""The vectors REST API: nearest feature embeddings, similar regimes, strategy recommendations.

Vectors are derived from market data, which every authenticated user reads: no account
scoping applies. Bad input is a 400 naming the field (a wrong dimension, NaN, an unknown
metric, k out of range, an unknown embedding or symbol).

pgvector holds 4-byte floats and computes distances in them: a query vector with a value
beyond their range (|x| > 3.4e38), or so long that its squared length overflows them, is
refused, as pgvector would refuse it (or answer an infinite distance, which JSON cannot
carry). A zero vector has no direction, so its cosine distance to anything is undefined
(pgvector answers NaN): a cosine search from one is refused, naming ``vector`` (or ``id`` for
a stored one); L2 and inner product are defined for it and answer. A stored row at no
defined distance (a zero vector, by cosine) is no neighbour: searches leave it out
(``vectors.search``), so no answer holds NaN.

The feature embeddings are a list too (``GET vectors/features/``), in JSON pages and in the
bulk formats (``qvp_site.api.bulk``: Arrow, Parquet, CSV), with or without their vectors
(``vectors=false``): a vector is a ``fixed_size_list<float32>[128]`` in Arrow and Parquet,
its text ``[x,y,...]`` in CSV.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np
from django.db.models import CharField, QuerySet, Value
from django.db.models.functions import Cast, Concat
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolField, SymbolListField, asked_symbol
from qvp_site.api import (
    NewestFirstPagination,
    TimeField,
    TimeRangeQuery,
    id_field,
    query_parameters,
    schema_parameters,
    within,
)
from qvp_site.api.bulk import BulkFormats
from vectors import patterns, search
from vectors.embeddings import FEATURES
from vectors.models import FEATURE_DIMENSIONS, FeatureEmbedding, FeatureSet


def feature_set_named(value: str) -> FeatureSet:
    """The feature set ``value`` names: ``name`` (its newest version) or ``name:version``."""
    name, _, version = value.partition(":")
    sets = FeatureSet.objects.filter(name=name, kind=FeatureSet.Kind.FEATURES)
    if version:
        if not version.isdigit():
            raise serializers.ValidationError("version must be a whole number")
        sets = sets.filter(version=int(version))
    found = sets.order_by("-version").first()
    if found is None:
        raise serializers.ValidationError(f"no feature set {value!r}")
    return found


class FeatureSearchSerializer(ResolvesSymbols):
    vector = serializers.ListField(
        child=serializers.FloatField(),  # which refuses NaN and infinities, naming the index
        required=False,
        help_text=f"a query vector of {FEATURE_DIMENSIONS} standardised features",
    )
    id = id_field(required=False, help_text="or a stored embedding's id")
    k = serializers.IntegerField(default=10, min_value=1, max_value=search.MAX_K)
    metric = serializers.ChoiceField(choices=search.METRIC_CHOICES, default="cosine")
    symbols = SymbolListField(required=False, help_text="only these instruments, comma-separated")
    start = TimeField(required=False, help_text="windows closing from this time on")
    end = TimeField(required=False, help_text="windows closing before this time")
    feature_set = serializers.CharField(
        required=False, help_text=f"name or name:version (default {FEATURES.name})"
    )

    def validate_vector(self, value: list[float]) -> np.ndarray:
        if len(value) != FEATURE_DIMENSIONS:
            raise serializers.ValidationError(
                f"must have {FEATURE_DIMENSIONS} dimensions, not {len(value)}"
            )
        return float4_vector(value)

    def validate_feature_set(self, value: str) -> FeatureSet:
        return feature_set_named(value)

    def validate(self, attrs: dict) -> dict:
        # The request's own terms first: a range that ends before it starts is refused
        # whatever is stored.
        if attrs.get("start") and attrs.get("end") and attrs["end"] <= attrs["start"]:
            raise serializers.ValidationError({"end": "must be after start"})
        if ("vector" in attrs) == ("id" in attrs):
            raise serializers.ValidationError({"vector": "give either a vector or an id"})
        if "id" in attrs:
            stored = FeatureEmbedding.objects.filter(id=attrs["id"]).first()
            if stored is None:
                raise serializers.ValidationError({"id": f"no embedding {attrs['id']}"})
            attrs["vector"] = np.array(stored.embedding, dtype=np.float32)
            attrs.setdefault("feature_set", stored.feature_set)
        if "feature_set" not in attrs:
            found = FEATURES.stored()
            if found is None:
                raise serializers.ValidationError({"feature_set": "no embeddings built yet"})
            attrs["feature_set"] = found
        if attrs["metric"] == "cosine" and not search.has_direction(attrs["vector"]):
            field = "id" if "id" in attrs else "vector"
            raise serializers.ValidationError({field: NO_DIRECTION})
        return attrs


FLOAT4_MAX = float(np.finfo(np.float32).max)
NO_DIRECTION = (
    "a zero vector has no direction: its cosine distance to anything is undefined"
    " (search it by l2 or inner_product, or give a vector that is not zero)"
)


def float4_vector(values: list[float]) -> np.ndarray:
    """``values`` as pgvector holds them (4-byte floats), refused when they do not fit or
    when the vector's squared length overflows them (its distances would be infinite)."""
    array = np.array(values, dtype=np.float64)
    beyond = np.flatnonzero(np.abs(array) > FLOAT4_MAX)
    if beyond.size:
        index = int(beyond[0])
        raise serializers.ValidationError(
            f"value {values[index]!r} at index {index} is beyond the range of a 4-byte float"
            f" (largest magnitude {FLOAT4_MAX:.4g})"
        )
    vector = array.astype(np.float32)
    if not search.has_finite_length(vector):
        raise serializers.ValidationError(
            f"is too long: its squared length overflows a 4-byte float (keep each value's"
            f" magnitude under about {np.sqrt(FLOAT4_MAX / len(vector)):.3g})"
        )
    return vector


class NeighbourSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    ts = serializers.DateTimeField()
    distance = serializers.FloatField(
        help_text="cosine distance, L2 distance, or the negated inner product"
    )


class FeatureSearchResultSerializer(serializers.Serializer):
    feature_set = serializers.CharField()
    metric = serializers.CharField()
    k = serializers.IntegerField()
    neighbours = NeighbourSerializer(many=True)


# A row's feature set as the query names it ("bars-1m:1"), computed by the database for
# the JSON pages and the bulk formats alike.
FEATURE_SET_NAME = Concat(
    "feature_set__name",
    Value(":"),
    Cast("feature_set__version", CharField()),
    output_field=CharField(),
)


class FeatureListQuery(ResolvesSymbols, TimeRangeQuery):
    symbols = SymbolListField(required=False, help_text="only these instruments, comma-separated")
    feature_set = serializers.CharField(
        required=False,
        help_text=f"name or name:version (default {FEATURES.name} v{FEATURES.version})",
    )
    vectors = serializers.BooleanField(
        default=True,
        help_text="false leaves the embedding column out: ids, symbols, sets and times only",
    )

    def validate_feature_set(self, value: str) -> FeatureSet:
        return feature_set_named(value)


class FeatureRowSerializer(serializers.ModelSerializer):
    """A feature embedding without its vector (``vectors=false``)."""

    symbol = serializers.CharField(source="instrument.symbol", read_only=True)
    feature_set = serializers.CharField(
        source="feature_set_name", read_only=True, help_text="name:version"
    )
    ts = TimeField(read_only=True, help_text="when the window's last bar closed")

    class Meta:
        model = FeatureEmbedding
        fields = ["id", "symbol", "feature_set", "ts"]


class FeatureEmbeddingSerializer(FeatureRowSerializer):
    embedding = serializers.ListField(
        child=serializers.FloatField(),
        read_only=True,
        help_text=f"the {FEATURE_DIMENSIONS} standardised features (4-byte floats)",
    )

    class Meta(FeatureRowSerializer.Meta):
        fields = [*FeatureRowSerializer.Meta.fields, "embedding"]


class FeatureViewSet(BulkFormats, mixins.ListModelMixin, viewsets.GenericViewSet):
    """The feature embeddings, newest first (or in a bulk format, oldest first), and their
    search. Market data's: every logged-in user reads all of them."""

    queryset = FeatureEmbedding.objects.all()
    serializer_class = FeatureEmbeddingSerializer
    pagination_class = NewestFirstPagination

    @cached_property
    def listed(self) -> dict[str, Any]:
        """The list's query, validated once (the rows and the columns both depend on it)."""
        return query_parameters(FeatureListQuery, self.request)

    def get_queryset(self) -> QuerySet[FeatureEmbedding]:
        rows = FeatureEmbedding.objects.select_related("instrument").annotate(
            feature_set_name=FEATURE_SET_NAME
        )
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return rows
        query = self.listed
        # None when no set is built yet: "feature_set_id IS NULL" matches no row (the key is
        # NOT NULL). Not .none(): the bulk read's plan cannot compile it (EmptyResultSet).
        feature_set = query.get("feature_set") or FEATURES.stored()
        rows = rows.filter(feature_set=feature_set)
        if "symbols" in query:
            rows = rows.filter(instrument__in=query["symbols"])
        return within(rows, query)

    def get_serializer_class(self) -> type[serializers.BaseSerializer[Any]]:
        """Without the vector column when the list is asked ``vectors=false`` (the JSON rows
        and the bulk formats' columns alike: both are this serializer's fields)."""
        schema = getattr(self, "swagger_fake_view", False)
        if self.action == "list" and not schema and not self.listed["vectors"]:
            return FeatureRowSerializer
        return FeatureEmbeddingSerializer

    @extend_schema(
        parameters=schema_parameters(FeatureListQuery),
        responses=FeatureEmbeddingSerializer(many=True),
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Any:
        """The embeddings of a feature set, by symbols and time; with ``vectors=false``,
        without their vectors."""
        return super().list(request, *args, **kwargs)

    @extend_schema(request=FeatureSearchSerializer, responses=FeatureSearchResultSerializer)
    @action(detail=False, methods=["post"])
    def search(self, request: Request) -> Response:
        """The k embeddings nearest a vector (or a stored embedding), with filters."""
        given = FeatureSearchSerializer(data=request.data)
        given.is_valid(raise_exception=True)
        data = given.validated_data
        query = search.FeatureQuery(
            vector=data["vector"],
            feature_set=data["feature_set"],
            k=data["k"],
            metric=data["metric"],
            instruments=[i.id for i in data.get("symbols", [])],
            start=data.get("start"),
            end=data.get("end"),
            exclude_id=data.get("id"),
        )
        found = search.nearest_features(query)
        body = {
            "feature_set": str(data["feature_set"]),
            "metric": data["metric"],
            "k": data["k"],
            "neighbours": [n.__dict__ for n in found],
        }
        return Response(FeatureSearchResultSerializer(body).data)


class SimilarRegimesQuery(ResolvesSymbols):
    symbol = SymbolField(help_text="the instrument whose latest regime is matched")
    k = serializers.IntegerField(default=10, min_value=1, max_value=search.MAX_K)


class RegimeSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    # A declared field: DRF's metaclass takes it into _declared_fields, so it never stands
    # for Field.label, as the checker reads the class.
    label = serializers.CharField()  # type: ignore[assignment]
    cluster = serializers.IntegerField(allow_null=True)
    distance = serializers.FloatField(required=False)


class SimilarRegimesSerializer(serializers.Serializer):
    current = RegimeSerializer()
    similar = RegimeSerializer(many=True)


def _regime(regime, symbol: str, distance: float | None = None) -> dict:
    row = {
        "id": regime.id,
        "symbol": symbol,
        "period_start": regime.period_start,
        "period_end": regime.period_end,
        "label": regime.label,
        "cluster": regime.cluster,
    }
    if distance is not None:
        row["distance"] = distance
    return row


class RegimeViewSet(viewsets.ViewSet):
    """Volatility regimes."""

    @extend_schema(
        parameters=schema_parameters(SimilarRegimesQuery), responses=SimilarRegimesSerializer
    )
    @action(detail=False)
    def similar(self, request: Request) -> Response:
        """The instrument's latest regime and the k past periods most like it."""
        query = query_parameters(SimilarRegimesQuery, request)
        instrument = query["symbol"]
        current = search.current_regime(instrument)
        if current is None:
            raise serializers.ValidationError(
                {"symbol": f"no regimes for {asked_symbol(instrument)}"}
            )
        matches = search.similar_regimes(current, query["k"])
        body = {
            "current": _regime(current, asked_symbol(instrument)),
            "similar": [_regime(m.regime, m.symbol, m.distance) for m in matches],
        }
        return Response(SimilarRegimesSerializer(body).data)


class RecommendQuery(ResolvesSymbols):
    symbol = SymbolField(help_text="the instrument whose current market state is matched")
    k = serializers.IntegerField(
        default=100, min_value=1, max_value=search.MAX_K, help_text="patterns to weigh"
    )


class StrategyScoreSerializer(serializers.Serializer):
    strategy = serializers.CharField()
    patterns = serializers.IntegerField(help_text="how many of the k nearest are its")
    weight = serializers.FloatField(help_text="their summed cosine similarity")
    expected_return = serializers.FloatField(help_text="similarity-weighted mean return")
    sharpe = serializers.FloatField()
    max_drawdown = serializers.FloatField()
    hit_rate = serializers.FloatField()


class PatternSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    strategy = serializers.CharField()
    symbol = serializers.CharField()
    ts = serializers.DateTimeField()
    position = serializers.IntegerField()
    forward_return = serializers.FloatField()
    sharpe = serializers.FloatField()
    max_drawdown = serializers.FloatField()
    backtest_id = serializers.IntegerField()
    distance = serializers.FloatField()


class RecommendationSerializer(serializers.Serializer):
    symbol = serializers.CharField()
    as_of = serializers.DateTimeField(help_text="the close of the bar the state is taken at")
    best = serializers.CharField(allow_null=True)
    ranked = StrategyScoreSerializer(many=True)
    evidence = PatternSerializer(many=True, help_text="the nearest patterns, nearest first")


class StrategyViewSet(viewsets.ViewSet):
    """Strategy recommendations from patterns."""

    @extend_schema(parameters=schema_parameters(RecommendQuery), responses=RecommendationSerializer)
    @action(detail=False)
    def recommend(self, request: Request) -> Response:
        """The strategies ranked for the instrument's current market state, with evidence."""
        query = query_parameters(RecommendQuery, request)
        instrument = query["symbol"]
        feature_set = patterns.STATES.stored()
        if feature_set is None:
            raise serializers.ValidationError({"symbol": "no strategy patterns built yet"})
        current = patterns.current_state(instrument, feature_set)
        if current is None:
            raise serializers.ValidationError(
                {"symbol": f"{asked_symbol(instrument)} has too few bars for a market state"}
            )
        found = search.recommend(current[1], feature_set, current[0], query["k"])
        body = {
            "symbol": asked_symbol(instrument),
            "as_of": found.as_of,
            "best": found.ranked[0].strategy if found.ranked else None,
            "ranked": [s.__dict__ for s in found.ranked],
            "evidence": found.neighbours,
        }
        return Response(RecommendationSerializer(body).data)
