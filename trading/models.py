"""Trading records: accounts, orders, executions, positions, cash, portfolio snapshots, backtests.

The database keeps the books (see ``trading/sql/books/0007.sql``): an execution's triggers move its
order's filled quantity and status, the position and the cash ledger in the same transaction,
and refuse what breaks a rule, whichever door the row came through. Money and quantities are
NUMERIC. Orders and executions are ordinary tables (unique keys, foreign keys); portfolio
snapshots are a time-series table. Nothing here is ever deleted automatically.
"""

from __future__ import annotations

from decimal import Decimal
from typing import TypedDict

from django.conf import settings
from django.contrib.auth.models import Group
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Now

from marketdata.models import Instrument
from qvp_site.db.audit import audited
from trading.querysets import AccountQuerySet, AccountScopedQuerySet


class Digits(TypedDict):
    """A DecimalField's size, spread into its arguments."""

    max_digits: int
    decimal_places: int


QUANTITY: Digits = {"max_digits": 20, "decimal_places": 8}
PRICE: Digits = {"max_digits": 20, "decimal_places": 8}
MONEY: Digits = {"max_digits": 24, "decimal_places": 8}
# Average cost keeps more places than a price: it is a running weighted mean.
AVERAGE: Digits = {"max_digits": 28, "decimal_places": 12}


class Side(models.TextChoices):
    BUY = "buy", "buy"
    SELL = "sell", "sell"


def check(name: str, condition: Q) -> models.CheckConstraint:
    return models.CheckConstraint(condition=condition, name=name)


@audited
class Account(models.Model):
    name = models.CharField(max_length=100, unique=True)
    base_currency = models.CharField(max_length=3, default="USD")
    # Users see and trade the accounts their groups are granted (row-level security too).
    groups = models.ManyToManyField(Group, blank=True, related_name="trading_accounts")
    created_at = models.DateTimeField(db_default=Now())

    objects = AccountQuerySet.as_manager()

    class Meta:
        ordering = ["name"]
        constraints = [
            check("account_base_currency_code", Q(base_currency__regex=r"^[A-Z]{3}$")),
            check("account_name_not_empty", ~Q(name="")),
        ]

    def __str__(self) -> str:
        return self.name


# Which groups see an account: part of the record (trading 0008).
audited(Account.groups.through)


