"""import_executions: a good file booked whole in file order, a bad one refused whole with its
line numbers, a second import booking nothing, and the triggers' refusals named by line."""

from __future__ import annotations

from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from marketdata.models import Instrument
from qvp_site.models import AuditEntry
from tests.fixtures.trading import make_order
from trading.models import CashEntry, Execution, Order, Position

HEADER = "exec_id,account,client_order_id,symbol,side,quantity,price,fee,liquidity,executed_at"


@pytest.fixture
def msft(db):
    return Instrument.objects.create(symbol="MSFT", asset_class="equity", exchange="XNAS")


@pytest.fixture
def orders(account, instrument, msft):
    return {
        "o-buy": make_order(account, instrument, client_order_id="o-buy", quantity="100"),
        "o-sell": make_order(account, msft, "sell", client_order_id="o-sell", quantity="50"),
    }


def write(tmp_path: Path, *lines: str, header: str = HEADER) -> Path:
    path = tmp_path / "executions.csv"
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def run(path: Path) -> str:
    out = StringIO()
    call_command("import_executions", str(path), stdout=out)
    return out.getvalue()


def refusal(path: Path) -> str:
    with pytest.raises(CommandError) as refused:
        run(path)
    return str(refused.value)


GOOD = [
    "e1,alpha,o-buy,AAPL,buy,60,190.5,1.2,added,2024-05-13T14:30:00Z",
    "e2,alpha,o-sell,MSFT,sell,-50,410,0.5,removed,2024-05-13 14:31:00",
    "e3,alpha,o-buy,AAPL,BUY,40,191,0,,2024-05-13T10:32:00-04:00",
]


def test_a_good_file_is_booked_in_file_order(tmp_path, orders):
    out = run(write(tmp_path, *GOOD))

    assert "executions.csv: 3 rows read, 3 booked, 0 already booked" in out
    booked = Execution.objects.order_by("id")
    assert [(e.exec_id, e.quantity, e.position_sequence) for e in booked] == [
        ("e1", 60, 1),
        ("e2", -50, 1),
        ("e3", 40, 2),
    ]
    e3 = booked.get(exec_id="e3")
    assert (e3.liquidity, e3.fee, e3.executed_at.isoformat()) == (
        "unknown",
        0,
        "2024-05-13T14:32:00+00:00",
    )
    assert booked.get(exec_id="e2").executed_at.isoformat() == "2024-05-13T14:31:00+00:00"
    aapl = Position.objects.get(instrument__symbol="AAPL")
    assert (aapl.quantity, aapl.average_cost) == (100, Decimal("190.7"))
    assert Position.objects.get(instrument__symbol="MSFT").quantity == -50
    statuses = dict(Order.objects.values_list("client_order_id", "status"))
    assert statuses == {"o-buy": "filled", "o-sell": "filled"}
    # Cash: -11,430 - 1.2, +20,500 - 0.5, -7,640
    assert sum(CashEntry.objects.values_list("amount", flat=True)) == Decimal("1428.3")
    actors = set(AuditEntry.objects.filter(table_name="trading_execution").values_list("actor"))
    assert actors == {("system:import_executions",)}


def test_a_bust_and_a_correction_may_name_executions_of_earlier_lines(tmp_path, orders):
    header = f"{HEADER},kind,supersedes,reason"
    path = write(
        tmp_path,
        "e1,alpha,o-buy,AAPL,buy,60,190,1,added,2024-05-13T14:30:00Z,,,",
        "e2,alpha,o-buy,AAPL,buy,40,191,0,added,2024-05-13T14:31:00Z,fill,,",
        "e3,alpha,o-buy,AAPL,sell,-60,190,-1,added,2024-05-13T15:00:00Z,bust,e1,wrong fill",
        "e4,alpha,o-buy,AAPL,buy,30,191,0,added,2024-05-13T15:01:00Z,correction,e2,size",
        header=header,
    )
    assert "4 rows read, 4 booked" in run(path)
    assert Position.objects.get().quantity == 30
    assert Order.objects.get(client_order_id="o-buy").filled_quantity == 30
    bust = Execution.objects.get(exec_id="e3")
    assert (bust.kind, bust.supersedes.exec_id, bust.reason) == ("bust", "e1", "wrong fill")


