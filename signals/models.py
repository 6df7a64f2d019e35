"""Agents and what they emit, what became of it, and the data they read.

Signals, fused signals, news, social sentiment, alternative data, agent metrics and system
logs are time-series tables (see the migrations): their database key is (id, ts), nothing can
hold a foreign key to them, and their natural keys include the time. A fused signal therefore
keeps the signals it came from as values (agent, time, weight, direction, strength,
confidence), which survive the compression and retention of the signals table. Agents,
performance rows and model evaluations are ordinary tables.

The rules are named CHECK constraints, so the API, the admin, the commands and raw SQL meet the
same ones. ``x BETWEEN -1 AND 1`` also refuses NaN, which PostgreSQL orders above every number.
"""

from __future__ import annotations

from datetime import timedelta

from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.db.models import F, Func, Q
from django.db.models.functions import Now
from django.db.models.lookups import Exact

from marketdata.models import Instrument
from marketdata.querysets import TimeRangeQuerySet
from signals.querysets import AlternativeDataQuerySet, NewsQuerySet, SignalQuerySet


def between(name: str, field: str, low: float, high: float) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": low, f"{field}__lte": high}), name=name
    )


def json_of_type(name: str, field: str, json_type: str) -> models.CheckConstraint:
    """A JSON column that must hold an object (named values) or a list, nothing else."""
    kind = Func(F(field), function="jsonb_typeof", output_field=models.CharField())
    return models.CheckConstraint(condition=Exact(kind, json_type), name=name)


def json_object(name: str, field: str) -> models.CheckConstraint:
    return json_of_type(name, field, "object")


class AgentKind(models.TextChoices):
    MOMENTUM = "momentum", "momentum"
    MEAN_REVERSION = "mean_reversion", "mean reversion"
    SENTIMENT = "sentiment", "sentiment"
    FUNDAMENTAL = "fundamental", "fundamental"
    ML = "ml", "machine learning"
    ALLOCATOR = "allocator", "portfolio allocator"
    OTHER = "other", "other"


class LogLevel(models.TextChoices):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


class Agent(models.Model):
    Kind = AgentKind

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=20, choices=AgentKind.choices)
    version = models.CharField(max_length=50, default="1")
    description = models.TextField(blank=True)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=~Q(name=""), name="agent_name_not_empty"),
            models.CheckConstraint(condition=Q(kind__in=AgentKind.values), name="agent_kind_known"),
            models.CheckConstraint(condition=~Q(version=""), name="agent_version_not_empty"),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"


class Signal(models.Model):
    """What an agent says about an instrument at a time: which way (direction -1, 0 or 1),
    how strongly (strength in [-1, 1], its sign the direction's), how sure (confidence in
    [0, 1]), over what horizon, and why (explanation: the features and reasons)."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, db_index=False)
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, db_index=False)
    ts = models.DateTimeField()
    direction = models.SmallIntegerField()
    strength = models.FloatField()
    confidence = models.FloatField()
    horizon = models.DurationField()
    explanation = models.JSONField(default=dict, blank=True)

    objects = SignalQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "instrument", "ts"], name="signal_by_agent_instrument_time"
            ),
            models.CheckConstraint(
                condition=Q(direction__in=[-1, 0, 1]), name="signal_direction_known"
            ),
            between("signal_strength_in_range", "strength", -1, 1),
            between("signal_confidence_in_range", "confidence", 0, 1),
            # The sign of the strength is the direction: 0 says nothing either way.
            models.CheckConstraint(
                condition=Q(direction=0, strength=0)
                | Q(direction=1, strength__gt=0)
                | Q(direction=-1, strength__lt=0),
                name="signal_strength_matches_direction",
            ),
            models.CheckConstraint(
                condition=Q(horizon__gt=timedelta(0)), name="signal_horizon_positive"
            ),
            # Fusion looks back a year for signals still running (signals/fusion.py).
            models.CheckConstraint(
                condition=Q(horizon__lte=timedelta(days=366)), name="signal_horizon_at_most_a_year"
            ),
            json_object("signal_explanation_is_object", "explanation"),
        ]
        indexes = [
            # Each agent's signals in time order (performance, the API's agent filter) and
            # each instrument's (fusion's latest signals, the API's instrument filter).
            models.Index(fields=["agent", "-ts"], name="signal_agent_ts"),
            models.Index(fields=["instrument", "-ts"], name="signal_instrument_ts"),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.instrument_id} {self.ts:%Y-%m-%d %H:%M} {self.strength:+.2f}"


class FusedSignal(models.Model):
    """The allocator's view of an instrument at a time: a target weight in [-1, 1] fused from
    the latest signals by a named method. ``inputs`` holds those signals by value: a list of
    {agent, signal_ts, weight, direction, strength, confidence, performance}."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, db_index=False)
    ts = models.DateTimeField()
    target_weight = models.FloatField()
    confidence = models.FloatField()
    method = models.CharField(max_length=50)
    inputs = models.JSONField(default=list)
    input_count = models.PositiveIntegerField()

    objects = TimeRangeQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "method", "ts"], name="fusedsignal_by_instrument_method_time"
            ),
            between("fusedsignal_target_weight_in_range", "target_weight", -1, 1),
            between("fusedsignal_confidence_in_range", "confidence", 0, 1),
            models.CheckConstraint(condition=~Q(method=""), name="fusedsignal_method_named"),
            json_of_type("fusedsignal_inputs_is_list", "inputs", "array"),
            models.CheckConstraint(condition=Q(input_count__gt=0), name="fusedsignal_has_inputs"),
        ]
        indexes = [models.Index(fields=["instrument", "-ts"], name="fusedsignal_instrument_ts")]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.ts:%Y-%m-%d %H:%M} {self.target_weight:+.3f}"