@audited
class Order(models.Model):
    class Type(models.TextChoices):
        MARKET = "market", "market"
        LIMIT = "limit", "limit"
        STOP = "stop", "stop"
        STOP_LIMIT = "stop_limit", "stop-limit"

    class TimeInForce(models.TextChoices):
        DAY = "day", "day"
        GTC = "gtc", "good till cancelled"
        IOC = "ioc", "immediate or cancel"
        FOK = "fok", "fill or kill"

    class Status(models.TextChoices):
        NEW = "new", "new"
        PARTIALLY_FILLED = "partially_filled", "partially filled"
        FILLED = "filled", "filled"
        CANCELLED = "cancelled", "cancelled"
        REJECTED = "rejected", "rejected"
        EXPIRED = "expired", "expired"

    # Legal status changes a user may ask for; fills and busts move new / partially filled /
    # filled themselves (the database's trg_order_lifecycle holds the same table).
    TRANSITIONS = {
        Status.NEW: {Status.CANCELLED, Status.REJECTED, Status.EXPIRED},
        Status.PARTIALLY_FILLED: {Status.CANCELLED, Status.EXPIRED},
    }
    OPEN = (Status.NEW, Status.PARTIALLY_FILLED)

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="orders")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    client_order_id = models.CharField(max_length=64)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, choices=Type.choices, default=Type.MARKET)
    quantity = models.DecimalField(**QUANTITY)
    limit_price = models.DecimalField(**PRICE, null=True, blank=True)
    stop_price = models.DecimalField(**PRICE, null=True, blank=True)
    time_in_force = models.CharField(
        max_length=3, choices=TimeInForce.choices, default=TimeInForce.DAY
    )
    # Kept by the executions' trigger; nobody else may write them.
    filled_quantity = models.DecimalField(**QUANTITY, default=Decimal(0), editable=False)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.NEW)
    status_reason = models.CharField(max_length=200, blank=True)
    # Who decided the order and at what price, for transaction cost analysis (trading/tca.py).
    # Database defaults, so that the books' SQL inserts naming their columns need not name them.
    strategy = models.CharField(
        max_length=100, blank=True, db_default="", help_text="the strategy that decided it"
    )
    agent = models.ForeignKey(
        "signals.Agent",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        help_text="the agent that decided it",
    )
    decision_price = models.DecimalField(
        **PRICE,
        null=True,
        blank=True,
        help_text="the price when the decision was taken (implementation shortfall; empty:"
        " the arrival price)",
    )
    created_at = models.DateTimeField(db_default=Now())
    updated_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "client_order_id"], name="order_client_id_unique_per_account"
            ),
            check("order_side_known", Q(side__in=Side.values)),
            check("order_type_known", Q(order_type__in=["market", "limit", "stop", "stop_limit"])),
            check("order_time_in_force_known", Q(time_in_force__in=["day", "gtc", "ioc", "fok"])),
            check(
                "order_status_known",
                Q(
                    status__in=[
                        "new",
                        "partially_filled",
                        "filled",
                        "cancelled",
                        "rejected",
                        "expired",
                    ]
                ),
            ),
            check("order_quantity_positive", Q(quantity__gt=0)),
            check(
                "order_filled_within_quantity",
                Q(filled_quantity__gte=0, filled_quantity__lte=F("quantity")),
            ),
            check("order_limit_price_positive", Q(limit_price__isnull=True) | Q(limit_price__gt=0)),
            check("order_stop_price_positive", Q(stop_price__isnull=True) | Q(stop_price__gt=0)),
            check(
                "order_prices_match_type",
                Q(order_type="market", limit_price__isnull=True, stop_price__isnull=True)
                | Q(order_type="limit", limit_price__isnull=False, stop_price__isnull=True)
                | Q(order_type="stop", limit_price__isnull=True, stop_price__isnull=False)
                | Q(order_type="stop_limit", limit_price__isnull=False, stop_price__isnull=False),
            ),
            check("order_client_id_not_empty", ~Q(client_order_id="")),
            check(
                "order_decision_price_positive",
                Q(decision_price__isnull=True) | Q(decision_price__gt=0),
            ),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="order_recent_per_account_idx"),
            models.Index(
                fields=["status"],
                name="order_open_idx",
                condition=Q(status__in=["new", "partially_filled"]),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.client_order_id} {self.side} {self.quantity} {self.instrument_id}"

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN


