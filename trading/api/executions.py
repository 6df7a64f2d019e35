"""``/api/v1/executions/``: executions of the user's accounts: book one or a batch, list,
retrieve, bust.

Booked by ``trading.books``, the one way into the books. The serializers check ahead of the
database what it would refuse (the order open, within its quantity, the side matching the
sign), counting a batch's earlier fills, so that a refusal names the item and field; an exec id
booked already in the order's account with the same terms is a replay (the booked record comes
back), with other terms a conflict (409). Exec ids are unique within an account: another
account's, which the user may not see, neither conflict nor show.

The list answers in the bulk formats too (``qvp_site.api.bulk``): every execution of a bounded
range of ``executed_at``, oldest first, scoped as the JSON list is.
"""

from __future__ import annotations

import copy
import re
from decimal import Decimal
from typing import Any, ClassVar, cast

from django.db import DatabaseError, connection, transaction
from django.db.models import OuterRef, QuerySet, Subquery
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema, extend_schema_view
from rest_framework import mixins, serializers
from rest_framework.decorators import action
from rest_framework.request import Request
from rest_framework.response import Response

from marketdata.fields import ResolvesSymbols, SymbolField, symbol_relation
from qvp_site.api import (
    MAX_BATCH,
    Batch,
    RefusalSerializer,
    Refused,
    TimeField,
    TimeRangeQuery,
    as_id,
    id_field,
    newest_first,
    requesting_user,
    schema_parameters,
    time_lookups,
)
from qvp_site.api.bulk import BulkFormats
from qvp_site.api.rows import RowsList
from qvp_site.audit_sealer import request_seal
from trading import books
from trading.api.scoping import AccountQuery, ScopedViewSet
from trading.models import Account, Execution, Order, Side

CLOSED = frozenset(set(Order.Status.values) - set(Order.OPEN) - {Order.Status.FILLED})
# The unique constraint (and the books' refusal) of an exec id booked in the account already.
EXEC_ID_RULE = "execution_exec_id_unique_per_account"


class ExecutionQuery(ResolvesSymbols, AccountQuery, TimeRangeQuery):
    order = id_field(required=False, help_text="an order id")
    symbol = SymbolField(required=False, help_text="the instrument's symbol")
    kind = serializers.ChoiceField(choices=Execution.Kind.choices, required=False)


class TradableOrderField(serializers.PrimaryKeyRelatedField[Order]):
    """An order of an account the user may trade; a batch's orders come from the context,
    looked up in one query, else from the database."""

    default_error_messages = {"does_not_exist": "no order {pk_value} that you may trade"}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(queryset=Order.objects.all(), **kwargs)

    def get_queryset(self) -> QuerySet[Order]:
        return Order.objects.filter(account__in=Account.objects.tradable_by(requesting_user(self)))

    def to_internal_value(self, data: Any) -> Order:
        found: Order | None = self.context.get("orders", {}).get(as_id(data))
        if found is not None:
            return found
        order: Order = super().to_internal_value(data)
        return order


ExecKey = tuple[int, str]


def key(execution: Execution | dict[str, Any]) -> ExecKey:
    """What names an execution: its account and exec id (unique together)."""
    if isinstance(execution, Execution):
        return (execution.account_id, execution.exec_id)
    return (execution["order"].account_id, execution["exec_id"])


def terms(execution: Execution | dict[str, Any]) -> tuple[Any, ...]:
    """What the database compares when an exec id comes again (trading_execution_books)."""
    if isinstance(execution, Execution):
        e = execution
        return (e.order_id, e.quantity, e.price, e.fee, e.kind, e.executed_at, e.supersedes_id)
    d = execution
    return (d["order"].pk, d["quantity"], d["price"], d["fee"], "fill", d["executed_at"], None)


