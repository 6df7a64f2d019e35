"""Feature embeddings, volatility regimes and strategy patterns, in pgvector columns.

All three are ordinary tables, not time series, although each row has a time. Their searches
are k nearest neighbours over the whole history (the most similar past state, whenever it
was), and an HNSW index on a hypertable or a partitioned table is one graph per chunk: a
search walks every chunk's graph and merges, so its cost grows with the number of chunks and
each graph is smaller and worse connected. One graph over the table serves the search best.
These rows are derived data (rebuilt from bars), a few hundred thousand to a few million, so
they need neither retention by chunk nor compression. Time filters are served by the B-tree
of each natural key, which also makes incremental builds find what is already embedded.

The vectors' dimensions are the columns' types, so a wrong dimension is refused by the
database whichever door it comes through; pgvector refuses NaN and infinities itself.
"""

from __future__ import annotations

from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Now
from django.db.models.lookups import Exact
from pgvector.django import VectorField

from marketdata.models import Instrument
from trading.models import BacktestRun

FEATURE_DIMENSIONS = 128
REGIME_DIMENSIONS = 64
STATE_DIMENSIONS = 256


def raw_features(field: str, count: int) -> Q:
    """One value per feature, in a flat list."""
    dimensions = Func(F(field), function="array_ndims", output_field=models.IntegerField())
    return Q(Exact(dimensions, 1), **{f"{field}__len": count})


def check(name: str, condition: Q) -> models.CheckConstraint:
    return models.CheckConstraint(condition=condition, name=name)


