"""Instruments and their market data: minute and daily bars, ticks, option quotes.

Bars, ticks and quotes are time-series tables (see the migrations): their database key is
(id, ts) and their natural keys include the time. The database refuses what is not a bar, a
tick or a quote through named CHECK constraints, so raw SQL meets the same rules.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.constraints import ExclusionConstraint
from django.contrib.postgres.fields import DateRangeField, RangeOperators
from django.db import models
from django.db.models import F, Q

from marketdata.querysets import (
    BarQuerySet,
    InstrumentQuerySet,
    TickQuerySet,
    TimeRangeQuerySet,
)
from qvp_site.db.audit import audited

# ``now()``: the start of the transaction, the same instant for every row a load writes
# (Django's ``Now`` is the statement's, which differs between a load's statements).
TRANSACTION_START = models.Func(function="now", output_field=models.DateTimeField())


def known_from_field() -> models.DateTimeField:
    """When the system learnt a row's values: its load's transaction, set by the database."""
    return models.DateTimeField(
        db_default=TRANSACTION_START,
        editable=False,
        help_text="when the system learnt these values (the start of the load that wrote them)",
    )


class Instrument(models.Model):
    class AssetClass(models.TextChoices):
        EQUITY = "equity", "equity"
        OPTION = "option", "option"
        FUTURE = "future", "future"
        FX = "fx", "FX"
        CRYPTO = "crypto", "crypto"

    # The venue is written into the symbol where two venues list it (BTCUSDT.BINANCE-FUTURES).
    # Today's terms of the instrument's history (Listing): a ticker a delisted instrument bore
    # last may be another's now, so only instruments still listed hold a symbol each.
    symbol = models.CharField(max_length=64)
    asset_class = models.CharField(max_length=10, choices=AssetClass.choices)
    exchange = models.CharField(max_length=32, blank=True)
    currency = models.CharField(max_length=5, default="USD")
    tick_size = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    multiplier = models.DecimalField(max_digits=20, decimal_places=6, default=1)
    active = models.BooleanField(default=True)

    objects = InstrumentQuerySet.as_manager()

    class Meta:
        ordering = ["symbol"]
        constraints = [
            models.CheckConstraint(
                condition=Q(asset_class__in=["equity", "option", "future", "fx", "crypto"]),
                name="instrument_asset_class_known",
            ),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z0-9]{3,5}$"), name="instrument_currency_code"
            ),
            models.CheckConstraint(
                condition=Q(tick_size__isnull=True) | Q(tick_size__gt=0),
                name="instrument_tick_size_positive",
            ),
            models.CheckConstraint(
                condition=Q(multiplier__gt=0), name="instrument_multiplier_positive"
            ),
            models.CheckConstraint(condition=~Q(symbol=""), name="instrument_symbol_not_empty"),
            models.UniqueConstraint(
                fields=["symbol"], condition=Q(active=True), name="instrument_symbol_active"
            ),
        ]

    def __str__(self) -> str:
        return self.symbol


def valid_dates() -> models.Func:
    """The dates a listing version held, as a range ``[valid_from, valid_until)``: unbounded
    below where ``valid_from`` is null (held since before the history starts), above where
    ``valid_until`` is null (holds still). A plain ``Func``, so that migrations name no class
    of this module."""
    return models.Func(
        F("valid_from"), F("valid_until"), function="daterange", output_field=DateRangeField()
    )


@audited
class Listing(models.Model):
    """One version of an instrument's terms in the security master: its symbol, name, exchange
    (MIC), currency, identifiers and status from ``valid_from`` until ``valid_until`` (dates;
    the end excluded), as the system knew them from ``known_from`` until ``known_until`` (a
    history corrected later keeps the versions it replaced, closed). The instrument keeps its
    id for life; its own row holds the terms of today's version (marketdata/sql/listings/0011.sql
    keeps the two in step, whichever is written)."""

    class Status(models.TextChoices):
        LISTED = "listed", "listed"
        SUSPENDED = "suspended", "suspended"
        DELISTED = "delisted", "delisted"

    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="listings")
    valid_from = models.DateField(null=True, blank=True, help_text="empty: since always")
    valid_until = models.DateField(null=True, blank=True, help_text="excluded; empty: still")
    symbol = models.CharField(max_length=64)
    name = models.CharField(max_length=200, blank=True)
    mic = models.CharField("exchange (MIC)", max_length=4, blank=True)
    currency = models.CharField(max_length=5)
    status = models.CharField(max_length=9, choices=Status.choices, default=Status.LISTED)
    isin = models.CharField("ISIN", max_length=12, blank=True)
    figi = models.CharField("FIGI", max_length=12, blank=True)
    # A vendor's own codes, by vendor: {"refinitiv": "AAPL.O"}.
    vendor_ids = models.JSONField("vendor identifiers", default=dict, blank=True)
    known_from = models.DateTimeField(
        db_default=TRANSACTION_START, help_text="when the system learnt it"
    )
    known_until = models.DateTimeField(
        null=True, blank=True, help_text="when a corrected history replaced it (empty: current)"
    )

    class Meta:
        ordering = ["instrument", "valid_from", "known_from"]
        indexes = [
            models.Index(fields=["symbol", "valid_from"], name="listing_by_symbol"),
            models.Index(fields=["instrument", "valid_from"], name="listing_by_instrument"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(valid_until__isnull=True)
                | Q(valid_from__isnull=True)
                | Q(valid_until__gt=F("valid_from")),
                name="listing_dates_in_order",
            ),
            models.CheckConstraint(
                condition=Q(status__in=["listed", "suspended", "delisted"]),
                name="listing_status_known",
            ),
            models.CheckConstraint(condition=~Q(symbol=""), name="listing_symbol_not_empty"),
            models.CheckConstraint(
                condition=Q(currency__regex=r"^[A-Z0-9]{3,5}$"), name="listing_currency_code"
            ),
            models.CheckConstraint(
                condition=Q(mic="") | Q(mic__regex=r"^[A-Z0-9]{4}$"), name="listing_mic_code"
            ),
            models.CheckConstraint(
                condition=Q(isin="") | Q(isin__regex=r"^[A-Z]{2}[A-Z0-9]{9}[0-9]$"),
                name="listing_isin_code",
            ),
            models.CheckConstraint(
                condition=Q(figi="") | Q(figi__regex=r"^[A-Z]{2}G[A-Z0-9]{8}[0-9]$"),
                name="listing_figi_code",
            ),
            models.CheckConstraint(
                condition=Q(known_until__isnull=True) | Q(known_until__gte=F("known_from")),
                name="listing_known_in_order",
            ),
            # An instrument has one set of terms on a day, as currently known...
            ExclusionConstraint(
                name="listing_one_version_a_day",
                expressions=[
                    ("instrument", RangeOperators.EQUAL),
                    (valid_dates(), RangeOperators.OVERLAPS),
                ],
                condition=Q(known_until__isnull=True),
            ),
            # ...and a ticker names one listed (or suspended) instrument on a day.
            ExclusionConstraint(
                name="listing_one_bearer_a_day",
                expressions=[
                    ("symbol", RangeOperators.EQUAL),
                    (valid_dates(), RangeOperators.OVERLAPS),
                ],
                condition=Q(known_until__isnull=True) & ~Q(status="delisted"),
            ),
        ]

    def __str__(self) -> str:
        since = self.valid_from or "always"
        return f"{self.symbol} ({self.status}) from {since}"


INFINITY = float("inf")


class ActionKind(models.TextChoices):
    SPLIT = "split", "split"
    CASH_DIVIDEND = "cash_dividend", "cash dividend"
    STOCK_DIVIDEND = "stock_dividend", "stock dividend"
    SPIN_OFF = "spin_off", "spin-off"
    DELISTING = "delisting", "delisting"


def action_constraints() -> list:
    """What each kind of action must state, and nothing it must not, so that raw SQL meets
    the loader's rules."""
    kind = {k: Q(kind=k) for k in ActionKind.values}
    shares_change = kind["split"] | kind["stock_dividend"] | kind["spin_off"]
    return [
        models.CheckConstraint(condition=Q(kind__in=ActionKind.values), name="action_kind_known"),
        models.CheckConstraint(
            condition=(~shares_change | Q(ratio__gt=0)) & (shares_change | Q(ratio__isnull=True)),
            name="action_ratio_where_shares_change",
        ),
        # Within what the books hold: a ratio past these would overflow a position's digits.
        models.CheckConstraint(
            condition=Q(ratio__isnull=True) | Q(ratio__gte=Decimal("0.0001"), ratio__lte=10000),
            name="action_ratio_in_range",
        ),
        models.CheckConstraint(condition=~kind["split"] | ~Q(ratio=1), name="action_split_not_1"),
        models.CheckConstraint(
            condition=(~kind["cash_dividend"] | Q(amount__gt=0, currency__regex=r"^[A-Z0-9]{3,5}$"))
            & (kind["cash_dividend"] | Q(amount__isnull=True, currency="", pay_date__isnull=True)),
            name="action_dividend_terms",
        ),
        models.CheckConstraint(
            condition=Q(pay_date__isnull=True) | Q(pay_date__gte=F("ex_date")),
            name="action_paid_on_or_after_ex_date",
        ),
        models.CheckConstraint(
            condition=(
                ~kind["spin_off"]
                | Q(new_instrument__isnull=False, cost_fraction__gt=0, cost_fraction__lt=1)
            )
            & (kind["spin_off"] | Q(new_instrument__isnull=True, cost_fraction__isnull=True)),
            name="action_spin_off_terms",
        ),
        models.CheckConstraint(
            condition=~Q(new_instrument=F("instrument")), name="action_spin_off_elsewhere"
        ),
        models.CheckConstraint(
            condition=(~kind["delisting"] | Q(final_price__gte=0))
            & (kind["delisting"] | Q(final_price__isnull=True)),
            name="action_delisting_terms",
        ),
        models.CheckConstraint(
            condition=Q(known_until__isnull=True) | Q(known_until__gte=F("known_from")),
            name="action_known_in_order",
        ),
        # One current action of a kind a day for an instrument: a restatement replaces it.
        models.UniqueConstraint(
            fields=["instrument", "kind", "ex_date"],
            condition=Q(known_until__isnull=True),
            name="action_one_of_a_kind_a_day",
        ),
    ]