@audited
class Execution(models.Model):
    class Kind(models.TextChoices):
        FILL = "fill", "fill"
        BUST = "bust", "bust (cancels an execution)"
        CORRECTION = "correction", "correction (replaces an execution)"

    class Liquidity(models.TextChoices):
        ADDED = "added", "added (maker)"
        REMOVED = "removed", "removed (taker)"
        ROUTED = "routed", "routed"
        AUCTION = "auction", "auction"
        UNKNOWN = "unknown", "unknown"

    # Unique within the account (execution_exec_id_unique_per_account): another account's exec
    # ids neither block this one's nor can be learnt from it.
    exec_id = models.CharField(max_length=64)
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="executions")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="executions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    side = models.CharField(max_length=4, choices=Side.choices)
    # Signed: buys positive, sells negative.
    quantity = models.DecimalField(**QUANTITY)
    price = models.DecimalField(**PRICE)
    fee = models.DecimalField(**MONEY, default=Decimal(0))
    liquidity = models.CharField(max_length=8, choices=Liquidity.choices, default="unknown")
    # Where it traded: the venue's MIC or name ('' unknown). A database default, so that the
    # books' SQL inserts naming their columns (a bust, a correction) need not name it.
    venue = models.CharField(
        max_length=16, blank=True, db_default="", help_text="the venue's MIC or name"
    )
    executed_at = models.DateTimeField()
    kind = models.CharField(max_length=10, choices=Kind.choices, default=Kind.FILL)
    # The execution a bust cancels or a correction replaces (each at most once).
    supersedes = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="superseded_by"
    )
    reason = models.CharField(max_length=200, blank=True)
    # Where this execution stands in its position's history, and where its order and position
    # stood after it (set by the database: the books' running state as booked, kept for the
    # record; a corporate action applied later to shares held before it does not restate it).
    position_sequence = models.BigIntegerField(null=True, editable=False)
    order_filled_after = models.DecimalField(**QUANTITY, null=True, editable=False)
    position_quantity_after = models.DecimalField(**QUANTITY, null=True, editable=False)
    position_average_cost_after = models.DecimalField(**AVERAGE, null=True, editable=False)
    position_realized_pnl_after = models.DecimalField(**MONEY, null=True, editable=False)
    created_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-executed_at", "-id"]
        constraints = [
            check("execution_quantity_not_zero", ~Q(quantity=0)),
            check(
                "execution_side_matches_sign",
                Q(side="buy", quantity__gt=0) | Q(side="sell", quantity__lt=0),
            ),
            check("execution_price_positive", Q(price__gt=0)),
            # A bust refunds the fee of the execution it cancels: only a bust's fee is negative.
            check("execution_fee_not_negative", Q(fee__gte=0) | Q(kind="bust")),
            check("execution_kind_known", Q(kind__in=["fill", "bust", "correction"])),
            check(
                "execution_liquidity_known",
                Q(liquidity__in=["added", "removed", "routed", "auction", "unknown"]),
            ),
            check(
                "execution_supersedes_only_bust_or_correction",
                Q(kind="fill", supersedes__isnull=True)
                | Q(kind__in=["bust", "correction"], supersedes__isnull=False),
            ),
            check("execution_exec_id_not_empty", ~Q(exec_id="")),
            # exec_id first, so that the index also serves a search by exec id alone.
            models.UniqueConstraint(
                fields=["exec_id", "account"], name="execution_exec_id_unique_per_account"
            ),
        ]
        indexes = [
            models.Index(fields=["order", "executed_at"], name="execution_per_order_idx"),
            # The order's latest execution, where the books read how much is filled.
            models.Index(fields=["order", "position_sequence"], name="execution_order_latest_idx"),
            models.Index(fields=["account", "-executed_at"], name="execution_recent_per_acct_idx"),
            models.Index(
                fields=["account", "instrument", "position_sequence"],
                name="execution_position_replay_idx",
            ),
            # A position's executions by time: what the corporate actions ask (traded since
            # an ex moment, existed before it; trading/sql/actions/0014.sql).
            models.Index(
                fields=["account", "instrument", "executed_at"],
                name="execution_position_time_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.exec_id} {self.quantity}@{self.price}"


@audited
class Position(models.Model):
    """Kept by the executions' trigger and the corporate actions' entries (ActionEntry):
    the replay of both, in its sequence; read-only everywhere else."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="positions")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    quantity = models.DecimalField(**QUANTITY, default=Decimal(0))
    average_cost = models.DecimalField(**AVERAGE, default=Decimal(0))
    realized_pnl = models.DecimalField(**MONEY, default=Decimal(0))
    # How many executions have been applied to it: the next one gets last_sequence + 1.
    last_sequence = models.BigIntegerField(default=0)
    last_execution_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["account", "instrument"]
        constraints = [
            models.UniqueConstraint(
                fields=["account", "instrument"], name="position_one_per_account_instrument"
            ),
            check("position_average_cost_not_negative", Q(average_cost__gte=0)),
            check("position_flat_has_no_cost", ~Q(quantity=0) | Q(average_cost=0)),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.instrument_id}: {self.quantity}"


@audited
class CashEntry(models.Model):
    """A movement of cash: deposits, withdrawals and adjustments by people; the cash side and
    fee of each execution by the database (kinds ``trade`` and ``fee``), and what corporate
    actions pay (``dividend``, ``in_lieu`` for fractional shares, ``delisting``: ActionEntry)."""

    class Kind(models.TextChoices):
        DEPOSIT = "deposit", "deposit"
        WITHDRAWAL = "withdrawal", "withdrawal"
        ADJUSTMENT = "adjustment", "adjustment"
        TRADE = "trade", "trade"
        FEE = "fee", "fee"
        # Booked by corporate actions (trading_apply_actions), like trade and fee by executions.
        DIVIDEND = "dividend", "dividend"
        IN_LIEU = "in_lieu", "cash in lieu"
        DELISTING = "delisting", "delisting"

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="cash_entries")
    kind = models.CharField(max_length=10, choices=Kind.choices)
    # Signed: money in positive, money out negative.
    amount = models.DecimalField(**MONEY)
    # The instrument's currency for an execution's cash (USDT for a crypto pair), else the
    # account's; snapshots convert every currency to the account's base through FX rates.
    currency = models.CharField(max_length=5)
    execution = models.ForeignKey(
        Execution, on_delete=models.PROTECT, null=True, blank=True, related_name="cash_entries"
    )
    entry_at = models.DateTimeField()
    note = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-entry_at", "-id"]
        verbose_name_plural = "cash entries"
        constraints = [
            check(
                "cash_kind_known",
                Q(
                    kind__in=[
                        "deposit",
                        "withdrawal",
                        "adjustment",
                        "trade",
                        "fee",
                        "dividend",
                        "in_lieu",
                        "delisting",
                    ]
                ),
            ),
            check("cash_amount_not_zero", ~Q(amount=0)),
            check("cash_deposit_positive", ~Q(kind="deposit") | Q(amount__gt=0)),
            check("cash_withdrawal_negative", ~Q(kind="withdrawal") | Q(amount__lt=0)),
            check(
                "cash_execution_entries_linked",
                Q(kind__in=["trade", "fee"], execution__isnull=False)
                | (~Q(kind__in=["trade", "fee"]) & Q(execution__isnull=True)),
            ),
            check("cash_currency_code", Q(currency__regex=r"^[A-Z0-9]{3,5}$")),
        ]
        indexes = [
            models.Index(fields=["account", "currency", "entry_at"], name="cash_balance_asof_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.amount} {self.currency}"


@audited
class ActionEntry(models.Model):
    """What a corporate action did to one position of an account: written by the owner's
    ``trading_apply_actions`` alone (trading/sql/actions/0014.sql), with the position it moves
    and the cash it books, in the position's sequence like an execution. A position is the
    replay of its executions and its entries (``trading.replay``). One per account, action and
    position: a spin-off moves two (the old instrument's and the new one's)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="action_entries")
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="+", help_text="the position moved"
    )
    action = models.ForeignKey(
        "marketdata.CorporateAction", on_delete=models.PROTECT, related_name="entries"
    )
    # Its slot in the position's sequence: the next after what was booked before it. The
    # replay places it at its ex moment (trading/sql/books/0014.sql): an action applied late
    # comes before the executions dated after its ex moment, though booked before it.
    position_sequence = models.BigIntegerField()
    ex_at = models.DateTimeField(
        "ex moment",
        help_text="the ex-date's first moment: the earlier of 00:00 UTC and midnight"
        " at the instrument's exchange",
    )
    quantity_before = models.DecimalField(**QUANTITY)
    quantity_after = models.DecimalField(**QUANTITY)
    average_cost_before = models.DecimalField(**AVERAGE)
    average_cost_after = models.DecimalField(**AVERAGE)
    realized_pnl = models.DecimalField(
        **MONEY, default=Decimal(0), help_text="on shares paid in lieu, or a delisting"
    )
    price = models.DecimalField(
        **PRICE, null=True, blank=True, help_text="what cash in lieu or a delisting paid a share"
    )
    cash = models.DecimalField(**MONEY, null=True, blank=True, help_text="signed, as booked")
    cash_entry = models.OneToOneField(
        CashEntry, on_delete=models.PROTECT, null=True, blank=True, related_name="action_entry"
    )
    applied_at = models.DateTimeField(db_default=Now())

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-ex_at", "account", "instrument"]
        verbose_name_plural = "action entries"
        constraints = [
            models.UniqueConstraint(
                fields=["account", "action", "instrument"], name="actionentry_once"
            ),
            check(
                "actionentry_cash_booked",
                Q(cash__isnull=True, cash_entry__isnull=True)
                | Q(cash__isnull=False, cash_entry__isnull=False),
            ),
        ]
        indexes = [
            models.Index(
                fields=["account", "instrument", "position_sequence"],
                name="actionentry_position_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.instrument_id}: action {self.action_id}"


class SnapshotValues(models.Model):
    """What a portfolio snapshot states: an account's value at a time, in its base currency."""

    ts = models.DateTimeField()
    currency = models.CharField(max_length=3)
    cash = models.DecimalField(**MONEY)
    market_value = models.DecimalField(**MONEY)
    nav = models.DecimalField(**MONEY)
    gross_exposure = models.DecimalField(**MONEY)
    net_exposure = models.DecimalField(**MONEY)
    # NAV change since the previous snapshot, less deposits and withdrawals in between.
    daily_pnl = models.DecimalField(**MONEY, null=True)
    # Holdings that had no price or FX rate at ts (left out of market value, and named).
    unpriced = models.JSONField(default=list, blank=True)
    # What taking it again needs: the books and bars as known then, and the code that ran.
    known_at = models.DateTimeField(
        null=True, blank=True, help_text="the knowledge time it was computed at (null: unrecorded)"
    )
    code_version = models.CharField(
        max_length=100, blank=True, help_text="the code that computed it"
    )
    # When the system stored these numbers: a snapshot taken again with other numbers keeps
    # the ones it replaces (PortfolioSnapshotRevision), so a risk run reads the snapshots as
    # they stood at its knowledge time (trading/sql/snapshots/0012.sql).
    known_from = models.DateTimeField(
        db_default=Now(), help_text="when the system stored these numbers"
    )

    class Meta:
        abstract = True


class PortfolioSnapshot(SnapshotValues):
    """An account's value at a time, in its base currency (a time-series table)."""

    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="snapshots")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-ts"]
        constraints = [
            models.UniqueConstraint(fields=["account", "ts"], name="snapshot_by_account_time"),
            check("snapshot_nav_is_cash_plus_value", Q(nav=F("cash") + F("market_value"))),
            check("snapshot_gross_not_negative", Q(gross_exposure__gte=0)),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M} NAV {self.nav}"


class PortfolioSnapshotRevision(SnapshotValues):
    """A snapshot as it stood before it was taken again with other numbers, or deleted: its
    values, stored from ``known_from`` until ``known_until``, and who changed it. Written only
    by the snapshot table's trigger (trading/sql/snapshots/0012.sql), whoever changes a row."""

    class Change(models.TextChoices):
        REVISED = "revised", "revised"
        DELETED = "deleted", "deleted"

    row_id = models.BigIntegerField(help_text="the id of the snapshot as it stood")
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    known_until = models.DateTimeField(help_text="when it was replaced")
    change = models.CharField(max_length=7, choices=Change.choices)
    # Who acted, as the audit trail names them, and the database role that ran the change.
    actor = models.CharField(max_length=150, blank=True)
    db_role = models.CharField("database role", max_length=63, blank=True)

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["account", "ts", "known_until"]
        indexes = [models.Index(fields=["account", "ts"], name="snapshotrevision_by_time")]
        constraints = [
            check("snapshotrevision_change_known", Q(change__in=["revised", "deleted"])),
            check("snapshotrevision_known_in_order", Q(known_until__gte=F("known_from"))),
        ]

    def __str__(self) -> str:
        return f"{self.account_id} {self.ts:%Y-%m-%d %H:%M} NAV {self.nav} until {self.known_until}"


class BacktestRun(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "queued"
        RUNNING = "running", "running"
        SUCCEEDED = "succeeded", "succeeded"
        FAILED = "failed", "failed"

    strategy = models.CharField(max_length=100)
    parameters = models.JSONField(default=dict, blank=True)
    period_start = models.DateTimeField()
    period_end = models.DateTimeField()
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    initial_capital = models.DecimalField(**MONEY, default=Decimal(1_000_000))
    total_return = models.FloatField(null=True, blank=True)
    sharpe = models.FloatField(null=True, blank=True)
    sortino = models.FloatField(null=True, blank=True)
    max_drawdown = models.FloatField(null=True, blank=True)
    hit_rate = models.FloatField(null=True, blank=True)
    turnover = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True
    )
    created_at = models.DateTimeField(db_default=Now())
    finished_at = models.DateTimeField(null=True, blank=True)
    # What a rerun needs to repeat the run exactly (trading/reruns.py).
    known_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="the knowledge time the run read its market data as known at; empty: not"
        " recorded (a run made before runs recorded it), and such a run cannot be rerun",
    )
    code_version = models.CharField(
        max_length=100,
        blank=True,
        default="",
        help_text="the code that made the run (a deployment's version or a git commit)",
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            check("backtest_period_ordered", Q(period_end__gt=F("period_start"))),
            check(
                "backtest_status_known",
                Q(status__in=["queued", "running", "succeeded", "failed"]),
            ),
            check(
                "backtest_max_drawdown_fraction",
                Q(max_drawdown__isnull=True) | Q(max_drawdown__gte=0, max_drawdown__lte=1),
            ),
            check(
                "backtest_hit_rate_fraction",
                Q(hit_rate__isnull=True) | Q(hit_rate__gte=0, hit_rate__lte=1),
            ),
            check("backtest_turnover_not_negative", Q(turnover__isnull=True) | Q(turnover__gte=0)),
            check("backtest_capital_positive", Q(initial_capital__gt=0)),
        ]
        indexes = [
            models.Index(fields=["strategy", "-created_at"], name="backtest_per_strategy_idx")
        ]

    def __str__(self) -> str:
        return f"{self.strategy} #{self.pk} ({self.status})"


