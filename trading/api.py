"""The trading REST API: accounts, orders, executions, positions, cash, snapshots, backtests.

Every list and record is scoped to the accounts the user's groups grant (``visible_to``; writes
need ``tradable_by``, which no auditor passes), and the database's row-level security applies
the same rule again. Serializers mirror the database's rules, so bad input is a 400 naming the
field; the database stays the final judge: a refusal by one of its constraints or triggers is
answered ``{"detail": message, "rule": name}``, 400 for bad data, 409 for a conflict with the
record's state or an existing record, never a 500.

Instruments are named by symbol everywhere (writes and responses), as in the market-data API;
accounts and orders by id. Executions take their account and instrument from their order.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser, Group
from django.db import DatabaseError, connection, transaction
from django.db.models import Count
from django.utils import timezone
from drf_spectacular.utils import (
    PolymorphicProxySerializer,
    extend_schema,
    extend_schema_view,
)
from rest_framework import exceptions, mixins, pagination, permissions, serializers, viewsets
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.api import PageNumberPagination, SymbolField, TimeField
from marketdata.batches import FiniteFloatField
from marketdata.models import Instrument
from qvp_site.db.quoting import ident
from trading.models import (
    Account,
    BacktestRun,
    BacktestTrade,
    CashEntry,
    Execution,
    Order,
    PortfolioSnapshot,
    Position,
    Side,
)
from trading.querysets import is_auditor

MAX_BATCH = 10_000
# Database keys are bigint: a larger id in a request is simply not found, never a query error.
MAX_ID = 2**63 - 1
# Refusals that conflict with a record's state rather than being bad data: answered 409.
CONFLICT_RULES = frozenset({"order_legal_transition", "execution_superseded_once"})
CLOSED = frozenset(set(Order.Status.values) - set(Order.OPEN) - {Order.Status.FILLED})
PEOPLE_CASH_KINDS = (
    CashEntry.Kind.DEPOSIT,
    CashEntry.Kind.WITHDRAWAL,
    CashEntry.Kind.ADJUSTMENT,
)
CURRENCY = re.compile(r"^[A-Z0-9]{3,5}$")


# --- The database's refusals as responses ---------------------------------------------------
class Refused(exceptions.APIException):
    """A rule refused the request: ``{"detail": ..., "rule": ...}`` (and the batch index)."""

    status_code = 400
    default_code = "refused"

    def __init__(self, message: str, rule: str, status: int = 400, index: int | None = None):
        super().__init__(message)
        self.status_code = status
        # Set plainly rather than through APIException, which would turn the index into text.
        self.detail = {"detail": message, "rule": rule}
        if index is not None:
            self.detail["index"] = index


def refusal(error: DatabaseError, index: int | None = None) -> Refused | None:
    """The response to a database error that a rule raised; None for anything else (a bug)."""
    cause = error.__cause__
    state, diag = getattr(cause, "sqlstate", None) or "", getattr(cause, "diag", None)
    if diag is None:
        return None
    message, rule = diag.message_primary or str(cause), diag.constraint_name or ""
    if state == "23505":  # unique_violation, ours included: the record exists already
        return Refused(message, rule or "unique", 409, index)
    if state == "42501" and "row-level security" in message:  # not the user's account
        return Refused(message, "row_level_security", 403, index)
    if state.startswith(("23", "22")):  # integrity (CHECK, triggers' refusals) or bad data
        return Refused(message, rule or state, 409 if rule in CONFLICT_RULES else 400, index)
    return None


@contextmanager
def judged_by_database(index: int | None = None) -> Iterator[None]:
    """Writes in a savepoint whose refusal by the database becomes a 400/409 response."""
    try:
        with transaction.atomic():
            yield
    except DatabaseError as error:
        answer = refusal(error, index)
        if answer is None:
            raise
        raise answer from error


class RefusalsAsResponses:
    """Views whose unexpected database refusals still answer 4xx (with the rule), not 500."""

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatabaseError):
            exc = refusal(exc) or exc
        return super().handle_exception(exc)


class RefusalSerializer(serializers.Serializer):
    detail = serializers.CharField(help_text="the rule's message")
    rule = serializers.CharField(help_text="the database constraint or rule that refused")
    index = serializers.IntegerField(required=False, help_text="the batch item refused")


# --- Permissions -----------------------------------------------------------------------------
class AuditorsReadOnly(permissions.BasePermission):
    """Auditors read every account and change nothing."""

    message = "auditors read and change nothing"

    def has_permission(self, request: Request, view) -> bool:
        return request.method in permissions.SAFE_METHODS or not is_auditor(request.user)


class TradesTheAccount(permissions.BasePermission):
    """A change to a record (cancel, bust) needs its account tradable by the user."""

    message = "you may not trade this account"

    def has_object_permission(self, request: Request, view, obj) -> bool:
        if request.method in permissions.SAFE_METHODS:
            return True
        tradable = Account.objects.tradable_by(request.user)
        return tradable.filter(pk=obj.account_id).exists()


class SuperusersCreate(permissions.BasePermission):
    message = "only superusers create accounts"

    def has_permission(self, request: Request, view) -> bool:
        return request.method in permissions.SAFE_METHODS or request.user.is_superuser


def user_of(field: serializers.Field) -> AbstractBaseUser | AnonymousUser:
    """The user a serializer field validates for (from the view's request)."""
    return field.context["request"].user


# --- Query parameters ------------------------------------------------------------------------
class VisibleAccountField(serializers.IntegerField):
    """An account id the user may see; refuses others as unknown, so none is revealed."""

    def __init__(self, **kwargs):
        super().__init__(min_value=1, max_value=MAX_ID, **kwargs)

    def run_validation(self, data=serializers.empty) -> Account:
        pk = super().run_validation(data)
        account = Account.objects.visible_to(user_of(self)).filter(pk=pk).first()
        if account is None:
            raise serializers.ValidationError(f"no account {pk} that you may see")
        return account


class SinceUntilQuery(serializers.Serializer):
    since = TimeField(required=False, help_text="from this time on (inclusive), ISO 8601")
    until = TimeField(required=False, help_text="before this time (exclusive), ISO 8601")

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"since": "must be before until"})
        return attrs