@audited
class CorporateAction(models.Model):
    """A corporate action on an instrument, effective from its ex-date: a split (``ratio`` new
    shares for each old one; below 1 a reverse split), a cash dividend (``amount`` a share in
    ``currency``, paid on ``pay_date``), a stock dividend (``ratio`` new shares for each one
    held), a spin-off (``ratio`` shares of ``new_instrument`` for each one held, and the
    ``cost_fraction`` of the cost basis that moves to them) or a delisting (``final_price``).

    Prices are stored as traded; reads adjust them by these actions as the system knew them
    (marketdata/sql/actions/0012.sql). An action restated (other terms for the same ex-date)
    closes the version it replaces with ``known_until``, never deletes it: a run repeated
    as known at a moment adjusts as it did then."""

    Kind = ActionKind

    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="corporate_actions"
    )
    kind = models.CharField(max_length=14, choices=Kind.choices)
    ex_date = models.DateField(help_text="the first day the shares trade without the action")
    ratio = models.DecimalField(
        max_digits=20,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="split: new shares for each old one; stock dividend and spin-off: new shares"
        " for each one held",
    )
    amount = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, help_text="cash dividend a share"
    )
    currency = models.CharField(max_length=5, blank=True)
    pay_date = models.DateField(null=True, blank=True)
    new_instrument = models.ForeignKey(
        Instrument,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="spun_off_by",
        help_text="spin-off: the instrument whose shares holders receive",
    )
    cost_fraction = models.DecimalField(
        max_digits=11,
        decimal_places=10,
        null=True,
        blank=True,
        help_text="spin-off: the fraction of the cost basis that moves to the new shares",
    )
    final_price = models.DecimalField(
        max_digits=20, decimal_places=8, null=True, blank=True, help_text="delisting"
    )
    known_from = models.DateTimeField(
        db_default=TRANSACTION_START, help_text="when the system learnt it"
    )
    known_until = models.DateTimeField(
        null=True, blank=True, help_text="when a restatement replaced it (empty: current)"
    )

    class Meta:
        ordering = ["instrument", "ex_date", "kind"]
        indexes = [
            models.Index(fields=["instrument", "ex_date"], name="action_by_instrument"),
            models.Index(fields=["ex_date"], name="action_by_ex_date"),
        ]
        constraints = action_constraints()

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.ex_date}"


