"""The trading records in the admin, for operators and auditors.

The database keeps the books, and the admin is one more door to them: what the triggers and
constraints refuse is shown as the rule's name and reason on the form or the changelist, never
as a server error. Each user sees the accounts ``visible_to`` grants and picks among those
``tradable_by`` grants; auditors see everything and change nothing (``AuditorsReadOnly``).

Kept by the database, so never edited here: positions (read-only for everyone), executions
(added; busted by an action that writes the bust record), cash entries (people add deposits,
withdrawals and adjustments), orders (added; cancelled by an action that the legal-transition
rule judges). Large tables get no full counts, no facet counts, raw id fields and lists ordered
by an indexed key.
"""

from __future__ import annotations

from uuid import uuid4

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import ValidationError
from django.db import DatabaseError, router, transaction
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.html import format_html

from qvp_site.admin_access import is_auditor_request
from qvp_site.admin_bases import AuditorsReadOnly, CsvExport, NotCounted, history_url
from qvp_site.refusals import RuleRefusal
from trading import books
from trading.models import (
    Account,
    ActionEntry,
    BacktestRun,
    BacktestTrade,
    CashEntry,
    Execution,
    ExecutionCost,
    Order,
    PortfolioSnapshot,
    PortfolioSnapshotRevision,
    Position,
)

# SQLSTATEs that mean "the database refused this row" rather than "something broke":
# integrity violations (class 23, the triggers' check_violation among them), a privilege or
# row-level security refusal, and a plain RAISE EXCEPTION.
REFUSAL_STATES = ("23", "42501", "P0001")
_REFUSAL = "_qvp_database_refusal"


def refusal_message(error: DatabaseError | RuleRefusal) -> str | None:
    """The refusal as a person should read it, naming the rule; None when ``error`` is not a
    refusal (a lost connection, say, stays a server error). A rule checked ahead of the
    database (``trading.books``) reads as the database's own."""
    if isinstance(error, RuleRefusal):
        return f"Refused by the database rule {error.rule}: {error.message}"
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None) or ""
    if not sqlstate.startswith(REFUSAL_STATES):
        return None
    reason = cause.diag.message_primary or str(cause)
    rule = cause.diag.constraint_name
    return f"Refused by the database rule {rule}: {reason}" if rule else f"Refused: {reason}"


def _refused_form(form_class: type[forms.ModelForm], message: str) -> type[forms.ModelForm]:
    """``form_class`` carrying the database's refusal as its error, so the admin shows the
    form again with what was posted."""

    class RefusedForm(form_class):
        def clean(self):
            super().clean()
            raise ValidationError(message)

    return RefusedForm


class TradingAdmin(CsvExport, AuditorsReadOnly, NotCounted, admin.ModelAdmin):
    """Large-table defaults, the database's refusals as form errors, and the change page's
    fields: ``add_fields`` on the add form, every field (and a link to the record's audit
    history when its table is audited) on the change page."""

    add_fields: list[str] = []
    changeable_fields: list[str] = []
    audited = False
    ordering = ["-id"]

    def get_fields(self, request, obj=None) -> list[str]:
        if obj is None:
            return self.add_fields
        opts = self.model._meta
        fields = [f.name for f in (*opts.fields, *opts.many_to_many)]
        return [*fields, "audit_history"] if self.audited else fields

    def get_readonly_fields(self, request, obj=None) -> list[str]:
        if obj is None:
            return []
        return [f for f in self.get_fields(request, obj) if f not in self.changeable_fields]

    @admin.display(description="history")
    def audit_history(self, obj) -> str:
        return format_html(
            '<a href="{}">audit entries of this record</a>',
            history_url(obj._meta.db_table, obj.pk),
        )

    def changeform_view(self, request, object_id=None, form_url="", extra_context=None):
        try:
            # A savepoint: the refused statement is undone and the request's transaction,
            # which still has to render the form, stays usable.
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().changeform_view(request, object_id, form_url, extra_context)
        except DatabaseError as error:
            message = refusal_message(error)
            if message is None:
                raise
        setattr(request, _REFUSAL, message)
        return super().changeform_view(request, object_id, form_url, extra_context)

    def delete_view(self, request, object_id, extra_context=None):
        try:
            with transaction.atomic(using=router.db_for_write(self.model)):
                return super().delete_view(request, object_id, extra_context)
        except DatabaseError as error:
            message = refusal_message(error)
            if message is None:
                raise
        self.message_user(request, message, messages.ERROR)
        opts = self.opts
        return redirect(f"admin:{opts.app_label}_{opts.model_name}_change", object_id)

    def get_form(self, request, obj=None, change=False, **kwargs):
        form = super().get_form(request, obj, change, **kwargs)
        refusal = getattr(request, _REFUSAL, None)
        return form if refusal is None else _refused_form(form, refusal)

    def write_each(self, request, objects, write, done: str) -> None:
        """``write`` each object in a savepoint of its own; report each refusal by its rule."""
        written = 0
        for obj in objects:
            try:
                with transaction.atomic(using=router.db_for_write(self.model)):
                    write(obj)
            except (DatabaseError, RuleRefusal) as error:
                message = refusal_message(error)
                if message is None:
                    raise
                self.message_user(request, f"{obj}: {message}", messages.ERROR)
            else:
                written += 1
        if written:
            self.message_user(request, f"{done}: {written}", messages.SUCCESS)

    def may(self, request, action: str) -> bool:
        """For write actions: not an auditor, and holding ``action``'s model permission."""
        opts = self.opts
        codename = f"{opts.app_label}.{action}_{opts.model_name}"
        return not is_auditor_request(request) and request.user.has_perm(codename)