def test_importing_a_file_again_books_nothing_new(tmp_path, orders):
    path = write(tmp_path, *GOOD)
    run(path)
    before = (Execution.objects.count(), CashEntry.objects.count(), AuditEntry.objects.count())

    assert "3 rows read, 0 booked, 3 already booked" in run(path)
    after = (Execution.objects.count(), CashEntry.objects.count(), AuditEntry.objects.count())
    assert after == before
    assert Position.objects.get(instrument__symbol="AAPL").quantity == 100


def test_a_file_partly_booked_books_the_rest(tmp_path, orders):
    run(write(tmp_path, GOOD[0]))
    assert "3 rows read, 2 booked, 1 already booked" in run(write(tmp_path, *GOOD))


def test_a_bad_file_is_refused_whole_with_the_line_and_reason_of_each_bad_line(
    tmp_path, orders, account, msft
):
    Order.objects.filter(client_order_id="o-sell").update(status="cancelled")
    make_order(account, msft, client_order_id="o-msft")
    path = write(
        tmp_path,
        GOOD[0],
        "b1,alpha,o-buy,AAPL,buy,abc,190,0,added,2024-05-13T14:30:00Z",
        "b2,nobody,o-buy,AAPL,buy,1,190,0,added,2024-05-13T14:30:00Z",
        "b3,alpha,o-none,AAPL,buy,1,190,0,added,2024-05-13T14:30:00Z",
        "b4,alpha,o-buy,AAPL,buy,-1,190,0,added,2024-05-13T14:30:00Z",
        "b5,alpha,o-buy,AAPL,buy,1,0,0,added,2024-05-13T14:30:00Z",
        "b6,alpha,o-msft,AAPL,buy,1,190,0,added,2024-05-13T14:30:00Z",
        "b7,alpha,o-buy,AAPL,buy,1,190,0,added",
        "b8,alpha,o-buy,AAPL,buy,1,190,0,added,yesterday",
        "b9,alpha,o-buy,ZZZ,buy,1,190,0,added,2024-05-13T14:30:00Z",
        ",alpha,o-buy,AAPL,,1,190,0,added,2024-05-13T14:30:00Z",
        "b11,alpha,o-sell,MSFT,sell,-1,410,0,added,2024-05-13T14:30:00Z",
        "b12,alpha,o-buy,AAPL,buy,NaN,1.123456789,-1,maker,2024-05-13T14:30:00Z",
        GOOD[2],
    )
    message = refusal(path)

    assert message.startswith("refused executions.csv: 12 bad rows, nothing written")
    for expected in [
        "line 3: unparseable number in quantity: 'abc'",
        "line 4: unknown account 'nobody'",
        "line 5: no order 'o-none' in account 'alpha'",
        "line 6: side buy does not match quantity -1 (buys are positive)",
        "line 7: price 0 is not positive",
        "line 8: order 'o-msft' is for MSFT, not AAPL",
        "line 9: 9 fields where the header has 10",
        "line 10: unparseable time in executed_at: 'yesterday'",
        "line 11: unknown symbol ZZZ on 2024-05-13",
        "line 12: missing exec_id, side",
        "line 13: order 'o-sell' is cancelled and takes no fills",
        "line 14: quantity is not a finite number; price has more than 8 decimal places;"
        " negative fee (only a bust refunds one); unknown liquidity 'maker'",
    ]:
        assert expected in message
    assert "line 2:" not in message
    assert "line 15:" not in message
    assert not Execution.objects.exists()
    assert not CashEntry.objects.exists()


def test_a_line_with_a_field_missing_names_the_count(tmp_path, orders):
    message = refusal(write(tmp_path, GOOD[0], "b7,alpha,o-buy,AAPL,buy,1,190,0,added"))
    assert "line 3: 9 fields where the header has 10" in message


def test_only_the_first_twenty_bad_lines_are_listed(tmp_path, orders):
    lines = [f"b{n},alpha,o-buy,AAPL,buy,1,-1,0,added,2024-05-13T14:30:00Z" for n in range(25)]
    message = refusal(write(tmp_path, *lines))
    assert "25 bad rows" in message
    assert "line 21:" in message
    assert "line 22:" not in message
    assert "... and 5 more" in message