def finite(name: str, required: tuple[str, ...] = (), optional: tuple[str, ...] = ()):
    """NaN and infinities are not prices: PostgreSQL orders NaN above every number, so
    ``price > 0`` alone lets NaN through; ``x < 'Infinity'`` refuses both."""
    condition = Q(**{f"{field}__lt": INFINITY for field in required})
    for field in optional:
        condition &= Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__lt": INFINITY})
    return models.CheckConstraint(condition=condition, name=name)


def bar_constraints(prefix: str) -> list:
    """The rules every bar obeys, named after its table so that an error says which."""
    return [
        models.UniqueConstraint(fields=["instrument", "ts"], name=f"{prefix}_by_instrument_time"),
        finite(f"{prefix}_values_finite", ("open", "high", "low", "close"), ("volume", "vwap")),
        models.CheckConstraint(
            condition=Q(open__gt=0, high__gt=0, low__gt=0, close__gt=0),
            name=f"{prefix}_prices_positive",
        ),
        models.CheckConstraint(
            condition=Q(high__gte=F("open")) & Q(high__gte=F("close")) & Q(high__gte=F("low")),
            name=f"{prefix}_high_is_highest",
        ),
        models.CheckConstraint(
            condition=Q(low__lte=F("open")) & Q(low__lte=F("close")),
            name=f"{prefix}_low_is_lowest",
        ),
        models.CheckConstraint(
            condition=Q(volume__isnull=True) | Q(volume__gte=0),
            name=f"{prefix}_volume_not_negative",
        ),
        models.CheckConstraint(
            condition=Q(vwap__isnull=True) | Q(vwap__gt=0), name=f"{prefix}_vwap_positive"
        ),
        models.CheckConstraint(
            condition=Q(trade_count__isnull=True) | Q(trade_count__gte=0),
            name=f"{prefix}_trade_count_not_negative",
        ),
    ]