class AccountFilter(admin.SimpleListFilter):
    """The accounts the user may see (a few), not SELECT DISTINCT over millions of rows."""

    title = "account"
    parameter_name = "account"

    def lookups(self, request, model_admin):
        return [(a.pk, a.name) for a in Account.objects.visible_to(request.user)]

    def queryset(self, request, queryset):
        return queryset.filter(account_id=self.value()) if self.value() else queryset


class AccountScopedAdmin(TradingAdmin):
    """Records of an account: listed as ``visible_to`` allows, written as ``tradable_by``
    allows (row-level security holds the same rule in the database)."""

    list_select_related = ["account", "instrument"]
    raw_id_fields = ["instrument"]

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user)

    def formfield_for_foreignkey(self, db_field, request, **kwargs):
        tradable = Account.objects.tradable_by(request.user)
        if db_field.related_model is Account:
            kwargs["queryset"] = tradable
        elif db_field.related_model in (Order, Execution):
            kwargs["queryset"] = db_field.related_model.objects.filter(account__in=tradable)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)


class NoChanges:
    """Records that are never edited or deleted: a new record corrects them."""

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnly(NoChanges):
    """Records that only the database or a job writes."""

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(TradingAdmin):
    list_display = ["name", "base_currency", "desks", "created_at"]
    list_filter = ["base_currency", "groups"]
    search_fields = ["name"]
    ordering = ["name"]
    filter_horizontal = ["groups"]
    add_fields = changeable_fields = ["name", "base_currency", "groups"]
    audited = True
    show_full_result_count = True
    paginator = admin.ModelAdmin.paginator

    def get_queryset(self, request):
        return super().get_queryset(request).visible_to(request.user).prefetch_related("groups")

    @admin.display(description="groups that use it")
    def desks(self, account: Account) -> str:
        return ", ".join(group.name for group in account.groups.all())


@admin.register(Order)
class OrderAdmin(NoChanges, AccountScopedAdmin):
    """Terms never change and orders are never deleted; the cancel action is the one change."""

    list_display = [
        "id",
        "created_at",
        "account",
        "client_order_id",
        "instrument",
        "side",
        "order_type",
        "quantity",
        "filled_quantity",
        "limit_price",
        "stop_price",
        "time_in_force",
        "strategy",
        "status",
    ]
    list_filter = [
        "status",
        "side",
        "order_type",
        "time_in_force",
        AccountFilter,
        ("created_at", admin.DateFieldListFilter),
    ]
    search_fields = ["client_order_id__exact", "instrument__symbol__exact"]
    search_help_text = "An exact client order id or instrument symbol."
    add_fields = [
        "account",
        "instrument",
        "client_order_id",
        "side",
        "order_type",
        "quantity",
        "limit_price",
        "stop_price",
        "time_in_force",
        # Who decided it and at what price (transaction cost analysis).
        "strategy",
        "agent",
        "decision_price",
    ]
    raw_id_fields = ["instrument", "agent"]
    audited = True
    actions = ["cancel"]

    def has_cancel_permission(self, request) -> bool:
        return self.may(request, "change")

    @admin.action(description="Cancel the selected orders", permissions=["cancel"])
    def cancel(self, request, queryset) -> None:
        reason = f"cancelled in the admin by {request.user.get_username()}"

        def cancel_one(order: Order) -> None:
            # By the owner's function (the application's role may not update orders); the
            # database decides whether the order may go from its current status to cancelled.
            books.cancel_order(order.pk, reason)

        self.write_each(request, queryset, cancel_one, "Cancelled")