class SignalPerformance(models.Model):
    """An agent's signals of the last ``window_days`` days (to ``window_end``) against the
    returns that followed each over its horizon; kept current by the scheduler."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="performance")
    window_days = models.PositiveIntegerField()
    window_start = models.DateTimeField()
    window_end = models.DateTimeField()
    signal_count = models.PositiveIntegerField()
    hit_rate = models.FloatField(null=True, blank=True)
    information_coefficient = models.FloatField(null=True, blank=True)
    average_return = models.FloatField(null=True, blank=True)
    # One definition, signals/sql/performance/0008.sql's; the API and the admin show this text.
    cumulative_return = models.FloatField(
        null=True,
        blank=True,
        help_text="the return of following the signals without overlap: the capital split"
        " equally among the instruments signalled, each share taking one signal at a time over"
        " its horizon (the next one given at or after its end), compounded; the shares' returns"
        " averaged",
    )
    computed_at = models.DateTimeField(db_default=Now())
    # What repeating the measure needs besides its window: the market data as known then
    # (marketdata's revisions) and which code ran it.
    known_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="the knowledge time the measure read market data at (null: unrecorded)",
    )
    code_version = models.CharField(
        max_length=100, blank=True, help_text="the code that computed the measure"
    )

    class Meta:
        ordering = ["agent", "window_days"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "window_days"], name="signalperformance_one_per_window"
            ),
            models.CheckConstraint(
                condition=Q(window_days__gt=0), name="signalperformance_window_positive"
            ),
            models.CheckConstraint(
                condition=Q(window_start__lt=F("window_end")),
                name="signalperformance_window_ordered",
            ),
            models.CheckConstraint(
                condition=Q(hit_rate__isnull=True) | Q(hit_rate__gte=0, hit_rate__lte=1),
                name="signalperformance_hit_rate_in_range",
            ),
            models.CheckConstraint(
                condition=Q(information_coefficient__isnull=True)
                | Q(information_coefficient__gte=-1, information_coefficient__lte=1),
                name="signalperformance_ic_in_range",
            ),
            models.CheckConstraint(
                condition=Q(cumulative_return__isnull=True) | Q(cumulative_return__gte=-1),
                name="signalperformance_cumulative_return_above_total_loss",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.window_days}d: {self.signal_count} signals"


class ModelPerformance(models.Model):
    """One evaluation of an agent's model on a data set (out of sample unless said)."""

    agent = models.ForeignKey(Agent, on_delete=models.CASCADE, related_name="evaluations")
    model_name = models.CharField(max_length=100)
    model_version = models.CharField(max_length=50)
    evaluated_at = models.DateTimeField()
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    sample_size = models.PositiveIntegerField()
    accuracy = models.FloatField(null=True, blank=True)
    precision = models.FloatField(null=True, blank=True)
    recall = models.FloatField(null=True, blank=True)
    f1 = models.FloatField(null=True, blank=True)
    sharpe = models.FloatField(null=True, blank=True)
    parameters = models.JSONField(default=dict, blank=True)
    metrics = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-evaluated_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["agent", "model_name", "model_version", "evaluated_at"],
                name="modelperformance_one_per_evaluation",
            ),
            models.CheckConstraint(
                condition=Q(period_start__lt=F("period_end")),
                name="modelperformance_period_ordered",
            ),
            *[
                models.CheckConstraint(
                    condition=Q(**{f"{f}__isnull": True}) | Q(**{f"{f}__gte": 0, f"{f}__lte": 1}),
                    name=f"modelperformance_{f}_in_range",
                )
                for f in ("accuracy", "precision", "recall", "f1")
            ],
            models.CheckConstraint(
                condition=Q(sharpe__isnull=True)
                | Q(sharpe__lt=float("inf"), sharpe__gt=float("-inf")),
                name="modelperformance_sharpe_finite",
            ),
            json_object("modelperformance_parameters_is_object", "parameters"),
            json_object("modelperformance_metrics_is_object", "metrics"),
        ]

    def __str__(self) -> str:
        return f"{self.model_name} {self.model_version} @ {self.evaluated_at:%Y-%m-%d}"