class Bar(models.Model):
    """OHLCV over one period starting at ``ts``; volume is unknown (NULL) in some feeds."""

    # Checked by statement, not by a row-by-row constraint: see qvp_site/db/references.py.
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    ts = models.DateTimeField()
    open = models.FloatField()
    high = models.FloatField()
    low = models.FloatField()
    close = models.FloatField()
    volume = models.FloatField(null=True, blank=True)
    vwap = models.FloatField(null=True, blank=True)
    trade_count = models.IntegerField(null=True, blank=True)
    known_from = known_from_field()

    objects = BarQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["instrument", "ts"]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.ts:%Y-%m-%d %H:%M} C {self.close}"


class MinuteBar(Bar):
    timeframe = "1m"

    class Meta(Bar.Meta):
        constraints = bar_constraints("minutebar")


class DailyBar(Bar):
    timeframe = "1d"

    class Meta(Bar.Meta):
        constraints = bar_constraints("dailybar")


class TickValues(models.Model):
    """A trade or a quote. Several share a timestamp: ``sequence`` (the trade id where the
    feed has one, else the position among rows of the same timestamp) keeps them apart."""

    class Kind(models.TextChoices):
        TRADE = "trade", "trade"
        QUOTE = "quote", "quote"

    class Side(models.TextChoices):
        BUY = "buy", "buy"
        SELL = "sell", "sell"
        UNKNOWN = "", "unknown"

    # Checked by statement, not by a row-by-row constraint: see qvp_site/db/references.py.
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    ts = models.DateTimeField()
    sequence = models.BigIntegerField()
    kind = models.CharField(max_length=5, choices=Kind.choices, default=Kind.TRADE)
    price = models.FloatField(null=True, blank=True)
    size = models.FloatField(null=True, blank=True)
    bid = models.FloatField(null=True, blank=True)
    ask = models.FloatField(null=True, blank=True)
    bid_size = models.FloatField(null=True, blank=True)
    ask_size = models.FloatField(null=True, blank=True)
    side = models.CharField(max_length=4, choices=Side.choices, blank=True, default="")
    known_from = known_from_field()

    class Meta:
        abstract = True
        ordering = ["instrument", "ts", "sequence"]

    def __str__(self) -> str:
        return f"{self.instrument_id} {self.ts:%Y-%m-%d %H:%M:%S.%f} #{self.sequence}"