@admin.register(Execution)
class ExecutionAdmin(NoChanges, AccountScopedAdmin):
    """Added, never edited: a bust or a correction is a new execution linked to this one."""

    list_display = [
        "id",
        "executed_at",
        "exec_id",
        "account",
        "instrument",
        "order",
        "side",
        "quantity",
        "price",
        "fee",
        "liquidity",
        "venue",
        "kind",
        "supersedes",
        "position_sequence",
    ]
    list_filter = [
        "kind",
        "side",
        "liquidity",
        AccountFilter,
        ("executed_at", admin.DateFieldListFilter),
    ]
    list_select_related = ["account", "instrument", "order", "supersedes"]
    raw_id_fields = ["instrument", "order", "supersedes"]
    search_fields = [
        "exec_id__exact",
        "order__client_order_id__exact",
        "instrument__symbol__exact",
    ]
    search_help_text = "An exact exec id (unique within an account), client order id or symbol."
    # What an execution is booked with (``books.COLUMNS``), by the model's field names.
    add_fields = [
        {f.column: f.name for f in Execution._meta.concrete_fields}[column]
        for column in books.COLUMNS
    ]
    audited = True
    actions = ["bust"]

    def has_bust_permission(self, request) -> bool:
        return self.may(request, "add")

    def save_model(self, request, obj: Execution, form, change: bool) -> None:
        """Booked as every door books (``trading.books``); the database refuses what breaks
        a rule, shown on the form by its name."""
        booked = books.book(books.row_of(obj))
        # None: the same execution booked already (a replay); the form shows that record.
        replayed = Execution.objects.only("pk").filter(account=obj.account_id, exec_id=obj.exec_id)
        obj.pk = booked or replayed.get().pk

    @admin.action(description="Bust the selected executions", permissions=["bust"])
    def bust(self, request, queryset) -> None:
        reason = f"busted in the admin by {request.user.get_username()}"

        def bust_one(execution: Execution) -> None:
            # A fresh exec id, so that a second bust is refused as such rather than as a
            # clash of ids; the order, the position and the cash are restored.
            books.bust(execution, f"bust-{execution.pk}-{uuid4().hex[:16]}", reason)

        self.write_each(request, queryset, bust_one, "Busted")


@admin.register(Position)
class PositionAdmin(ReadOnly, AccountScopedAdmin):
    """Kept by the executions' trigger: read-only for everyone."""

    list_display = [
        "account",
        "instrument",
        "quantity",
        "average_cost",
        "realized_pnl",
        "last_sequence",
        "last_execution_at",
        "updated_at",
    ]
    list_filter = [AccountFilter]
    search_fields = ["instrument__symbol__exact"]
    search_help_text = "An exact instrument symbol."
    audited = True


@admin.register(ActionEntry)
class ActionEntryAdmin(ReadOnly, AccountScopedAdmin):
    """What a corporate action did to a position, written by ``trading_apply_actions``
    (``manage.py apply_actions``): read-only for everyone."""

    list_display = [
        "ex_at",
        "account",
        "instrument",
        "action",
        "quantity_before",
        "quantity_after",
        "average_cost_before",
        "average_cost_after",
        "cash",
        "applied_at",
    ]
    list_filter = [AccountFilter, ("ex_at", admin.DateFieldListFilter)]
    list_select_related = ["account", "instrument", "action"]
    raw_id_fields = ["instrument", "action", "cash_entry"]
    search_fields = ["instrument__symbol__exact"]
    search_help_text = "An exact instrument symbol."
    ordering = ["-ex_at", "-id"]
    audited = True


PEOPLES_CASH = [
    (kind.value, kind.label)
    for kind in (CashEntry.Kind.DEPOSIT, CashEntry.Kind.WITHDRAWAL, CashEntry.Kind.ADJUSTMENT)
]