class FeatureSet(models.Model):
    """A versioned pipeline and the standardisation fitted for it (robust z-scores).

    ``center`` and ``scale`` are fitted once, on the first build of the version, and then
    kept: the same bars give the same vector for as long as the version lives. A different
    pipeline or a refit is a new version.
    """

    class Kind(models.TextChoices):
        FEATURES = "features", "bar features (128-d)"
        REGIME = "regime", "regime signature (64-d)"
        STATE = "state", "market state (256-d)"

    name = models.CharField(max_length=64)
    version = models.PositiveIntegerField()
    kind = models.CharField(max_length=10, choices=Kind.choices)
    dimensions = models.PositiveSmallIntegerField()
    timeframe = models.CharField(max_length=8, help_text="bar period the windows are made of")
    stride = models.PositiveIntegerField(help_text="minutes between consecutive windows")
    feature_names = ArrayField(models.CharField(max_length=64))
    center = ArrayField(models.FloatField(), help_text="median of each raw feature")
    scale = ArrayField(models.FloatField(), help_text="1.4826 x MAD of each raw feature")
    fitted_rows = models.PositiveIntegerField()
    description = models.TextField(blank=True)
    created_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="featureset_name_version"),
            check("featureset_version_positive", Q(version__gte=1)),
            check("featureset_name_not_empty", ~Q(name="")),
            check("featureset_kind_known", Q(kind__in=["features", "regime", "state"])),
            check("featureset_stride_positive", Q(stride__gte=1)),
            check("featureset_fitted_on_rows", Q(fitted_rows__gte=1)),
            check(
                "featureset_dimensions_match",
                Q(feature_names__len=F("dimensions"))
                & Q(center__len=F("dimensions"))
                & Q(scale__len=F("dimensions")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class FeatureBuild(models.Model):
    """One build of a feature set's embeddings (``build_embeddings``): the knowledge time it
    read the bars at, the code that ran, and the windows it embedded per instrument, so that
    ``build_embeddings --repeat ID`` computes them again from the same bars and compares."""

    # A build's record goes with its feature set (a version dropped, a test's data cleared).
    feature_set = models.ForeignKey(FeatureSet, on_delete=models.CASCADE, related_name="builds")
    known_at = models.DateTimeField(help_text="the knowledge time the bars were read at")
    code_version = models.CharField(max_length=100, blank=True)
    started_at = models.DateTimeField(db_default=Now())
    # {instrument id: [first window's close, last window's close, windows]}, as ISO strings.
    windows = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return f"{self.feature_set} build {self.pk} (known at {self.known_at:%Y-%m-%d %H:%M})"


class FeatureEmbedding(models.Model):
    """The standardised features of the window of bars that closed at ``ts``."""

    # Searches and builds always name the feature set, and the unique (feature_set,
    # instrument, ts) index serves them: no index per key to slow the bulk loads.
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    feature_set = models.ForeignKey(
        FeatureSet, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    ts = models.DateTimeField(help_text="when the window's last bar closed")
    embedding = VectorField(dimensions=FEATURE_DIMENSIONS)
    # An array of doubles, not JSON: exact, and loaded by binary COPY at the server's pace,
    # where PostgreSQL parsing 128 JSON numbers a row held a bulk load under 10,000 rows/s
    # (vectors/migrations/0003). to_jsonb(raw) gives the JSON list.
    raw = ArrayField(
        models.FloatField(null=True),
        help_text="the raw features before scaling, in the set's order; NULL where unknown",
    )

    class Meta:
        ordering = ["instrument", "ts"]
        # A set's embeddings in time order, as the list pages and streams them over every
        # instrument; the window's key starts with the instrument.
        indexes = [
            models.Index(fields=["feature_set", "ts", "id"], name="featureembedding_by_time")
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["feature_set", "instrument", "ts"], name="featureembedding_by_window"
            ),
            check("featureembedding_raw_features", raw_features("raw", FEATURE_DIMENSIONS)),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.ts:%Y-%m-%d %H:%M} ({self.feature_set_id})"


class VolatilityRegime(models.Model):
    """The volatility signature of an instrument over a period, and its discovered regime."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    feature_set = models.ForeignKey(FeatureSet, on_delete=models.PROTECT, related_name="+")
    period_start = models.DateTimeField()
    period_end = models.DateTimeField(help_text="when the period's last bar closed")
    label = models.CharField(max_length=32, blank=True, help_text="regime from clustering")
    cluster = models.PositiveSmallIntegerField(null=True, blank=True)
    signature = VectorField(dimensions=REGIME_DIMENSIONS)
    statistics = models.JSONField(help_text="the annualised volatilities behind the signature")

    class Meta:
        ordering = ["instrument", "period_end"]
        constraints = [
            models.UniqueConstraint(
                fields=["feature_set", "instrument", "period_end"], name="regime_by_period"
            ),
            check("regime_period_ordered", Q(period_end__gt=F("period_start"))),
            check("regime_labelled_with_cluster", Q(label="") | Q(cluster__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.period_end:%Y-%m-%d} {self.label or '-'}"


class StrategyPattern(models.Model):
    """The market state when a strategy decided, and the outcome of its backtest trade."""

    strategy = models.CharField(max_length=100)
    backtest = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="+")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    feature_set = models.ForeignKey(FeatureSet, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField(help_text="when the strategy decided")
    state = VectorField(dimensions=STATE_DIMENSIONS)
    horizon_minutes = models.PositiveIntegerField()
    position = models.SmallIntegerField(help_text="+1 long, -1 short, 0 flat")
    forward_return = models.FloatField(help_text="the strategy's return over the horizon")
    sharpe = models.FloatField(help_text="annualised Sharpe of its minute returns")
    max_drawdown = models.FloatField(help_text="largest fall from a peak, fraction of equity")

    class Meta:
        ordering = ["strategy", "ts"]
        constraints = [
            models.UniqueConstraint(
                fields=["backtest", "instrument", "ts"], name="strategypattern_by_decision"
            ),
            check("pattern_position_known", Q(position__in=[-1, 0, 1])),
            check("pattern_horizon_positive", Q(horizon_minutes__gte=1)),
            check(
                "pattern_outcome_finite",
                Q(forward_return__lt=float("inf"), forward_return__gt=-1)
                & Q(sharpe__lt=float("inf"), sharpe__gt=float("-inf")),
            ),
            check("pattern_drawdown_fraction", Q(max_drawdown__gte=0) & Q(max_drawdown__lte=1)),
        ]
        indexes = [models.Index(fields=["strategy", "ts"], name="pattern_by_strategy_time")]

    def __str__(self) -> str:
        return f"{self.strategy} {self.ts:%Y-%m-%d %H:%M} {self.forward_return:+.4f}"