class Tick(TickValues):
    objects = TickQuerySet.as_manager()

    class Meta(TickValues.Meta):
        # The latest quote at a time (as-of joins, qvp_site/db/asof.py) without reading the
        # trades between: the quotes alone, by instrument and time. Scanned backward for the
        # latest at or before a time (highest sequence first), forward for the first after.
        indexes = [
            models.Index(
                fields=["instrument", "ts", "sequence"],
                condition=Q(kind="quote"),
                name="tick_quote_by_time",
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["instrument", "ts", "sequence"], name="tick_by_instrument_time_sequence"
            ),
            models.CheckConstraint(
                condition=Q(kind__in=["trade", "quote"]), name="tick_kind_known"
            ),
            finite(
                "tick_values_finite",
                optional=("price", "size", "bid", "ask", "bid_size", "ask_size"),
            ),
            models.CheckConstraint(
                condition=Q(side__in=["buy", "sell", ""]), name="tick_side_known"
            ),
            models.CheckConstraint(
                condition=~Q(kind="trade") | Q(price__isnull=False, size__isnull=False),
                name="tick_trade_has_price_and_size",
            ),
            models.CheckConstraint(
                condition=Q(price__isnull=True) | Q(price__gt=0), name="tick_price_positive"
            ),
            models.CheckConstraint(
                condition=Q(size__isnull=True) | Q(size__gte=0), name="tick_size_not_negative"
            ),
            models.CheckConstraint(
                condition=(Q(bid__isnull=True) | Q(bid__gt=0))
                & (Q(ask__isnull=True) | Q(ask__gt=0)),
                name="tick_quote_prices_positive",
            ),
            models.CheckConstraint(
                condition=Q(bid__isnull=True) | Q(ask__isnull=True) | Q(bid__lte=F("ask")),
                name="tick_bid_not_above_ask",
            ),
            models.CheckConstraint(
                condition=(Q(bid_size__isnull=True) | Q(bid_size__gte=0))
                & (Q(ask_size__isnull=True) | Q(ask_size__gte=0)),
                name="tick_quote_sizes_not_negative",
            ),
        ]


class OptionQuoteValues(models.Model):
    """A quote of one option contract (underlying, expiry, strike, right) with its Greeks."""

    class Right(models.TextChoices):
        CALL = "C", "call"
        PUT = "P", "put"

    underlying = models.ForeignKey(  # checked by statement: see qvp_site/db/references.py
        Instrument, on_delete=models.PROTECT, db_index=False, db_constraint=False
    )
    ts = models.DateTimeField()
    expiry = models.DateField()
    strike = models.FloatField()
    right = models.CharField(max_length=1, choices=Right.choices)
    bid = models.FloatField(null=True, blank=True)
    ask = models.FloatField(null=True, blank=True)
    last = models.FloatField(null=True, blank=True)
    iv = models.FloatField("implied volatility", null=True, blank=True)
    delta = models.FloatField(null=True, blank=True)
    gamma = models.FloatField(null=True, blank=True)
    theta = models.FloatField(null=True, blank=True)
    vega = models.FloatField(null=True, blank=True)
    rho = models.FloatField(null=True, blank=True)
    known_from = known_from_field()

    objects = TimeRangeQuerySet.as_manager()

    class Meta:
        abstract = True
        ordering = ["underlying", "ts", "expiry", "strike", "right"]

    def __str__(self) -> str:
        contract = f"{self.underlying_id} {self.expiry} {self.strike}{self.right}"
        return f"{contract} @ {self.ts:%Y-%m-%d %H:%M}"