class CashEntryForm(forms.ModelForm):
    """People's entries only (trade and fee entries are the executions'); the currency is the
    account's unless given."""

    class Meta:
        model = CashEntry
        fields = ["account", "kind", "amount", "currency", "entry_at", "note"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if "kind" in self.fields:
            self.fields["kind"].choices = PEOPLES_CASH
        if "currency" in self.fields:
            self.fields["currency"].required = False
            self.fields["currency"].help_text = "Blank for the account's base currency."

    def clean(self):
        cleaned = super().clean()
        if not cleaned.get("currency") and cleaned.get("account"):
            cleaned["currency"] = cleaned["account"].base_currency
        return cleaned


@admin.register(CashEntry)
class CashEntryAdmin(NoChanges, AccountScopedAdmin):
    form = CashEntryForm
    list_display = ["id", "entry_at", "account", "kind", "amount", "currency", "execution", "note"]
    list_filter = ["kind", AccountFilter, ("entry_at", admin.DateFieldListFilter)]
    list_select_related = ["account", "execution"]
    raw_id_fields = ["execution"]
    search_fields = ["execution__exec_id__exact"]
    search_help_text = "The exact exec id of the execution that booked it."
    add_fields = ["account", "kind", "amount", "currency", "entry_at", "note"]
    audited = True

    def save_model(self, request, obj: CashEntry, form, change: bool) -> None:
        """Added by the owner's function, as every door adds cash (``trading.books``): the
        application's role may not insert cash entries."""
        obj.pk = books.add_cash(
            obj.account_id,
            obj.kind,
            obj.amount,
            currency=obj.currency,
            entry_at=obj.entry_at,
            note=obj.note,
        )


@admin.register(PortfolioSnapshot)
class PortfolioSnapshotAdmin(ReadOnly, AccountScopedAdmin):
    """Written by ``snapshot_portfolios``: read-only."""

    list_display = [
        "ts",
        "account",
        "currency",
        "cash",
        "market_value",
        "nav",
        "gross_exposure",
        "net_exposure",
        "daily_pnl",
    ]
    list_filter = [AccountFilter, ("ts", admin.DateFieldListFilter)]
    list_select_related = ["account"]
    raw_id_fields = []
    ordering = ["-ts"]


@admin.register(ExecutionCost)
class ExecutionCostAdmin(ReadOnly, AccountScopedAdmin):
    """Each fill's cost (trading/tca.py): written by the refresh (``manage.py tca --refresh``,
    the job after the close, the pending refresh every five minutes; a bust takes its row out
    at once), read-only for everyone."""

    list_display = [
        "executed_at",
        "account",
        "instrument",
        "side",
        "quantity",
        "price",
        "venue",
        "strategy",
        "arrival_price",
        "arrival_source",
        "slippage_bps",
        "spread_paid_bps",
        "markout_1m_bps",
        "markout_5m_bps",
        "markout_1d_bps",
        "markout_source",
    ]
    list_filter = [
        AccountFilter,
        "side",
        "arrival_source",
        "markout_source",
        ("executed_at", admin.DateFieldListFilter),
    ]
    raw_id_fields = ["instrument", "execution", "order", "agent"]
    search_fields = ["instrument__symbol__exact", "venue__exact", "strategy__exact"]
    search_help_text = "An exact instrument symbol, venue or strategy."
    ordering = ["-executed_at"]


@admin.register(PortfolioSnapshotRevision)
class PortfolioSnapshotRevisionAdmin(ReadOnly, AccountScopedAdmin):
    """What a snapshot taken again (or deleted) replaced, written by the snapshots' trigger."""

    list_display = [
        "ts",
        "account",
        "nav",
        "daily_pnl",
        "known_at",
        "known_from",
        "known_until",
        "change",
        "actor",
    ]
    list_filter = [AccountFilter, "change", ("ts", admin.DateFieldListFilter)]
    list_select_related = ["account"]
    raw_id_fields = []
    ordering = ["-ts", "-known_until"]


@admin.register(BacktestRun)
class BacktestRunAdmin(TradingAdmin):
    """Written by the backtest engine; an operator may delete a run (its trades go with it)."""

    list_display = [
        "id",
        "strategy",
        "status",
        "period_start",
        "period_end",
        "total_return",
        "sharpe",
        "sortino",
        "max_drawdown",
        "hit_rate",
        "turnover",
        "known_at",
        "code_version",
        "created_by",
        "created_at",
        "trades",
    ]
    list_filter = ["status", ("created_at", admin.DateFieldListFilter)]
    list_select_related = ["created_by"]
    search_fields = ["strategy__exact"]
    search_help_text = "An exact strategy name."

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="trades")
    def trades(self, run: BacktestRun) -> str:
        url = reverse("admin:trading_backtesttrade_changelist")
        return format_html('<a href="{}?run__id__exact={}">trades</a>', url, run.pk)


@admin.register(BacktestTrade)
class BacktestTradeAdmin(ReadOnly, TradingAdmin):
    list_display = ["id", "run", "ts", "instrument", "side", "quantity", "price", "fee", "pnl"]
    list_filter = ["side", ("ts", admin.DateFieldListFilter)]
    list_select_related = ["run", "instrument"]
    raw_id_fields = ["run", "instrument"]
    search_fields = ["instrument__symbol__exact"]
    search_help_text = "An exact instrument symbol."
