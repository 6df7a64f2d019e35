"""Lists besides bars through the client's Arrow reads (orders, executions, cash, signals):
the JSON API's rows, with exact decimals and UTC times."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pandas as pd
import pyarrow as pa
from qvp_client import Client

from tests.client.conftest import START, json_rows

WEEK_BEFORE, WEEK_AFTER = START - timedelta(days=7), START + timedelta(days=7)


def same_rows(frame: pd.DataFrame, expected: list[dict]) -> None:
    """``frame``'s rows are the JSON's (by id), each value the JSON's read as its type."""
    got = {row["id"]: row for row in frame.to_dict("records")}
    assert set(got) == {row["id"] for row in expected}
    for want in expected:
        row = got[want["id"]]
        for name, value in want.items():
            have = row[name]
            if isinstance(have, Decimal):
                assert have == Decimal(value), name
            elif isinstance(have, pd.Timestamp):
                assert have == pd.Timestamp(value), name
            elif value is None:
                assert have is None or pd.isna(have), name
            else:
                assert have == value, name


def test_orders_executions_and_cash_come_as_the_json_apis_rows(qvp, api, world, live_server):
    account = world["account"].id
    qvp.post("cash/", {"account": account, "kind": "deposit", "amount": Decimal("5000.25")})
    order = qvp.place_order(account, "AAPL", "buy", "10", order_type="limit", limit_price="190")
    fills = [
        {
            "exec_id": f"e{n}",
            "order": order["id"],
            "side": "buy",
            "quantity": "2.5",
            "price": Decimal("189.123456"),
            "executed_at": START + timedelta(seconds=n, microseconds=123),
        }
        for n in range(3)
    ]
    qvp.post_executions(fills)
    now = pd.Timestamp.now(tz="UTC")
    since, until = now - timedelta(hours=1), now + timedelta(hours=1)

    orders = qvp.orders(since, until, account=account)
    same_rows(orders, json_rows(api, "orders/", {"account": account}))
    assert orders.loc[0, "limit_price"] == Decimal("190")

    executions = qvp.executions(WEEK_BEFORE, WEEK_AFTER, account=account, output="arrow")
    assert executions.schema.field("price").type == pa.decimal128(20, 8)
    assert executions.schema.field("executed_at").type == pa.timestamp("us", tz="UTC")
    assert executions["executed_at"].to_pylist() == [f["executed_at"] for f in fills]
    expected = json_rows(api, "executions/", {"account": account})
    same_rows(executions.to_pandas(), expected)
    # The JSON list page by page (cursor pages of one row): the same rows, newest first.
    with Client(live_server.url, world["key"], page_size=1) as paging:
        assert list(paging.rows("executions/", {"account": account})) == expected

    # The deposit now, the trades' entries at their executions: years apart, read in chunks.
    cash = qvp.cash(WEEK_BEFORE, until, account=account)
    same_rows(cash, json_rows(api, "cash/", {"account": account}))
    assert Decimal("5000.25") in cash["amount"].tolist()


def test_signals_come_as_the_json_apis_rows(qvp, api):
    items = [
        {
            "agent": "momentum_agent",
            "symbol": "AAPL",
            "ts": START + timedelta(minutes=n),
            "strength": -0.25 * n,
            "confidence": 0.5,
            "horizon": timedelta(hours=4),
        }
        for n in range(4)
    ]
    qvp.post_signals(items)
    frame = qvp.signals(WEEK_BEFORE, WEEK_AFTER, agent="momentum_agent", symbols=["AAPL"])
    assert frame["ts"].tolist() == [pd.Timestamp(i["ts"]) for i in items]  # oldest first
    expected = json_rows(api, "signals/", {"agent": "momentum_agent"})
    assert sorted(frame["strength"]) == sorted(r["strength"] for r in expected)
    assert set(frame.columns) >= {"agent", "symbol", "ts", "strength", "confidence"}