class OptionQuote(OptionQuoteValues):
    class Meta(OptionQuoteValues.Meta):
        # An underlying's quotes in time order, as its list pages and streams them: the key's
        # index starts with the contract, and would sort the whole chain for each page.
        indexes = [
            models.Index(
                fields=["underlying", "ts", "expiry", "strike", "right"], name="optionquote_by_time"
            )
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["underlying", "expiry", "strike", "right", "ts"],
                name="optionquote_by_contract_time",
            ),
            models.CheckConstraint(
                condition=Q(right__in=["C", "P"]), name="optionquote_right_c_or_p"
            ),
            models.CheckConstraint(condition=Q(strike__gt=0), name="optionquote_strike_positive"),
            finite(
                "optionquote_values_finite",
                ("strike",),
                ("bid", "ask", "last", "iv", "delta", "gamma", "theta", "vega", "rho"),
            ),
            models.CheckConstraint(
                condition=(Q(bid__isnull=True) | Q(bid__gte=0))
                & (Q(ask__isnull=True) | Q(ask__gt=0))
                & (Q(last__isnull=True) | Q(last__gte=0)),
                name="optionquote_prices_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(bid__isnull=True) | Q(ask__isnull=True) | Q(bid__lte=F("ask")),
                name="optionquote_bid_not_above_ask",
            ),
            models.CheckConstraint(
                condition=Q(iv__isnull=True) | Q(iv__gte=0), name="optionquote_iv_not_negative"
            ),
            models.CheckConstraint(
                condition=Q(delta__isnull=True) | Q(delta__gte=-1, delta__lte=1),
                name="optionquote_delta_within_1",
            ),
            models.CheckConstraint(
                condition=Q(gamma__isnull=True) | Q(gamma__gte=0),
                name="optionquote_gamma_not_negative",
            ),
        ]