class AccountQuery(serializers.Serializer):
    account = VisibleAccountField(required=False, help_text="an account id")


class OrderQuery(AccountQuery, SinceUntilQuery):
    status = serializers.ChoiceField(choices=Order.Status.choices, required=False)
    symbol = SymbolField(required=False, help_text="the instrument's symbol")


class ExecutionQuery(AccountQuery, SinceUntilQuery):
    order = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="an order id"
    )
    symbol = SymbolField(required=False, help_text="the instrument's symbol")
    kind = serializers.ChoiceField(choices=Execution.Kind.choices, required=False)


class PositionQuery(AccountQuery):
    symbol = SymbolField(required=False, help_text="the instrument's symbol")


class CashQuery(AccountQuery, SinceUntilQuery):
    kind = serializers.ChoiceField(choices=CashEntry.Kind.choices, required=False)
    currency = serializers.RegexField(CURRENCY, required=False)


class SnapshotQuery(AccountQuery, SinceUntilQuery):
    pass


class BacktestQuery(serializers.Serializer):
    strategy = serializers.CharField(required=False, max_length=100)
    status = serializers.ChoiceField(choices=BacktestRun.Status.choices, required=False)


def query_parameters(serializer_class: type[serializers.Serializer], request: Request) -> dict:
    """The request's query parameters, validated (a 400 naming each bad one otherwise)."""
    query = serializer_class(data=request.query_params, context={"request": request})
    query.is_valid(raise_exception=True)
    return {name: value for name, value in query.validated_data.items() if value is not None}


# --- Pagination ------------------------------------------------------------------------------
class NewestFirstPagination(pagination.CursorPagination):
    """Pages by position rather than offset for the tables that grow without end: no count
    of millions of rows, and pages stay stable while new rows arrive."""

    page_size_query_param = "page_size"
    max_page_size = PageNumberPagination.max_page_size


class ExecutionPagination(NewestFirstPagination):
    ordering = ("-executed_at", "-id")


class SnapshotPagination(NewestFirstPagination):
    ordering = ("-ts", "-id")


# --- Serializers: fields shared ---------------------------------------------------------------
class TradableAccountField(serializers.PrimaryKeyRelatedField):
    """An account the user may trade; others are refused as unknown, so none is revealed."""

    default_error_messages = {"does_not_exist": "no account {pk_value} that you may trade"}

    def __init__(self, **kwargs):
        super().__init__(queryset=Account.objects.all(), **kwargs)

    def get_queryset(self):
        return Account.objects.tradable_by(user_of(self))


def symbol_field(**kwargs) -> serializers.SlugRelatedField:
    if not kwargs.get("read_only"):
        kwargs["queryset"] = Instrument.objects.all()
    return serializers.SlugRelatedField(
        slug_field="symbol", help_text="the instrument's symbol", **kwargs
    )


