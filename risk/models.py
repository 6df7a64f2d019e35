"""Risk records: volatility estimates, risk metrics and factor exposures (time series), risk
limits, the alerts they raise and each delivery of an alert, market-data anomalies.

Metrics and exposures are long rows (one per account, name and time) so that a limit names a
metric and its check is one join; each names the run (``RiskRun``) that stated it last, which
records what a user needs to repeat it. Account-scoped tables carry trading's row-level security.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.db.models import Q
from django.db.models.functions import Now

from marketdata.models import Instrument
from qvp_site.db.audit import audited
from risk.estimators import ESTIMATORS
from trading.models import Account, check
from trading.querysets import AccountScopedQuerySet

INFINITY = float("inf")


def finite(name: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()):
    """NaN and infinities are no measurement, and no JSON carries them (a list holding one
    could not be answered): PostgreSQL orders NaN above every number, so ``value >= 0`` alone
    lets it through. Both bounds, since a metric, an exposure or a score may be negative."""

    def bounded(field: str) -> Q:
        return Q(**{f"{field}__gt": -INFINITY, f"{field}__lt": INFINITY})

    condition = Q()
    for field in required:
        condition &= bounded(field)
    for field in optional:
        condition &= Q(**{f"{field}__isnull": True}) | bounded(field)
    return models.CheckConstraint(condition=condition, name=name)


class Metric(models.TextChoices):
    VAR_HISTORICAL = "var_historical", "VaR, historical"
    CVAR_HISTORICAL = "cvar_historical", "CVaR, historical"
    VAR_PARAMETRIC = "var_parametric", "VaR, parametric"
    CVAR_PARAMETRIC = "cvar_parametric", "CVaR, parametric"
    VAR_MONTE_CARLO = "var_monte_carlo", "VaR, Monte Carlo"
    CVAR_MONTE_CARLO = "cvar_monte_carlo", "CVaR, Monte Carlo"
    TOTAL_RETURN = "total_return", "total return"
    VOLATILITY = "volatility", "annualised volatility"
    SHARPE = "sharpe", "Sharpe ratio"
    SORTINO = "sortino", "Sortino ratio"
    MAX_DRAWDOWN = "max_drawdown", "maximum drawdown"
    BETA = "beta", "beta to the benchmark"
    GROSS_EXPOSURE = "gross_exposure", "gross exposure"
    NET_EXPOSURE = "net_exposure", "net exposure"


class Factor(models.TextChoices):
    MARKET = "market", "market beta"
    SIZE = "size", "size"
    MOMENTUM = "momentum", "momentum"
    VOLATILITY = "volatility", "volatility"


class Severity(models.TextChoices):
    INFO = "info", "info"
    WARNING = "warning", "warning"
    CRITICAL = "critical", "critical"


class VolatilityEstimate(models.Model):
    """An instrument's annualised volatility by one estimator over a window of bars ending at
    ``ts`` (a time-series table)."""

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()
    timeframe = models.CharField(max_length=3, default="1d")  # the bars': "1m" or "1d"
    estimator = models.CharField(max_length=20, choices=[(n, n) for n in ESTIMATORS])
    window = models.PositiveIntegerField()
    value = models.FloatField()

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "timeframe", "estimator", "window", "ts"],
                name="volatility_estimate_key",
            ),
            check("volatility_estimator_known", Q(estimator__in=list(ESTIMATORS))),
            check("volatility_timeframe_known", Q(timeframe__in=["1m", "1d"])),
            check("volatility_window_positive", Q(window__gte=1)),
            check("volatility_not_negative", Q(value__gte=0)),
            finite("volatility_value_finite", ("value",)),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.estimator}({self.window}) {self.ts:%Y-%m-%d}"


class RiskRun(models.Model):
    """One run of ``compute_risk``: what it valued (``as_of``), what it knew (``known_at``: its
    market data and holdings read as the system knew them then), the code that ran it and its
    options, so that it can be repeated; a repeat names the run it repeats and whether every
    number came out identical."""

    as_of = models.DateTimeField()
    known_at = models.DateTimeField()
    code_version = models.CharField(max_length=100)
    confidence = models.FloatField()
    lookback = models.PositiveIntegerField()
    benchmark = models.CharField(max_length=32)
    volatility_window = models.PositiveIntegerField()
    # How the bars were adjusted for corporate actions (marketdata.querysets.ADJUSTMENTS): runs
    # before there were actions read prices as traded, which total_return equals as known then.
    adjustment = models.CharField(max_length=12, db_default="total_return")
    # The accounts measured, by id (every account there was, when none was named).
    accounts = ArrayField(models.BigIntegerField(), default=list, blank=True)
    actor = models.CharField(max_length=150)  # as the audit trail names who acted
    started_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    repeat_of = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="repeats"
    )
    identical = models.BooleanField(null=True, blank=True)  # a repeat's verdict

    class Meta:
        ordering = ["-started_at", "-id"]
        constraints = [
            check("risk_run_confidence_range", Q(confidence__gt=0, confidence__lt=1)),
            check("risk_run_lookback_enough", Q(lookback__gte=2)),
            check("risk_run_window_enough", Q(volatility_window__gte=2)),
            check("risk_run_adjustment_known", Q(adjustment__in=["raw", "split", "total_return"])),
            check(
                "risk_run_verdict_of_a_repeat",
                Q(repeat_of__isnull=True, identical__isnull=True) | Q(repeat_of__isnull=False),
            ),
        ]
        indexes = [models.Index(fields=["as_of", "-started_at"], name="risk_run_by_as_of_idx")]

    def __str__(self) -> str:
        return f"run {self.pk} as of {self.as_of:%Y-%m-%d %H:%M}, known at {self.known_at}"


class RiskMetric(models.Model):
    """One metric of an account at a time (a time-series table). VaR and CVaR are losses in
    the account's currency (positive numbers), at ``confidence`` over ``lookback`` days."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()
    metric = models.CharField(max_length=20, choices=Metric.choices)
    value = models.FloatField()
    confidence = models.FloatField(null=True, blank=True)
    lookback = models.PositiveIntegerField(null=True, blank=True)
    run = models.ForeignKey(
        RiskRun, on_delete=models.PROTECT, null=True, blank=True, related_name="metrics"
    )

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "metric", "ts"], name="risk_metric_key"),
            check("risk_metric_known", Q(metric__in=Metric.values)),
            finite("risk_metric_values_finite", ("value",), ("confidence",)),
            check(
                "risk_metric_confidence_range",
                Q(confidence__isnull=True) | Q(confidence__gt=0, confidence__lt=1),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.metric} {self.value:.4g} @ {self.ts:%Y-%m-%d %H:%M}"