@audited
class Ingest(models.Model):
    """One load of a file into the market-data tables (``ingest_bars``, ``ingest_ticks``):
    what was loaded, by whom, and what came of it. Refused and failed loads are kept too,
    with the reason, so that the admin answers "was this file loaded, and when?".

    The revisions a load kept name it, so its record is the load's word: every change is
    audited, and the database keeps what identifies it, holds a finished load final and
    refuses deleting one (marketdata/sql/ingests/0010.sql)."""

    class Kind(models.TextChoices):
        BARS_1M = "bars-1m", "1-minute bars"
        BARS_1D = "bars-1d", "daily bars"
        TICKS = "ticks", "ticks"

    class Status(models.TextChoices):
        RUNNING = "running", "running"
        LOADED = "loaded", "loaded"
        REFUSED = "refused", "refused"
        FAILED = "failed", "failed"

    file_name = models.CharField(max_length=255)
    path = models.TextField(blank=True)
    sha256 = models.CharField("SHA-256", max_length=64, blank=True)
    kind = models.CharField(max_length=8, choices=Kind.choices)
    symbol = models.CharField(max_length=64)
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, null=True, blank=True, related_name="ingests"
    )
    instrument_created = models.BooleanField(default=False)
    rows_read = models.BigIntegerField(default=0)
    inserted = models.BigIntegerField(default=0)
    updated = models.BigIntegerField(default=0)
    unchanged = models.BigIntegerField(default=0)
    rejected = models.BigIntegerField(default=0)
    rejects_file = models.TextField(blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.RUNNING)
    # A user when the load came through the site; the OS account for a management command.
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    os_user = models.CharField("OS user", max_length=150, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error_summary = models.TextField(blank=True)
    # A vendor's file already split-adjusted (Yahoo's Close): the loader divided out the splits
    # with ex-dates up to this date known when it ran, so that prices are stored as traded and
    # a later split adjusts them once. Empty: the file held prices as traded.
    adjusted_through = models.DateField(
        null=True,
        blank=True,
        help_text="the file was split-adjusted by its vendor through this date",
    )

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["-started_at"], name="ingest_newest_first")]
        constraints = [
            models.CheckConstraint(
                condition=Q(kind__in=["bars-1m", "bars-1d", "ticks"]), name="ingest_kind_known"
            ),
            models.CheckConstraint(
                condition=Q(status__in=["running", "loaded", "refused", "failed"]),
                name="ingest_status_known",
            ),
            models.CheckConstraint(
                condition=Q(
                    rows_read__gte=0,
                    inserted__gte=0,
                    updated__gte=0,
                    unchanged__gte=0,
                    rejected__gte=0,
                ),
                name="ingest_counts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.file_name} -> {self.symbol} {self.kind} ({self.status})"

    @property
    def seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return (self.finished_at - self.started_at).total_seconds()


class Revision(models.Model):
    """A row of market data as it stood before a load changed it or a deletion removed it: its
    values, known from ``known_from`` until ``known_until`` (when the change was learnt), and
    who changed it. Written only by the owner's functions of marketdata/sql/revisions/0009.sql,
    in the statement that makes the change; read by ``known_at`` (marketdata/querysets.py)."""

    class Change(models.TextChoices):
        REVISED = "revised", "revised"
        DELETED = "deleted", "deleted"

    row_id = models.BigIntegerField(help_text="the id of the row as it stood")
    known_until = models.DateTimeField(help_text="when the system learnt of the change")
    change = models.CharField(max_length=7, choices=Change.choices)
    # The load that brought the new values (none for a deletion).
    ingest = models.ForeignKey(
        Ingest, on_delete=models.PROTECT, null=True, blank=True, related_name="+"
    )
    # Who acted, as the audit trail names them; the user's id where a user did; the database
    # role that ran the change (the application's, or the owner's for a command).
    actor = models.CharField(max_length=150, blank=True)
    db_role = models.CharField("database role", max_length=63, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        null=True,
        blank=True,
        related_name="+",
    )

    class Meta:
        abstract = True

    @staticmethod
    def constraints_for(prefix: str) -> list:
        return [
            models.CheckConstraint(
                condition=Q(change__in=["revised", "deleted"]), name=f"{prefix}_change_known"
            ),
            models.CheckConstraint(
                condition=Q(known_until__gte=F("known_from")), name=f"{prefix}_known_in_order"
            ),
        ]


class MinuteBarRevision(Bar, Revision):
    class Meta(Bar.Meta):
        ordering = ["instrument", "ts", "known_until"]
        indexes = [models.Index(fields=["instrument", "ts"], name="minutebarrevision_by_time")]
        constraints = Revision.constraints_for("minutebarrevision")


class DailyBarRevision(Bar, Revision):
    class Meta(Bar.Meta):
        ordering = ["instrument", "ts", "known_until"]
        indexes = [models.Index(fields=["instrument", "ts"], name="dailybarrevision_by_time")]
        constraints = Revision.constraints_for("dailybarrevision")


class TickRevision(TickValues, Revision):
    class Meta(TickValues.Meta):
        ordering = ["instrument", "ts", "sequence", "known_until"]
        indexes = [models.Index(fields=["instrument", "ts"], name="tickrevision_by_time")]
        constraints = Revision.constraints_for("tickrevision")


class OptionQuoteRevision(OptionQuoteValues, Revision):
    class Meta(OptionQuoteValues.Meta):
        ordering = ["underlying", "ts", "expiry", "strike", "right", "known_until"]
        indexes = [models.Index(fields=["underlying", "ts"], name="optionquoterevision_by_time")]
        constraints = Revision.constraints_for("optionquoterevision")


# Each market-data model's revisions, and the other way round.
REVISIONS: dict[type[models.Model], type[Revision]] = {
    MinuteBar: MinuteBarRevision,
    DailyBar: DailyBarRevision,
    Tick: TickRevision,
    OptionQuote: OptionQuoteRevision,
}