def test_a_header_without_the_columns_is_refused_before_reading(tmp_path, orders):
    path = write(tmp_path, "e1,alpha,1", header="exec_id,acount,quantity")
    message = refusal(path)
    assert "missing columns account, client_order_id, symbol, side, price, executed_at" in message
    assert "unknown columns 'acount'" in message


def test_an_execution_booked_already_with_other_terms_is_refused(tmp_path, orders):
    run(write(tmp_path, GOOD[0]))
    changed = GOOD[0].replace(",60,", ",61,")
    message = refusal(write(tmp_path, changed, GOOD[0].replace("e1", "e9").replace(",60,", ",1,")))
    assert "line 2: exec_id e1 is booked already with other terms" in message
    assert Execution.objects.count() == 1


def test_an_exec_id_twice_in_a_file_with_other_terms_is_refused(tmp_path, orders):
    message = refusal(write(tmp_path, GOOD[0], GOOD[2].replace("e3", "e1")))
    assert "line 3: exec_id e1 is on line 2 with other terms" in message


def test_an_overfill_is_refused_with_the_line_of_the_execution(tmp_path, orders):
    path = write(
        tmp_path,
        GOOD[0],
        "x2,alpha,o-buy,AAPL,buy,30,191,0,added,2024-05-13T14:31:00Z",
        "x3,alpha,o-buy,AAPL,buy,20,192,0,added,2024-05-13T14:32:00Z",
        GOOD[1],
    )
    message = refusal(path)
    assert message.startswith("refused executions.csv: 1 bad row, nothing written")
    assert "line 4: execution x3: fills 20.00000000 of order" in message
    assert "beyond its quantity 100" in message
    assert not Execution.objects.exists()
    assert Order.objects.get(client_order_id="o-buy").filled_quantity == 0


def test_an_exec_id_names_an_execution_within_its_account(tmp_path, orders, instrument):
    """The same exec ids in two accounts are two executions; a bust names one of its own
    account, whether booked already or on an earlier line; a replay is one of its account."""
    from trading.models import Account

    beta = Account.objects.create(name="beta")
    make_order(beta, instrument, client_order_id="o-buy", quantity="100")
    run(write(tmp_path, GOOD[0]))  # e1 in alpha
    header = f"{HEADER},kind,supersedes,reason"
    path = write(
        tmp_path,
        "e1,alpha,o-buy,AAPL,buy,60,190.5,1.2,added,2024-05-13T14:30:00Z,,,",  # a replay
        "e1,beta,o-buy,AAPL,buy,10,200,0,added,2024-05-13T14:30:00Z,,,",
        "e2,beta,o-buy,AAPL,buy,5,201,0,added,2024-05-13T14:31:00Z,,,",
        "e9,beta,o-buy,AAPL,sell,-10,200,0,added,2024-05-13T15:00:00Z,bust,e1,beta's own",
        "e9,alpha,o-buy,AAPL,buy,20,191,0,added,2024-05-13T15:01:00Z,correction,e1,alpha's",
        header=header,
    )
    assert "5 rows read, 4 booked, 1 already booked" in run(path)
    booked = {(e.account.name, e.exec_id): e for e in Execution.objects.select_related("account")}
    assert booked["beta", "e9"].supersedes == booked["beta", "e1"]
    assert booked["alpha", "e9"].supersedes == booked["alpha", "e1"]
    quantities = dict(Position.objects.values_list("account__name", "quantity"))
    assert quantities == {"alpha": 20, "beta": 5}


def test_a_symbol_a_delisted_company_bore_too_is_the_listed_one_on_the_executions_date(
    tmp_path, orders
):
    """A symbol is no longer unique: a delisted company that bore AAPL too is not the
    instrument of a fill on a day the listed one bore it (the security master resolves each
    line on its execution's date), and no line is booked twice."""
    Instrument.objects.create(symbol="AAPL", asset_class="equity", active=False)
    out = run(write(tmp_path, *GOOD))
    assert "executions.csv: 3 rows read, 3 booked, 0 already booked" in out
    assert set(Execution.objects.values_list("instrument__symbol", "instrument__active")) == {
        ("AAPL", True),
        ("MSFT", True),
    }
