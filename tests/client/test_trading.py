"""The client's trading and risk: an order placed, an execution posted, the position read as
exact decimals, the same as the JSON API's; VaR equal to the server's; refusals naming the
field; a token refused."""

from __future__ import annotations

from decimal import Decimal

import pandas as pd
import pyarrow as pa
import pytest
from qvp_client import Client, Forbidden, NotFound, Refused, Unauthorized

from risk.var import value_at_risk
from tests.client.conftest import START, json_rows


def test_an_order_placed_and_filled_shows_in_the_position(qvp, api, world):
    account = world["account"].id
    order = qvp.place_order(account, "AAPL", "buy", Decimal("100"))
    assert (order["status"], order["instrument"], order["account"]) == ("new", "AAPL", account)
    assert order["client_order_id"]  # made by the client: a retry cannot place it twice

    fill = {
        "exec_id": "fill-1",
        "order": order["id"],
        "side": "buy",
        "quantity": Decimal("60"),
        "price": Decimal("187.125"),
        "fee": Decimal("1.5"),
        "executed_at": START,
    }
    (booked,) = qvp.post_executions([fill])
    assert booked["position_quantity_after"] == "60.00000000"
    # Posted again: a replay, the booked execution back, nothing booked twice.
    assert qvp.post_executions([fill]) == [booked]

    positions = qvp.positions(account=account)
    assert isinstance(positions, pd.DataFrame)
    (row,) = positions.to_dict("records")
    assert (row["instrument"], row["quantity"]) == ("AAPL", Decimal("60"))
    assert row["average_cost"] == Decimal("187.125")
    assert row["last_execution_at"] == pd.Timestamp(START)
    assert str(positions["last_execution_at"].dtype) == "datetime64[us, UTC]"

    # The JSON API's rows, field by field.
    (expected,) = json_rows(api, "positions/", {"account": account})
    table = qvp.positions(account=account, output="arrow")
    assert table.schema.field("quantity").type == pa.decimal128(20, 8)
    got = table.to_pylist()[0]
    for name, value in expected.items():
        if name.endswith("_at"):
            assert got[name] == pd.Timestamp(value).to_pydatetime(), name
        elif isinstance(got[name], Decimal):
            assert got[name] == Decimal(value), name
        else:
            assert got[name] == value, name

    polars = qvp.positions(account=account, output="polars")
    assert polars["quantity"].to_list() == [Decimal("60")]


def test_an_order_refused_names_its_field(qvp, world):
    with pytest.raises(Refused) as refused:
        qvp.place_order(world["account"].id, "AAPL", "buy", "100", order_type="limit")
    assert refused.value.status == 400
    assert [(p.index, p.field) for p in refused.value.problems] == [(None, "limit_price")]
    assert "a limit order needs one" in str(refused.value)


def test_an_execution_batch_refused_names_the_item_and_field(qvp, world):
    order = qvp.place_order(world["account"].id, "AAPL", "buy", "10")
    good = {
        "exec_id": "a",
        "order": order["id"],
        "side": "buy",
        "quantity": "5",
        "price": "10",
        "executed_at": START,
    }
    bad = {**good, "exec_id": "b", "quantity": "-5"}
    with pytest.raises(Refused) as refused:
        qvp.post_executions([good, bad])
    (problem,) = refused.value.problems
    assert (problem.index, problem.field) == (1, "quantity")
    assert "signed by its side" in problem.messages[0]
    assert qvp.positions(account=world["account"].id).empty  # nothing booked


def test_var_is_the_servers(qvp, world):
    account = world["account"].id
    order = qvp.place_order(account, "AAPL", "buy", "100")
    fill = {
        "exec_id": "v-1",
        "order": order["id"],
        "side": "buy",
        "quantity": "100",
        "price": "150",
        "executed_at": START,
    }
    qvp.post_executions(fill)  # one mapping: a batch of one
    found = qvp.var(account, confidence=0.9, lookback=20, as_of=START)
    (expected,) = value_at_risk(account, confidence=0.9, lookback=20, as_of=START)
    assert found.var is not None
    assert found.var > 0
    assert (found.var, found.cvar, found.observations) == (
        expected.var,
        expected.cvar,
        expected.observations,
    )
    assert found.portfolio_value == pytest.approx(expected.portfolio_value)

    with pytest.raises(Refused) as refused:
        qvp.var(account, confidence=1.5)
    assert [p.field for p in refused.value.problems] == ["confidence"]


def test_a_wrong_token_an_unknown_record_and_a_forbidden_write_raise(live_server, qvp, world):
    # The server answers both 403 (DRF takes the challenge of its first authenticator, the
    # session's, which has none): the client tells them from a refused permission.
    with Client(live_server.url, "") as nobody, pytest.raises(Unauthorized):
        nobody.positions()
    with Client(live_server.url, "qvp_not-a-key") as stranger, pytest.raises(Unauthorized) as bad:
        stranger.positions()
    assert "invalid or revoked token" in str(bad.value)
    with pytest.raises(NotFound):
        qvp.cancel_order(999_999)
    # The quant may not write news (no add_newsarticle).
    with pytest.raises(Forbidden):
        qvp.post("news/", [{"ts": START, "source": "wire", "headline": "h"}])
