"""The trading REST API, a module per resource: accounts, orders, executions, positions, cash,
portfolio snapshots, backtests (routed in ``qvp_site/api_urls.py``).

Every list and record is scoped to the accounts the user's groups grant (``scoping``; writes
need ``tradable_by``, which no auditor passes), and the database's row-level security applies
the same rule again. Serializers mirror the database's rules, so bad input is a 400 naming the
field; the database stays the final judge: a refusal by one of its constraints or triggers is
answered ``{"detail": message, "rule": name}`` (``qvp_site.api.errors``), 400 for bad data,
409 for a conflict with the record's state or an existing record, never a 500.

Instruments are named by symbol everywhere (writes and responses), as in the market-data API;
accounts and orders by id. Executions take their account and instrument from their order and
are booked by ``trading.books``, as every other door books them.
"""

from trading.api.accounts import AccountViewSet
from trading.api.backtests import BacktestViewSet
from trading.api.cash import CashViewSet
from trading.api.executions import ExecutionViewSet
from trading.api.orders import OrderViewSet
from trading.api.positions import PositionViewSet
from trading.api.snapshots import SnapshotViewSet

__all__ = [
    "AccountViewSet",
    "BacktestViewSet",
    "CashViewSet",
    "ExecutionViewSet",
    "OrderViewSet",
    "PositionViewSet",
    "SnapshotViewSet",
]