class NewsArticle(models.Model):
    """A news item with the symbols it is about and a sentiment score in [-1, 1]."""

    ts = models.DateTimeField()
    source = models.CharField(max_length=100)
    headline = models.CharField(max_length=500)
    body = models.TextField(blank=True)
    url = models.URLField(max_length=1000, blank=True)
    symbols = ArrayField(models.CharField(max_length=64), default=list, blank=True)
    sentiment = models.FloatField(null=True, blank=True)

    objects = NewsQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            # Re-ingesting a file finds its articles already there.
            models.UniqueConstraint(
                fields=["source", "headline", "ts"], name="newsarticle_by_source_headline_time"
            ),
            models.CheckConstraint(condition=~Q(source=""), name="newsarticle_source_not_empty"),
            models.CheckConstraint(
                condition=~Q(headline=""), name="newsarticle_headline_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(sentiment__isnull=True) | Q(sentiment__gte=-1, sentiment__lte=1),
                name="newsarticle_sentiment_in_range",
            ),
        ]
        indexes = [
            models.Index(fields=["-ts"], name="newsarticle_ts"),
            # "news about AAPL": symbols @> ARRAY['AAPL'] (NewsArticle.objects.about("AAPL")).
            GinIndex(fields=["symbols"], name="newsarticle_symbols"),
        ]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M} {self.source}: {self.headline[:60]}"


class SocialSentiment(models.Model):
    """Sentiment about an instrument on a platform over a period starting at ``ts``."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, db_index=False)
    ts = models.DateTimeField()
    platform = models.CharField(max_length=50)
    sentiment = models.FloatField()
    mentions = models.PositiveIntegerField()
    bullish = models.PositiveIntegerField(default=0)
    bearish = models.PositiveIntegerField(default=0)

    objects = TimeRangeQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "platform", "ts"],
                name="socialsentiment_by_instrument_platform_time",
            ),
            between("socialsentiment_sentiment_in_range", "sentiment", -1, 1),
            models.CheckConstraint(
                condition=~Q(platform=""), name="socialsentiment_platform_not_empty"
            ),
            models.CheckConstraint(
                condition=Q(bullish__lte=F("mentions"))
                & Q(bearish__lte=F("mentions") - F("bullish")),
                name="socialsentiment_votes_within_mentions",
            ),
        ]
        indexes = [models.Index(fields=["instrument", "-ts"], name="socialsentiment_instr_ts")]

    def __str__(self) -> str:
        return (
            f"{self.instrument_id} {self.platform} {self.ts:%Y-%m-%d %H:%M} {self.sentiment:+.2f}"
        )


class AlternativeData(models.Model):
    """Satellite counts, card spending, weather...: a JSON payload by source and kind.

    The payload's GIN index (jsonb_path_ops) serves containment, ``payload @> {...}``, which
    is what ``AlternativeData.objects.matching(...)`` asks.
    """

    ts = models.DateTimeField()
    source = models.CharField(max_length=100)
    kind = models.CharField(max_length=50)
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, null=True, blank=True, db_index=False
    )
    payload = models.JSONField()

    objects = AlternativeDataQuerySet.as_manager()

    class Meta:
        # "data" is already plural: the admin would say "Alternative datas".
        verbose_name_plural = "alternative data"
        ordering = ["-ts", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(source=""), name="alternativedata_source_not_empty"
            ),
            models.CheckConstraint(condition=~Q(kind=""), name="alternativedata_kind_not_empty"),
            json_object("alternativedata_payload_is_object", "payload"),
        ]
        indexes = [
            models.Index(fields=["kind", "source", "-ts"], name="alternativedata_kind_ts"),
            GinIndex(
                fields=["payload"], name="alternativedata_payload", opclasses=["jsonb_path_ops"]
            ),
        ]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M} {self.source}/{self.kind}"


class AgentMetric(models.Model):
    """An agent's health over the period ending at ``ts``."""

    agent = models.ForeignKey(Agent, on_delete=models.PROTECT, db_index=False)
    ts = models.DateTimeField()
    latency_ms = models.FloatField()
    errors = models.PositiveIntegerField(default=0)
    signals_emitted = models.PositiveIntegerField(default=0)

    objects = TimeRangeQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["agent", "ts"], name="agentmetric_by_agent_time"),
            models.CheckConstraint(
                condition=Q(latency_ms__gte=0, latency_ms__lt=float("inf")),
                name="agentmetric_latency_finite_not_negative",
            ),
        ]
        indexes = [models.Index(fields=["agent", "-ts"], name="agentmetric_agent_ts")]

    def __str__(self) -> str:
        return f"{self.agent_id} {self.ts:%Y-%m-%d %H:%M}"


class SystemLog(models.Model):
    """A log record, written by ``signals.logging.DatabaseLogHandler``."""

    Level = LogLevel

    ts = models.DateTimeField()
    level = models.CharField(max_length=10, choices=LogLevel.choices)
    logger = models.CharField(max_length=200)
    message = models.TextField()
    context = models.JSONField(default=dict, blank=True)

    objects = TimeRangeQuerySet.as_manager()

    class Meta:
        ordering = ["-ts", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(level__in=LogLevel.values), name="systemlog_level_known"
            ),
            json_object("systemlog_context_is_object", "context"),
        ]
        indexes = [models.Index(fields=["level", "-ts"], name="systemlog_level_ts")]

    def __str__(self) -> str:
        return f"{self.ts:%Y-%m-%d %H:%M:%S} {self.level} {self.logger}"