class FactorExposure(models.Model):
    """An account's exposure to a factor at a time (a time-series table): the NAV-weighted sum
    of its holdings' loadings (beta for the market, cross-sectional z-scores for styles)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()
    factor = models.CharField(max_length=20, choices=Factor.choices)
    exposure = models.FloatField()
    run = models.ForeignKey(
        RiskRun, on_delete=models.PROTECT, null=True, blank=True, related_name="exposures"
    )

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "factor", "ts"], name="factor_exposure_key"),
            check("factor_known", Q(factor__in=Factor.values)),
            finite("factor_exposure_finite", ("exposure",)),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.factor} {self.exposure:.4g}"


@audited
class RiskLimit(models.Model):
    """A bound on an account's metric: breached when the metric is above (or below) it."""

    class Direction(models.TextChoices):
        ABOVE = "above", "breached above"
        BELOW = "below", "breached below"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="risk_limits")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    threshold = models.FloatField()
    direction = models.CharField(max_length=5, choices=Direction.choices, default="above")
    severity = models.CharField(max_length=8, choices=Severity.choices, default="warning")
    active = models.BooleanField(default=True)
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["account", "metric"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "metric", "direction", "threshold"], name="risk_limit_unique"
            ),
            check("risk_limit_metric_known", Q(metric__in=Metric.values)),
            check("risk_limit_direction_known", Q(direction__in=["above", "below"])),
            check("risk_limit_severity_known", Q(severity__in=Severity.values)),
            check(
                "risk_limit_threshold_finite",
                Q(threshold__gt=float("-inf"), threshold__lt=float("inf")),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.metric} {self.direction} {self.threshold:g}"