def sign_problem(side: str, quantity: Decimal) -> str | None:
    """The database's execution_side_matches_sign, for executions and backtest trades."""
    if quantity == 0:
        return "must not be zero"
    if (side == Side.BUY) != (quantity > 0):
        return "is signed by its side: buys positive, sells negative"
    return None


# --- Accounts --------------------------------------------------------------------------------
class AccountSerializer(serializers.ModelSerializer):
    groups = serializers.SlugRelatedField(
        many=True,
        slug_field="name",
        queryset=Group.objects.all(),
        required=False,
        help_text="the groups whose members see and trade the account",
    )
    base_currency = serializers.RegexField(r"^[A-Z]{3}$", max_length=3, default="USD")

    class Meta:
        model = Account
        fields = ["id", "name", "base_currency", "groups", "created_at"]
        read_only_fields = ["id", "created_at"]


@extend_schema_view(list=extend_schema(description="The accounts you may see."))
class AccountViewSet(
    RefusalsAsResponses,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Accounts the user's groups grant (every account for superusers and auditors);
    superusers create them."""

    queryset = Account.objects.prefetch_related("groups")
    serializer_class = AccountSerializer
    pagination_class = PageNumberPagination
    permission_classes = [permissions.IsAuthenticated, SuperusersCreate]

    def get_queryset(self):
        # all() first: visible_to() returns the queryset itself to those who read everything,
        # and the class attribute's cache must never be shared between requests.
        return self.queryset.all().visible_to(self.request.user)


# --- Scoped views ----------------------------------------------------------------------------
class ScopedViewSet(RefusalsAsResponses, viewsets.GenericViewSet):
    """Records of the accounts the user may see, filtered by a validated query."""

    permission_classes = [permissions.IsAuthenticated, AuditorsReadOnly, TradesTheAccount]
    pagination_class = PageNumberPagination
    query_class: type[serializers.Serializer] | None = None
    lookups: dict[str, str] = {}  # query parameter -> queryset lookup

    def get_queryset(self):
        rows = self.queryset.all().visible_to(self.request.user)  # all(): see AccountViewSet
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return rows
        query = query_parameters(self.query_class, self.request)
        return rows.filter(**{self.lookups[name]: value for name, value in query.items()})


def since_until(column: str) -> dict[str, str]:
    return {"since": f"{column}__gte", "until": f"{column}__lt"}


# --- Orders ----------------------------------------------------------------------------------
class OrderSerializer(serializers.ModelSerializer):
    """An order; ``instrument`` is the symbol. Status and fills are kept by the database."""

    account = TradableAccountField(help_text="an account id you may trade")
    instrument = symbol_field()

    class Meta:
        model = Order
        fields = [
            "id",
            # Writable: the order's terms, which never change afterwards.
            "account",
            "instrument",
            "client_order_id",
            "side",
            "order_type",
            "quantity",
            "limit_price",
            "stop_price",
            "time_in_force",
            # Read-only: the lifecycle.
            "filled_quantity",
            "status",
            "status_reason",
            "created_at",
            "updated_at",
        ]
        read_only_fields = [
            "id",
            "filled_quantity",
            "status",
            "status_reason",
            "created_at",
            "updated_at",
        ]
        # (account, client_order_id) is checked in validate(), naming the field.
        validators = []

    def validate(self, attrs: dict) -> dict:
        errors = price_problems(attrs)
        if attrs["quantity"] <= 0:
            errors["quantity"] = "must be positive"
        taken = Order.objects.filter(
            account=attrs["account"], client_order_id=attrs["client_order_id"]
        )
        if taken.exists():
            errors["client_order_id"] = f"already used in account {attrs['account']}"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


# Which prices each order type carries (the database's order_prices_match_type).
PRICES_BY_TYPE = {
    Order.Type.MARKET: set(),
    Order.Type.LIMIT: {"limit_price"},
    Order.Type.STOP: {"stop_price"},
    Order.Type.STOP_LIMIT: {"limit_price", "stop_price"},
}


def price_problems(attrs: dict) -> dict[str, str]:
    kind, errors = attrs.get("order_type", Order.Type.MARKET), {}
    for name in ("limit_price", "stop_price"):
        price, wanted = attrs.get(name), name in PRICES_BY_TYPE[kind]
        if price is not None and price <= 0:
            errors[name] = "must be positive"
        elif wanted and price is None:
            errors[name] = f"a {kind} order needs one"
        elif not wanted and price is not None:
            errors[name] = f"a {kind} order has none"
    return errors


class CancelSerializer(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


@extend_schema_view(list=extend_schema(parameters=[OrderQuery]))
class OrderViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """Orders of your accounts: create, list, retrieve, cancel."""

    queryset = Order.objects.select_related("instrument")
    serializer_class = OrderSerializer
    query_class = OrderQuery
    lookups = {
        "account": "account",
        "status": "status",
        "symbol": "instrument",
        **since_until("created_at"),
    }

    # 400: bad fields, or a database refusal; documented for every operation by
    # qvp_site.schema.document_refusals.
    @extend_schema(responses={201: OrderSerializer})
    def create(self, request: Request, *args, **kwargs) -> Response:
        return super().create(request, *args, **kwargs)

    @extend_schema(
        request=CancelSerializer,
        responses={200: OrderSerializer, 409: RefusalSerializer},
        description="Cancel the order. An order already cancelled is returned as it is; one "
        "no longer open is refused by the database, 409, naming its current state.",
    )
    @action(detail=True, methods=["post"])
    def cancel(self, request: Request, pk: str | None = None) -> Response:
        order = self.get_object()
        params = CancelSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        if order.status == Order.Status.CANCELLED:  # cancelling again changes nothing
            return Response(self.get_serializer(order).data)
        # Only the lifecycle columns: the application's role may update no others, and the
        # database judges the transition (order_legal_transition).
        with judged_by_database():
            Order.objects.filter(pk=order.pk).update(
                status=Order.Status.CANCELLED, status_reason=params.validated_data["reason"]
            )
        order.refresh_from_db(fields=["status", "status_reason", "updated_at"])
        return Response(self.get_serializer(order).data)


# --- Executions ------------------------------------------------------------------------------
class TradableOrderField(serializers.PrimaryKeyRelatedField):
    """An order of an account the user may trade; a batch's orders come from the context,
    looked up in one query, else from the database."""

    default_error_messages = {"does_not_exist": "no order {pk_value} that you may trade"}

    def __init__(self, **kwargs):
        super().__init__(queryset=Order.objects.all(), **kwargs)

    def get_queryset(self):
        return Order.objects.filter(account__in=Account.objects.tradable_by(user_of(self)))

    def to_internal_value(self, data) -> Order:
        found = self.context.get("orders", {}).get(as_id(data))
        return found if found is not None else super().to_internal_value(data)


def as_id(value) -> int | None:
    """A database id from JSON input, else None."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_ID:
        return value
    return None


def terms(execution: Execution | dict) -> tuple:
    """What the database compares when an exec id comes again (trading_execution_books)."""
    if isinstance(execution, Execution):
        e = execution
        return (e.order_id, e.quantity, e.price, e.fee, e.kind, e.executed_at, e.supersedes_id)
    e = execution
    return (e["order"].pk, e["quantity"], e["price"], e["fee"], "fill", e["executed_at"], None)


class ExecutionBatchSerializer(serializers.ListSerializer):
    """A batch: items that repeat a booked exec id are replays (``replays``); the rest must
    keep their orders open and within quantity, counting the batch's earlier fills."""

    replays: set[int]

    def validate(self, items: list[dict]) -> list[dict]:
        booked, earlier = self.context.get("booked", {}), {}
        errors, conflicts, self.replays, filled = {}, [], set(), {}
        for index, item in enumerate(items):
            before = booked.get(item["exec_id"]) or earlier.get(item["exec_id"])
            if before is not None and terms(before) == terms(item):
                self.replays.add(index)
                continue
            if before is not None:
                conflicts.append(index)
                continue
            earlier[item["exec_id"]] = item
            problem = fill_problem(item, filled)
            if problem:
                errors[index] = problem
        if errors:
            raise serializers.ValidationError(errors)
        if conflicts:
            index = conflicts[0]
            message = f"execution {items[index]['exec_id']}: already booked with different terms"
            single = self.context.get("single", False)
            raise Refused(message, "trading_execution_exec_id_key", 409, None if single else index)
        return items


def fill_problem(item: dict, filled: dict[int, Decimal]) -> dict | None:
    """The database's execution_order_open and execution_within_order_quantity, ahead of it."""
    order = item["order"]
    if order.status in CLOSED:
        return {"order": [f"order {order.pk} is {order.status} and takes no fills"]}
    done, size = filled.get(order.pk, order.filled_quantity), abs(item["quantity"])
    if done + size > order.quantity:
        return {
            "quantity": [
                f"fills {size} of order {order.pk} beyond its quantity {order.quantity}"
                f" ({done} filled already)"
            ]
        }
    filled[order.pk] = done + size
    return None


class ExecutionSerializer(serializers.ModelSerializer):
    """An execution. Quantity is signed (buys positive) and its side must match the order's;
    the account and instrument are the order's."""

    exec_id = serializers.CharField(max_length=64, help_text="unique; posting it again is a replay")
    order = TradableOrderField(help_text="an order id of an account you may trade")
    instrument = symbol_field(read_only=True)
    executed_at = TimeField()

    class Meta:
        model = Execution
        list_serializer_class = ExecutionBatchSerializer
        fields = [
            "id",
            "exec_id",
            "order",
            "account",
            "instrument",
            "side",
            "quantity",
            "price",
            "fee",
            "liquidity",
            "executed_at",
            "kind",
            "supersedes",
            "reason",
            "position_sequence",
            "order_filled_after",
            "position_quantity_after",
            "position_average_cost_after",
            "position_realized_pnl_after",
            "created_at",
        ]
        # Where the order and the position stood after it: written by the database's books.
        read_only_fields = [
            "id",
            "account",
            "kind",
            "supersedes",
            "position_sequence",
            "order_filled_after",
            "position_quantity_after",
            "position_average_cost_after",
            "position_realized_pnl_after",
            "created_at",
        ]

    def validate(self, attrs: dict) -> dict:
        errors, order = {}, attrs["order"]
        problem = sign_problem(attrs["side"], attrs["quantity"])
        if problem:
            errors["quantity"] = problem
        if attrs["price"] <= 0:
            errors["price"] = "must be positive"
        if attrs.get("fee", 0) < 0:
            errors["fee"] = "must not be negative"
        if attrs["side"] != order.side:
            errors["side"] = f"order {order.pk} is a {order.side} order"
        if errors:
            raise serializers.ValidationError(errors)
        attrs.setdefault("fee", Decimal(0))
        return attrs


# The columns an execution is inserted with; the database sets the rest (position sequence,
# created_at). Inserted by SQL because its trigger skips a replay: no row comes back, which
# the ORM's create() cannot take.
COLUMNS = (
    "exec_id",
    "order_id",
    "account_id",
    "instrument_id",
    "side",
    "quantity",
    "price",
    "fee",
    "liquidity",
    "executed_at",
    "kind",
    "supersedes_id",
    "reason",
)
INSERT = "INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id".format(
    table=ident(Execution._meta.db_table),
    columns=", ".join(ident(c) for c in COLUMNS),
    values=", ".join(["%s"] * len(COLUMNS)),
)


def book(row: dict) -> int | None:
    """Insert one execution through the books' trigger: its id, or None for a replay."""
    with connection.cursor() as cursor:
        cursor.execute(INSERT, [row[c] for c in COLUMNS])
        found = cursor.fetchone()
    return found[0] if found else None


def fill_row(item: dict) -> dict:
    order = item["order"]
    return {
        "exec_id": item["exec_id"],
        "order_id": order.pk,
        "account_id": order.account_id,
        "instrument_id": order.instrument_id,
        "side": item["side"],
        "quantity": item["quantity"],
        "price": item["price"],
        "fee": item["fee"],
        "liquidity": item.get("liquidity", Execution.Liquidity.UNKNOWN),
        "executed_at": item["executed_at"],
        "kind": Execution.Kind.FILL,
        "supersedes_id": None,
        "reason": item.get("reason", ""),
    }


def bust_row(original: Execution, exec_id: str, reason: str) -> dict:
    """The mirror of ``original`` that cancels it (the database checks it mirrors)."""
    return {
        "exec_id": exec_id,
        "order_id": original.order_id,
        "account_id": original.account_id,
        "instrument_id": original.instrument_id,
        "side": Side.SELL if original.side == Side.BUY else Side.BUY,
        "quantity": -original.quantity,
        "price": original.price,
        "fee": -original.fee,
        "liquidity": original.liquidity,
        "executed_at": timezone.now(),
        "kind": Execution.Kind.BUST,
        "supersedes_id": original.pk,
        "reason": reason,
    }


def batch_context(items: list, request: Request) -> dict:
    """The batch's tradable orders and already booked executions, one query each."""
    if len(items) > MAX_BATCH:  # refused by the serializer: no lookups for it
        return {"request": request}
    dicts = [item for item in items if isinstance(item, dict)]
    order_ids = {as_id(item.get("order")) for item in dicts} - {None}
    # Only strings PostgreSQL can take (not a JSON object: unhashable too); the serializer
    # refuses the others by name.
    exec_ids = {
        e
        for e in (item.get("exec_id") for item in dicts)
        if isinstance(e, str) and "\x00" not in e and len(e) <= 64
    }
    tradable = Account.objects.tradable_by(request.user)
    orders = Order.objects.filter(pk__in=order_ids, account__in=tradable)
    booked = Execution.objects.visible_to(request.user).filter(exec_id__in=exec_ids)
    return {
        "request": request,
        "orders": {order.pk: order for order in orders},
        "booked": {execution.exec_id: execution for execution in booked},
    }


class BustSerializer(serializers.Serializer):
    exec_id = serializers.CharField(
        max_length=64, required=False, help_text="the bust's exec id (default: <original>-bust)"
    )
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


EXECUTIONS_IN = PolymorphicProxySerializer(
    component_name="ExecutionOrBatch",
    serializers=[ExecutionSerializer, ExecutionSerializer(many=True)],
    resource_type_field_name=None,
    many=False,
)


@extend_schema_view(list=extend_schema(parameters=[ExecutionQuery]))
class ExecutionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Executions of your accounts: book them (one or a batch), list, retrieve, bust."""

    queryset = Execution.objects.select_related("instrument")
    serializer_class = ExecutionSerializer
    pagination_class = ExecutionPagination
    query_class = ExecutionQuery
    lookups = {
        "account": "account",
        "order": "order_id",
        "symbol": "instrument",
        "kind": "kind",
        **since_until("executed_at"),
    }

    @extend_schema(
        request=EXECUTIONS_IN,
        responses={
            201: EXECUTIONS_IN,
            200: EXECUTIONS_IN,
            409: RefusalSerializer,
        },
        description=(
            "Book one execution (an object) or a batch (a list of up to 10,000). A batch is "
            "refused whole, with the index and field of each bad item. An exec id booked "
            "already with the same terms is a replay: the existing record comes back, and the "
            "answer is 200 when nothing new was booked; with different terms, 409."
        ),
    )
    def create(self, request: Request) -> Response:
        single = not isinstance(request.data, list)
        items = [request.data] if single else request.data
        batch = ExecutionSerializer(
            data=items,
            many=True,
            allow_empty=False,
            max_length=MAX_BATCH,
            context={**batch_context(items, request), "single": single},
        )
        if not batch.is_valid():
            errors = batch.errors
            if isinstance(errors, list):
                errors = {index: error for index, error in enumerate(errors) if error}
            raise serializers.ValidationError(errors.get(0, errors) if single else errors)
        created = self._book(batch.validated_data, batch.replays, single)
        booked = self._booked([item["exec_id"] for item in batch.validated_data])
        data = ExecutionSerializer(booked, many=True).data
        return Response(data[0] if single else data, status=201 if created else 200)

    def _book(self, items: list[dict], replays: set[int], single: bool) -> int:
        """Insert the batch's new executions, whole or not at all: how many were new."""
        created = 0
        with transaction.atomic():
            for index, item in enumerate(items):
                if index in replays:
                    continue
                with judged_by_database(None if single else index):
                    created += book(fill_row(item)) is not None
        return created

    def _booked(self, exec_ids: list[str]) -> list[Execution]:
        found = {e.exec_id: e for e in self.get_queryset().filter(exec_id__in=exec_ids)}
        missing = [e for e in exec_ids if e not in found]
        if missing:  # booked in an account the user may no longer see
            raise Refused(f"execution {missing[0]}: already booked", "exec_id_unique", 409)
        return [found[e] for e in exec_ids]

    @extend_schema(
        request=BustSerializer,
        responses={201: ExecutionSerializer, 409: RefusalSerializer},
        description="Cancel an execution by a new, linked one that mirrors it: the order, the "
        "position and the cash are restored. An execution is busted once (409 after).",
    )
    @action(detail=True, methods=["post"])
    def bust(self, request: Request, pk: str | None = None) -> Response:
        original = self.get_object()
        params = BustSerializer(data=request.data)
        params.is_valid(raise_exception=True)
        refuse_bust(original)
        exec_id = params.validated_data.get("exec_id") or default_bust_id(original)
        with judged_by_database():
            book(bust_row(original, exec_id, params.validated_data["reason"]))
        bust = self.get_queryset().get(exec_id=exec_id)
        return Response(self.get_serializer(bust).data, status=201)


def refuse_bust(original: Execution) -> None:
    """The database's rules on busts, ahead of it, with its rule names."""
    if original.kind == Execution.Kind.BUST:
        message = f"execution {original.exec_id} is a bust; it cannot be busted"
        raise Refused(message, "execution_supersedes_same_order")
    later = Execution.objects.filter(supersedes=original).first()
    if later is not None:
        message = f"execution {original.exec_id} was already busted or corrected by {later.exec_id}"
        raise Refused(message, "execution_superseded_once", 409)


def default_bust_id(original: Execution) -> str:
    exec_id = f"{original.exec_id}-bust"
    return exec_id if len(exec_id) <= 64 else f"bust-{original.pk}"


# --- Positions, cash, snapshots --------------------------------------------------------------
class PositionSerializer(serializers.ModelSerializer):
    instrument = symbol_field(read_only=True)

    class Meta:
        model = Position
        fields = [
            "id",
            "account",
            "instrument",
            "quantity",
            "average_cost",
            "realized_pnl",
            "last_sequence",
            "last_execution_at",
            "updated_at",
        ]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=[PositionQuery]))
class PositionViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Positions of your accounts, kept by their executions (read-only)."""

    queryset = Position.objects.select_related("instrument")
    serializer_class = PositionSerializer
    query_class = PositionQuery
    lookups = {"account": "account", "symbol": "instrument"}


class CashEntrySerializer(serializers.ModelSerializer):
    """A movement of cash. People write deposits, withdrawals and adjustments; the trade and
    fee entries are the database's, written with each execution."""

    account = TradableAccountField(help_text="an account id you may trade")
    currency = serializers.RegexField(
        CURRENCY, max_length=5, required=False, help_text="default: the account's base currency"
    )
    entry_at = TimeField(required=False, help_text="default: now")

    class Meta:
        model = CashEntry
        fields = [
            "id",
            # Writable.
            "account",
            "kind",
            "amount",
            "currency",
            "entry_at",
            "note",
            # Read-only.
            "execution",
            "created_at",
        ]
        read_only_fields = ["id", "execution", "created_at"]

    def validate_kind(self, kind: str) -> str:
        if kind not in PEOPLE_CASH_KINDS:
            raise serializers.ValidationError(f"{kind} entries are written by executions only")
        return kind

    def validate(self, attrs: dict) -> dict:
        amount, kind = attrs["amount"], attrs["kind"]
        if amount == 0:
            raise serializers.ValidationError({"amount": "must not be zero"})
        if kind == CashEntry.Kind.DEPOSIT and amount < 0:
            raise serializers.ValidationError({"amount": "a deposit is positive"})
        if kind == CashEntry.Kind.WITHDRAWAL and amount > 0:
            raise serializers.ValidationError({"amount": "a withdrawal is negative"})
        attrs.setdefault("currency", attrs["account"].base_currency)
        attrs.setdefault("entry_at", timezone.now())
        return attrs