class BacktestTrade(models.Model):
    run = models.ForeignKey(BacktestRun, on_delete=models.CASCADE, related_name="trades")
    instrument = models.ForeignKey(Instrument, on_delete=models.PROTECT, related_name="+")
    ts = models.DateTimeField()
    side = models.CharField(max_length=4, choices=Side.choices)
    quantity = models.DecimalField(**QUANTITY)
    price = models.DecimalField(**PRICE)
    fee = models.DecimalField(**MONEY, default=Decimal(0))
    pnl = models.DecimalField(**MONEY, null=True, blank=True)

    class Meta:
        ordering = ["run", "ts", "id"]
        constraints = [
            check("backtest_trade_quantity_not_zero", ~Q(quantity=0)),
            check(
                "backtest_trade_side_matches_sign",
                Q(side="buy", quantity__gt=0) | Q(side="sell", quantity__lt=0),
            ),
            check("backtest_trade_price_positive", Q(price__gt=0)),
            check("backtest_trade_fee_not_negative", Q(fee__gte=0)),
        ]
        indexes = [models.Index(fields=["run", "ts"], name="backtest_trades_in_order_idx")]

    def __str__(self) -> str:
        return f"{self.run_id} {self.side} {self.quantity}@{self.price}"


class ExecutionCost(models.Model):
    """What an execution cost (transaction cost analysis): its arrival price and slippage, the
    half-spread it paid and its markouts, one row per live execution, kept by
    ``trading_tca_refresh`` (trading/sql/tca/0016.sql; trading/tca.py says what each number
    means), with its venue and its order's strategy and agent to group by. A time-series
    table by ``executed_at``; a bust or a correction of the execution takes its row out in its
    own transaction, and a market-data revision queues its restatement (``tca --pending``)."""

    class ArrivalSource(models.TextChoices):
        QUOTE_MID = "quote_mid", "quote mid"
        TRADE = "trade", "last trade"
        BAR_CLOSE = "bar_close", "minute bar close"
        NONE = "", "no market data"

    class MarkoutSource(models.TextChoices):
        TICKS = "ticks", "quote ticks"
        MINUTE_BARS = "minute_bars", "minute bars"
        NONE = "", "no market data"

    execution = models.ForeignKey(
        Execution, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    order = models.ForeignKey(Order, on_delete=models.PROTECT, related_name="+", db_index=False)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    instrument = models.ForeignKey(
        Instrument, on_delete=models.PROTECT, related_name="+", db_index=False
    )
    side = models.CharField(max_length=4, choices=Side.choices)
    # Signed as the execution's: buys positive, sells negative.
    quantity = models.DecimalField(**QUANTITY)
    price = models.DecimalField(**PRICE)
    notional = models.DecimalField(**MONEY, help_text="|quantity| x price")
    liquidity = models.CharField(max_length=8, blank=True)
    # The execution's venue and its order's strategy and agent, copied for the aggregates.
    venue = models.CharField(max_length=16, blank=True, db_default="")
    strategy = models.CharField(max_length=100, blank=True, db_default="")
    agent = models.ForeignKey(
        "signals.Agent",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    executed_at = models.DateTimeField()
    arrival_at = models.DateTimeField(help_text="the order's creation (its first fill if later)")
    arrival_price = models.FloatField(null=True, blank=True)
    arrival_source = models.CharField(max_length=9, choices=ArrivalSource.choices, blank=True)
    slippage_bps = models.FloatField(null=True, blank=True)
    mid_at_fill = models.FloatField(null=True, blank=True)
    spread_paid_bps = models.FloatField(null=True, blank=True)
    markout_1s_bps = models.FloatField(null=True, blank=True)
    markout_10s_bps = models.FloatField(null=True, blank=True)
    markout_1m_bps = models.FloatField(null=True, blank=True)
    markout_5m_bps = models.FloatField(null=True, blank=True)
    markout_30m_bps = models.FloatField(null=True, blank=True)
    markout_1d_bps = models.FloatField(null=True, blank=True)
    markout_source = models.CharField(max_length=11, choices=MarkoutSource.choices, blank=True)
    computed_at = models.DateTimeField()
    known_at = models.DateTimeField(help_text="the knowledge time market data was read at")

    objects = AccountScopedQuerySet.as_manager()

    class Meta:
        ordering = ["-executed_at", "-execution"]
        constraints = [
            models.UniqueConstraint(
                fields=["execution", "executed_at"], name="executioncost_per_execution"
            ),
            check(
                "executioncost_arrival_source_known",
                Q(arrival_source__in=["quote_mid", "trade", "bar_close", ""]),
            ),
            check(
                "executioncost_markout_source_known",
                Q(markout_source__in=["ticks", "minute_bars", ""]),
            ),
        ]
        indexes = [
            models.Index(fields=["account", "executed_at"], name="executioncost_by_account"),
            models.Index(fields=["instrument", "executed_at"], name="executioncost_by_instrument"),
        ]

    def __str__(self) -> str:
        return f"{self.execution_id} slippage {self.slippage_bps} bps"