class RiskAlert(models.Model):
    """A limit's breach: raised once while it lasts (one open alert per limit, enforced by the
    database), then acknowledged and resolved by people, each step with who and when."""

    class State(models.TextChoices):
        OPEN = "open", "open"
        ACKNOWLEDGED = "acknowledged", "acknowledged"
        RESOLVED = "resolved", "resolved"

    limit = models.ForeignKey(RiskLimit, on_delete=models.PROTECT, related_name="alerts")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    metric = models.CharField(max_length=20, choices=Metric.choices)
    value = models.FloatField()
    threshold = models.FloatField()
    direction = models.CharField(max_length=5, choices=RiskLimit.Direction.choices)
    severity = models.CharField(max_length=8, choices=Severity.choices)
    measured_at = models.DateTimeField()
    raised_at = models.DateTimeField(db_default=Now())
    state = models.CharField(max_length=12, choices=State.choices, default="open")
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution = models.CharField(max_length=500, blank=True)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-raised_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["limit"], condition=~Q(state="resolved"), name="risk_alert_one_open"
            ),
            check("risk_alert_state_known", Q(state__in=["open", "acknowledged", "resolved"])),
            finite("risk_alert_values_finite", ("value", "threshold")),
            check("risk_alert_severity_known", Q(severity__in=Severity.values)),
            check(
                "risk_alert_acknowledged_by_whom",
                Q(state="open", acknowledged_at__isnull=True, acknowledged_by__isnull=True)
                | (
                    ~Q(state="open")
                    & Q(acknowledged_at__isnull=False, acknowledged_by__isnull=False)
                ),
            ),
            check(
                "risk_alert_resolved_by_whom",
                Q(state="resolved", resolved_at__isnull=False, resolved_by__isnull=False)
                | (~Q(state="resolved") & Q(resolved_at__isnull=True, resolved_by__isnull=True)),
            ),
        ]
        indexes = [
            models.Index(fields=["account", "state", "-raised_at"], name="risk_alert_by_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.severity} {self.metric} {self.value:.4g} ({self.state})"


class AlertDelivery(models.Model):
    """One attempt to deliver an alert by one channel, and how it went."""

    class Channel(models.TextChoices):
        EMAIL = "email", "email"
        WEBHOOK = "webhook", "webhook"

    class Outcome(models.TextChoices):
        DELIVERED = "delivered", "delivered"
        FAILED = "failed", "failed"

    alert = models.ForeignKey(RiskAlert, on_delete=models.PROTECT, related_name="deliveries")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    channel = models.CharField(max_length=7, choices=Channel.choices)
    target = models.CharField(max_length=500)
    attempt = models.PositiveSmallIntegerField()
    outcome = models.CharField(max_length=9, choices=Outcome.choices)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    attempted_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-attempted_at", "-id"]
        verbose_name_plural = "alert deliveries"
        constraints = [
            models.UniqueConstraint(
                fields=["alert", "channel", "attempt"], name="alert_delivery_attempt_once"
            ),
            check("alert_delivery_channel_known", Q(channel__in=["email", "webhook"])),
            check("alert_delivery_outcome_known", Q(outcome__in=["delivered", "failed"])),
            check("alert_delivery_attempt_positive", Q(attempt__gte=1)),
            check("alert_delivery_failure_explained", Q(outcome="delivered") | ~Q(error="")),
        ]

    def __str__(self) -> str:
        return f"alert {self.alert_id} {self.channel} #{self.attempt} {self.outcome}"


class MarketAnomaly(models.Model):
    """A bar whose return or volume is an outlier by a robust z-score, or a gap in the bars
    against the exchange's trading calendar (``ts`` its first missing minute)."""

    class Kind(models.TextChoices):
        RETURN = "return", "return outlier"
        VOLUME = "volume", "volume outlier"
        GAP = "gap", "gap in the bars"

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()
    kind = models.CharField(max_length=6, choices=Kind.choices)
    value = models.FloatField()  # the return, the volume, or the minutes missing
    score = models.FloatField(null=True, blank=True)  # the robust z-score (outliers)
    until = models.DateTimeField(null=True, blank=True)  # a gap's last missing minute
    detected_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["-ts"]
        verbose_name_plural = "market anomalies"
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "kind", "ts"], name="market_anomaly_once"
            ),
            check("market_anomaly_kind_known", Q(kind__in=["return", "volume", "gap"])),
            finite("market_anomaly_values_finite", ("value",), ("score",)),
            check(
                "market_anomaly_gap_has_end",
                Q(kind="gap", until__gte=models.F("ts")) | (~Q(kind="gap") & Q(until__isnull=True)),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.kind} {self.ts:%Y-%m-%d %H:%M}"


class TradingCalendar(models.Model):
    """An exchange's trading calendar (``exchange_calendars``, which lives in Python), as far
    as ``detect_anomalies`` has copied its sessions into ``TradingPeriod``: the SQL function
    ``detect_market_data_anomalies`` measures gaps in [sessions_from, sessions_to) only, and
    names the rest of its window as not measured. ``name`` is the instrument's exchange as the
    library knows it (an alias included), or ``24/7`` and ``24/5`` for crypto and FX."""

    name = models.CharField(max_length=32, unique=True)
    sessions_from = models.DateTimeField()
    sessions_to = models.DateTimeField()
    loaded_at = models.DateTimeField(db_default=Now())

    class Meta:
        ordering = ["name"]
        constraints = [
            check("trading_calendar_range", Q(sessions_to__gt=models.F("sessions_from"))),
        ]

    def __str__(self) -> str:
        return self.name


class TradingPeriod(models.Model):
    """A span [opens_at, closes_at) over which a calendar's market trades without a break: a
    session, or its part before or after a midday break. Each minute in it should have a bar."""

    calendar = models.ForeignKey(TradingCalendar, on_delete=models.CASCADE, related_name="periods")
    opens_at = models.DateTimeField()
    closes_at = models.DateTimeField()

    class Meta:
        ordering = ["calendar", "opens_at"]
        constraints = [
            models.UniqueConstraint(fields=["calendar", "opens_at"], name="trading_period_once"),
            check("trading_period_range", Q(closes_at__gt=models.F("opens_at"))),
        ]

    def __str__(self) -> str:
        return f"{self.calendar_id} {self.opens_at:%Y-%m-%d %H:%M}"