@extend_schema_view(list=extend_schema(parameters=[CashQuery]))
class CashViewSet(
    mixins.CreateModelMixin, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """The cash ledger of your accounts; deposits, withdrawals and adjustments are posted."""

    queryset = CashEntry.objects.all()
    serializer_class = CashEntrySerializer
    query_class = CashQuery
    lookups = {
        "account": "account",
        "kind": "kind",
        "currency": "currency",
        **since_until("entry_at"),
    }


class SnapshotSerializer(serializers.ModelSerializer):
    class Meta:
        model = PortfolioSnapshot
        fields = [
            "id",
            "account",
            "ts",
            "currency",
            "cash",
            "market_value",
            "nav",
            "gross_exposure",
            "net_exposure",
            "daily_pnl",
            "unpriced",
        ]
        read_only_fields = fields


@extend_schema_view(list=extend_schema(parameters=[SnapshotQuery]))
class SnapshotViewSet(mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet):
    """Portfolio snapshots of your accounts, newest first (read-only)."""

    queryset = PortfolioSnapshot.objects.all()
    serializer_class = SnapshotSerializer
    pagination_class = SnapshotPagination
    query_class = SnapshotQuery
    lookups = {"account": "account", **since_until("ts")}


# --- Backtests -------------------------------------------------------------------------------
class BacktestTradeSerializer(serializers.ModelSerializer):
    instrument = symbol_field()

    class Meta:
        model = BacktestTrade
        fields = ["id", "instrument", "ts", "side", "quantity", "price", "fee", "pnl"]
        read_only_fields = ["id"]

    def validate(self, attrs: dict) -> dict:
        errors = {}
        problem = sign_problem(attrs["side"], attrs["quantity"])
        if problem:
            errors["quantity"] = problem
        if attrs["price"] <= 0:
            errors["price"] = "must be positive"
        if attrs.get("fee", 0) < 0:
            errors["fee"] = "must not be negative"
        if errors:
            raise serializers.ValidationError(errors)
        return attrs


def fraction(**kwargs) -> FiniteFloatField:
    return FiniteFloatField(required=False, allow_null=True, min_value=0, max_value=1, **kwargs)


class BacktestRunSerializer(serializers.ModelSerializer):
    """A backtest run; its trades may come with it (``trades``, written once, listed at
    ``backtests/{id}/trades/``)."""

    total_return = FiniteFloatField(required=False, allow_null=True)
    sharpe = FiniteFloatField(required=False, allow_null=True)
    sortino = FiniteFloatField(required=False, allow_null=True)
    max_drawdown = fraction(help_text="a fraction, 0 to 1")
    hit_rate = fraction(help_text="a fraction, 0 to 1")
    turnover = FiniteFloatField(required=False, allow_null=True, min_value=0)
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    trade_count = serializers.IntegerField(read_only=True)
    trades = serializers.ListField(
        child=BacktestTradeSerializer(), required=False, write_only=True, max_length=MAX_BATCH
    )

    class Meta:
        model = BacktestRun
        fields = [
            "id",
            # Writable.
            "strategy",
            "parameters",
            "period_start",
            "period_end",
            "status",
            "initial_capital",
            "total_return",
            "sharpe",
            "sortino",
            "max_drawdown",
            "hit_rate",
            "turnover",
            "error",
            "finished_at",
            "trades",
            # Read-only.
            "created_by",
            "created_at",
            "trade_count",
        ]
        read_only_fields = ["id", "created_by", "created_at", "trade_count"]

    def validate(self, attrs: dict) -> dict:
        start, end = attrs["period_start"], attrs["period_end"]
        if end <= start:
            raise serializers.ValidationError({"period_end": "must be after period_start"})
        if attrs.get("initial_capital", 1) <= 0:
            raise serializers.ValidationError({"initial_capital": "must be positive"})
        outside = {
            index: {"ts": ["lies outside the run's period"]}
            for index, trade in enumerate(attrs.get("trades", []))
            if not start <= trade["ts"] <= end
        }
        if outside:
            raise serializers.ValidationError({"trades": outside})
        return attrs

    def create(self, validated_data: dict) -> BacktestRun:
        trades = validated_data.pop("trades", [])
        run = BacktestRun.objects.create(created_by=self.context["request"].user, **validated_data)
        BacktestTrade.objects.bulk_create(BacktestTrade(run=run, **trade) for trade in trades)
        run.trade_count = len(trades)
        return run


@extend_schema_view(list=extend_schema(parameters=[BacktestQuery]))
class BacktestViewSet(
    RefusalsAsResponses,
    mixins.CreateModelMixin,
    mixins.ListModelMixin,
    mixins.RetrieveModelMixin,
    viewsets.GenericViewSet,
):
    """Backtest runs (not account-scoped): anyone but an auditor may record one."""

    # Ordered explicitly: Django drops Meta.ordering from a query that aggregates.
    queryset = (
        BacktestRun.objects.select_related("created_by")
        .annotate(trade_count=Count("trades"))
        .order_by("-created_at", "-id")
    )
    serializer_class = BacktestRunSerializer
    pagination_class = PageNumberPagination
    permission_classes = [permissions.IsAuthenticated, AuditorsReadOnly]

    def get_queryset(self):
        if self.action != "list" or getattr(self, "swagger_fake_view", False):
            return self.queryset.all()
        query = query_parameters(BacktestQuery, self.request)
        return self.queryset.filter(**query)

    @extend_schema(responses=BacktestTradeSerializer(many=True))
    @action(detail=True, serializer_class=BacktestTradeSerializer)
    def trades(self, request: Request, pk: str | None = None) -> Response:
        """The run's trades in time order."""
        run = self.get_object()
        trades = BacktestTrade.objects.filter(run=run).select_related("instrument")
        page = self.paginate_queryset(trades)
        return self.get_paginated_response(BacktestTradeSerializer(page, many=True).data)