class ExecutionBatchSerializer(serializers.ListSerializer[Any]):
    """A batch: items that repeat a booked exec id are replays (``replays``); the rest must
    keep their orders open and within quantity, counting the batch's earlier fills."""

    replays: set[int]

    def validate(self, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
        booked: dict[ExecKey, Execution] = self.context.get("booked", {})
        earlier: dict[ExecKey, dict[str, Any]] = {}
        errors: dict[Any, Any] = {}  # by the item's index (an int; DRF writes it as text)
        conflicts: list[int] = []
        filled: dict[int, Decimal] = {}
        self.replays = set()
        for index, item in enumerate(items):
            before = booked.get(key(item)) or earlier.get(key(item))
            if before is not None and terms(before) == terms(item):
                self.replays.add(index)
                continue
            if before is not None:
                conflicts.append(index)
                continue
            earlier[key(item)] = item
            problem = fill_problem(item, filled)
            if problem:
                errors[index] = problem
        if errors:
            raise serializers.ValidationError(errors)
        if conflicts:
            index = conflicts[0]
            message = f"execution {items[index]['exec_id']}: already booked with different terms"
            single = self.context.get("single", False)
            raise Refused(message, EXEC_ID_RULE, 409, None if single else index)
        return items


def fill_problem(item: dict[str, Any], filled: dict[int, Decimal]) -> dict[str, Any] | None:
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


def sign_problem(side: str, quantity: Decimal) -> str | None:
    """The database's execution_side_matches_sign, for executions and backtest trades."""
    if quantity == 0:
        return "must not be zero"
    if (side == Side.BUY) != (quantity > 0):
        return "is signed by its side: buys positive, sells negative"
    return None


class ExecutionSerializer(serializers.ModelSerializer[Execution]):
    """An execution. Quantity is signed (buys positive) and its side must match the order's;
    the account and instrument are the order's."""

    exec_id = serializers.CharField(
        max_length=64, help_text="unique in the order's account; posting it again is a replay"
    )
    order = TradableOrderField(help_text="an order id of an account you may trade")
    instrument = symbol_relation(read_only=True)
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
            "venue",
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

    # The fields as ModelSerializer builds them from the model, built once per process and
    # copied for each serializer (as DRF copies declared fields): a POST makes two.
    # By class: a subclass builds its own.
    _built_fields: ClassVar[dict[type, dict[str, serializers.Field[Any, Any, Any, Any]]]] = {}

    def get_fields(self) -> dict[str, serializers.Field[Any, Any, Any, Any]]:
        built = self._built_fields.get(type(self))
        if built is None:
            built = self._built_fields[type(self)] = super().get_fields()
        return copy.deepcopy(built)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
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


def batch_context(items: list[Any], request: Request) -> dict[str, Any]:
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
    if len(exec_ids) == 1:  # one POSTed execution: its lookup in the orders' query
        return {"request": request, **orders_and_booked(orders, exec_ids.pop())}
    orders_by_id = {order.pk: order for order in orders}
    # Only the accounts of the batch's orders, which the user may trade: an exec id of an
    # account the user may not see is never looked at.
    accounts = {order.account_id for order in orders_by_id.values()}
    booked = Execution.objects.filter(account__in=accounts, exec_id__in=exec_ids)
    return {
        "request": request,
        "orders": orders_by_id,
        "booked": {key(execution): execution for execution in booked},
    }


def orders_and_booked(orders: QuerySet[Order], exec_id: str) -> dict[str, Any]:
    """``orders`` by id, and the executions booked under ``exec_id`` in their accounts (only
    those: an account the user may not trade is never looked at), in one query: the booked
    execution's id comes with its order, and a replay (rare) is read by that id."""
    booked_in_account = Execution.objects.filter(account=OuterRef("account"), exec_id=exec_id)
    found = orders.annotate(booked_pk=Subquery(booked_in_account.values("pk")[:1]))
    orders_by_id = {order.pk: order for order in found}
    booked_pks = {order.booked_pk for order in orders_by_id.values()} - {None}
    booked = Execution.objects.filter(pk__in=booked_pks) if booked_pks else []
    return {"orders": orders_by_id, "booked": {key(e): e for e in booked}}


class BustSerializer(serializers.Serializer[Any]):
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


@extend_schema_view(list=extend_schema(parameters=schema_parameters(ExecutionQuery)))
class ExecutionViewSet(
    RowsList, BulkFormats, mixins.ListModelMixin, mixins.RetrieveModelMixin, ScopedViewSet
):
    """Executions of your accounts: book them (one or a batch), list (also in Arrow, Parquet,
    CSV), retrieve, bust."""

    queryset = Execution.objects.select_related("instrument")
    serializer_class = ExecutionSerializer
    pagination_class = newest_first("executed_at")
    query_class = ExecutionQuery
    lookups = {
        "account": "account",
        "order": "order_id",
        "symbol": "instrument",
        "kind": "kind",
        **time_lookups("executed_at"),
    }
    # Bulk formats: the range is on executed_at (``lookups``), so are the rows' order; the
    # instrument is its symbol today, as the JSON's (``symbol_relation``).
    bulk_ordering = ("executed_at", "pk")
    bulk_columns = {"instrument": "instrument__symbol"}
    # The JSON list written from plain rows (qvp_site.api.rows), the same symbol.
    rows_columns = (("instrument", "instrument__symbol"),)

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
        posted = Batch.of(request.data)
        batch = posted.validated(
            ExecutionSerializer,
            lambda items: {**batch_context(items, request), "single": posted.single},
            one_by_its_fields=True,
        )
        # ExecutionSerializer's list serializer (its Meta's list_serializer_class).
        replays = cast(ExecutionBatchSerializer, batch).replays
        created = self._book(batch.validated_data, replays, posted.single)
        booked = self._booked([key(item) for item in batch.validated_data])
        data = ExecutionSerializer(booked, many=True).data
        return Response(data[0] if posted.single else data, status=201 if created else 200)

    def _book(self, items: list[dict[str, Any]], replays: set[int], single: bool) -> int:
        """Book the batch's new executions in one call (``books.book_many``), whole or not
        at all: how many were new. A refusal names the item of the execution it names."""
        new = [(index, fill_row(item)) for index, item in enumerate(items) if index not in replays]
        if not new:
            return 0
        try:
            # A refusal answers 4xx, which rolls the request's transaction back
            # (ActingUserMiddleware): one execution needs no savepoint of its own. A batch
            # keeps one, so that refused_index may still read which item was refused.
            with transaction.atomic(savepoint=not single):
                created = len(books.book_many([row for _, row in new]))
        except DatabaseError as error:
            with self.judged(None if single else refused_index(error, new)):
                raise
        if not single and created:
            with connection.cursor() as cursor:
                request_seal(cursor)  # the sealer signs a batch at once, not in 5 s
        return created

    def _booked(self, keys: list[ExecKey]) -> list[Execution]:
        """The batch's executions as booked. Their accounts are their validated orders', which
        the user may trade (so see): not scoped again here, which would compile the visible
        accounts' subquery for nothing (row-level security still applies to the read)."""
        rows = Execution.objects.select_related("instrument").filter(
            account__in={account for account, _ in keys}, exec_id__in={e for _, e in keys}
        )
        found = {key(e): e for e in rows}
        missing = [k for k in keys if k not in found]
        if missing:  # booked in an account the user may no longer see
            raise Refused(f"execution {missing[0][1]}: already booked", EXEC_ID_RULE, 409)
        return [found[k] for k in keys]

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
        given = params.validated_data
        with self.judged():
            exec_id = books.bust(original, given.get("exec_id"), given["reason"])
        bust = self.get_queryset().get(account=original.account_id, exec_id=exec_id)
        return Response(self.get_serializer(bust).data, status=201)


# How the database names what it refused: an execution (the books' rules), an account
# (row-level security), or the unique key (account, exec id) of a duplicate (the index's own
# refusal, when two transactions book an exec id at once).
NAMES_ACCOUNT = re.compile(r"account (?P<account>\d+): ")
NAMES_KEY = re.compile(r"Key \(exec_id, account_id\)=\((?P<exec_id>.*), (?P<account>\d+)\)")
NewItems = list[tuple[int, dict[str, object]]]


def refused_index(error: DatabaseError, new: NewItems) -> int:
    """The index of the item the database's refusal names: by its account and exec id (a
    duplicate key), its account (row-level security), or its exec id (the books' rules; of
    items with that exec id in several accounts, the one booked in its account already:
    a duplicate). The first new item when it names none. Reads the database: call it outside
    the refused statement's savepoint."""
    diag = getattr(error.__cause__, "diag", None)
    message = str((diag and diag.message_primary) or error)
    found = NAMES_KEY.search(str((diag and diag.message_detail) or ""))
    if found:
        account, exec_id = int(found["account"]), found["exec_id"]
        return next(
            (i for i, row in new if (row["account_id"], row["exec_id"]) == (account, exec_id)),
            new[0][0],
        )
    found = NAMES_ACCOUNT.match(message)
    if found:
        return next((i for i, row in new if row["account_id"] == int(found["account"])), new[0][0])
    named = [(i, row) for i, row in new if message.startswith(f"execution {row['exec_id']}: ")]
    # An exec id may begin another's message ("A" and "A: B"): the longest one it names.
    longest = max((len(str(row["exec_id"])) for _, row in named), default=0)
    named = [(i, row) for i, row in named if len(str(row["exec_id"])) == longest]
    if len(named) > 1:  # one exec id in several accounts: the one that has it already
        exec_id = named[0][1]["exec_id"]
        accounts = {row["account_id"] for _, row in named}
        booked = set(
            Execution.objects.filter(exec_id=exec_id, account__in=accounts).values_list(
                "account_id", flat=True
            )
        )
        return next((i for i, row in named if row["account_id"] in booked), named[0][0])
    return named[0][0] if named else new[0][0]


def fill_row(item: dict[str, Any]) -> dict[str, object]:
    """A validated item as the row ``trading.books`` books."""
    given = {name: item[name] for name in ("fee", "liquidity", "reason") if name in item}
    row = books.fill_row(
        item["order"],
        item["exec_id"],
        item["quantity"],
        item["price"],
        item["executed_at"],
        **given,
    )
    # Where it traded: booked where the books name the column (trading.books.COLUMNS).
    row["venue"] = item.get("venue", "")
    return row
