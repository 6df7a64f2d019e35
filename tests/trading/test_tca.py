"""Transaction cost analysis (trading/tca.py, trading/sql/tca/0016.sql): hand-computed costs of
a buy and a sell against the quotes, markouts from ticks and from minute bars (named), no
market data at all, a split between a fill and its markout, a bust taken out at once and a
market-data revision restated by a refresh, a refresh that changes nothing, the shortfall of
an order, aggregates, the command, and who may read the table."""

from __future__ import annotations

from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import psycopg
import pytest
from django.core.management import CommandError, call_command
from django.db import ProgrammingError, connection
from psycopg import errors

from marketdata.models import Instrument, MinuteBar, Tick
from qvp_site.db import partitions
from tests.fixtures.trading import T0, fill, make_order
from tests.knowledge import between_commits
from trading import tca
from trading.models import Execution, ExecutionCost

START, END = T0 - timedelta(days=1), T0 + timedelta(days=1)
QUOTED = [  # (seconds from T0, bid, ask): mid 100 before the fills, 100.2 from T0 + 5 s
    (-120, "99.9", "100.1"),
    (5, "100.1", "100.3"),
]


def approx(value: float) -> object:
    return pytest.approx(value, abs=1e-6)


@pytest.fixture
def market(db):
    """The partitions the tests' market data need around T0."""
    partitions.prepare_load("marketdata_tick", T0 - timedelta(days=2), T0 + timedelta(days=2))
    partitions.prepare_load("marketdata_minutebar", T0 - timedelta(days=2), T0 + timedelta(days=2))


def quote(instrument, seconds: int, bid: str, ask: str, sequence: int = 0) -> Tick:
    return Tick.objects.create(
        instrument=instrument,
        ts=T0 + timedelta(seconds=seconds),
        sequence=sequence,
        kind="quote",
        bid=float(bid),
        ask=float(ask),
    )


def quotes(instrument) -> None:
    for seconds, bid, ask in QUOTED:
        quote(instrument, seconds, bid, ask)


def order(account, instrument, side: str = "buy", quantity: str = "100"):
    """An order created a minute before T0 (its arrival)."""
    return make_order(account, instrument, side, quantity, created_at=T0 - timedelta(minutes=1))


def cost(execution: Execution) -> ExecutionCost:
    return ExecutionCost.objects.get(execution=execution)


def bps(new: float, old: float) -> float:
    return (new - old) / old * 1e4


def test_a_buy_above_the_mid_is_a_positive_cost(account, instrument, market):
    quotes(instrument)
    buy = fill(order(account, instrument), 100, "100.05", at=T0)
    assert tca.refresh(START, END) == 1

    row = cost(buy)
    assert (row.arrival_price, row.arrival_source) == (approx(100.0), "quote_mid")
    assert row.slippage_bps == approx(5.0)  # 100.05 against 100: 5 bps paid
    assert row.mid_at_fill == approx(100.0)
    assert row.spread_paid_bps == approx(5.0)
    assert row.notional == 10005
    assert row.markout_source == "ticks"
    # +1 s: the mid is still 100; from +10 s on it is 100.2 (the quote at T0 + 5 s).
    assert row.markout_1s_bps == approx(bps(100.0, 100.05))
    for horizon in ("10s", "1m", "5m", "30m", "1d"):
        assert getattr(row, f"markout_{horizon}_bps") == approx(bps(100.2, 100.05)), horizon
    assert row.markout_10s_bps > 0  # the price rose after the buy: in our favour


def test_a_sell_below_the_mid_is_a_positive_cost_and_its_markouts_sign_by_side(
    account, instrument, market
):
    quotes(instrument)
    sell = fill(order(account, instrument, "sell"), -100, "99.9", at=T0)
    tca.refresh(START, END)

    row = cost(sell)
    assert row.slippage_bps == approx(10.0)  # sold 10 bps below the arrival mid
    assert row.spread_paid_bps == approx(10.0)
    assert row.notional == 9990
    # The price rose after the sale: against us, negative.
    assert row.markout_1m_bps == approx(-bps(100.2, 99.9))
    assert row.markout_1m_bps < 0


def test_markouts_from_minute_bars_where_there_are_no_ticks(account, market):
    barred = Instrument.objects.create(symbol="BARS", asset_class="equity", exchange="XNAS")
    MinuteBar.objects.bulk_create(
        MinuteBar(
            instrument=barred,
            ts=T0 + timedelta(minutes=k),
            open=50 + k * 0.05,
            high=50 + k * 0.05,
            low=50 + k * 0.05,
            close=50 + k * 0.05,
            volume=10,
        )
        for k in range(-5, 41)
    )
    buy = fill(order(account, barred), 10, "50", at=T0 + timedelta(seconds=30))
    tca.refresh(START, END)

    row = cost(buy)
    # Arrival at T0 - 1 min: the bar of T0 - 2 min ended then, close 49.9.
    assert (row.arrival_price, row.arrival_source) == (approx(49.9), "bar_close")
    assert row.slippage_bps == approx(bps(50, 49.9))
    assert row.markout_source == "minute_bars"
    assert (row.mid_at_fill, row.spread_paid_bps) == (None, None)
    # No bar ends within 1 s or 10 s of the fill: minute bars cannot say.
    assert (row.markout_1s_bps, row.markout_10s_bps) == (None, None)
    assert row.markout_1m_bps == approx(0.0)  # the bar of T0 ended at T0 + 1 min: 50
    assert row.markout_5m_bps == approx(bps(50.2, 50))  # the bar of T0 + 4 min
    assert row.markout_30m_bps == approx(bps(51.45, 50))  # the bar of T0 + 29 min
    assert row.markout_1d_bps == approx(bps(52.0, 50))  # the last bar, T0 + 40 min


def test_no_market_data_at_all_gives_nulls_not_errors(account, market):
    bare = Instrument.objects.create(symbol="BARE", asset_class="equity")
    buy = fill(order(account, bare), 10, "20", at=T0)
    assert tca.refresh(START, END) == 1

    row = cost(buy)
    assert row.notional == 200
    assert (row.arrival_price, row.arrival_source, row.markout_source) == (None, "", "")
    measures = [row.slippage_bps, row.spread_paid_bps]
    measures += [getattr(row, f"markout_{h}_bps") for h in tca.HORIZONS]
    assert measures == [None] * 8
    assert tca.summary("all", START, END)[0]["mean"] is None


def test_markouts_across_a_split_compare_in_the_fills_shares(account, instrument, market):
    quotes(instrument)
    # 2:1 from 2024-05-14 (00:00 UTC): the next day's mid of 50.5 is 101 in the fill's shares.
    quote(instrument, 24 * 3600 - 60, "50.4", "50.6")
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, 'split', %s, 2, NULL, NULL, NULL, NULL, NULL, NULL)",
            [instrument.pk, date(2024, 5, 14)],
        )
    buy = fill(order(account, instrument), 100, "100", at=T0)
    tca.refresh(START, END)

    row = cost(buy)
    assert row.markout_1d_bps == approx(bps(101.0, 100))
    assert row.markout_30m_bps == approx(bps(100.2, 100))


def test_a_bust_takes_the_row_out_at_once(account, instrument, market):
    quotes(instrument)
    first = fill(order(account, instrument), 100, "100.05", at=T0)
    kept = fill(order(account, instrument), 50, "100.1", at=T0 + timedelta(seconds=1))
    tca.refresh(START, END)
    assert ExecutionCost.objects.count() == 2

    Execution.objects.create(
        exec_id="bust-1", order_id=first.order_id, account_id=first.account_id,
        instrument_id=first.instrument_id, side="sell", quantity=-first.quantity,
        price=first.price, fee=0, executed_at=T0 + timedelta(seconds=2), kind="bust",
        supersedes=first, reason="broker bust",
    )  # fmt: skip
    # In the bust's own transaction (trading_tca_superseded), not at the next refresh.
    assert list(ExecutionCost.objects.values_list("execution", flat=True)) == [kept.pk]
    done = tca.refresh_detail(START, END)
    assert (done.written, done.removed) == (0, 0)
    assert list(ExecutionCost.objects.values_list("execution", flat=True)) == [kept.pk]


def test_a_correction_replaces_the_row_of_the_execution_it_corrects(account, instrument, market):
    quotes(instrument)
    wrong = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)

    right = Execution.objects.create(
        exec_id="fix-1", order_id=wrong.order_id, account_id=wrong.account_id,
        instrument_id=wrong.instrument_id, side="buy", quantity=wrong.quantity,
        price="100.1", fee=0, executed_at=T0, kind="correction", supersedes=wrong,
        reason="price corrected",
    )  # fmt: skip
    assert not ExecutionCost.objects.exists()  # the corrected row went with the correction
    done = tca.refresh_detail(START, END)
    assert (done.written, done.removed) == (1, 0)
    (row,) = ExecutionCost.objects.all()
    assert row.execution_id == right.pk
    assert row.slippage_bps == approx(10.0)


def test_refreshing_a_range_twice_changes_nothing(account, instrument, market):
    quotes(instrument)
    fill(order(account, instrument), 100, "100.05", at=T0)
    fill(order(account, instrument, "sell"), -40, "99.95", at=T0 + timedelta(seconds=3))
    assert tca.refresh(START, END) == 2
    before = list(ExecutionCost.objects.order_by("id").values())

    assert tca.refresh(START, END) == 0
    assert tca.refresh(START - timedelta(days=3), END + timedelta(days=3)) == 0
    assert list(ExecutionCost.objects.order_by("id").values()) == before


def test_a_refresh_of_one_account_leaves_the_others(desks, instrument, market):
    quotes(instrument)
    fill(order(desks["alpha"], instrument), 100, "100.05", at=T0)
    fill(order(desks["beta"], instrument), 100, "100.05", at=T0)
    assert tca.refresh(START, END, account=desks["alpha"].pk) == 1
    assert list(ExecutionCost.objects.values_list("account__name", flat=True)) == ["alpha"]


def test_refresh_refuses_an_empty_range(account):
    with pytest.raises(ValueError, match=r"end .* must be after start"):
        tca.refresh(END, START)


def test_implementation_shortfall_of_a_partly_filled_order(account, instrument, market):
    quotes(instrument)
    # The day's close: the mid prevailing at the end of the order's UTC day, 100.2.
    buy = order(account, instrument, quantity="100")
    fill(buy, 60, "100.05", fee="3", at=T0)
    fill(buy, 20, "100.1", fee="1", at=T0 + timedelta(seconds=10))

    (row,) = tca.shortfall(START, END)
    assert row["order_id"] == buy.pk
    assert (row["decision_price"], row["arrival_price"]) == (approx(100.0), approx(100.0))
    assert row["filled"] == 80
    assert row["fees"] == 4
    assert float(row["average_fill"]) == approx((60 * 100.05 + 20 * 100.1) / 80)
    assert row["close_price"] == approx(100.2)
    execution = 60 * 0.05 + 20 * 0.1  # paid above the decision price
    opportunity = 20 * 0.2  # the 20 not filled, dearer at the close
    assert row["execution_cost"] == approx(execution)
    assert row["opportunity_cost"] == approx(opportunity)
    assert row["shortfall"] == approx(execution + 4 + opportunity)
    assert row["shortfall_bps"] == approx((execution + 4 + opportunity) / 10000 * 1e4)


def test_aggregates_weight_by_notional_with_a_confidence_interval(desks, instrument, market):
    quotes(instrument)
    fill(order(desks["alpha"], instrument), 100, "100.05", at=T0)  # 5 bps on 10,005
    fill(
        order(desks["alpha"], instrument, quantity="300"),
        300,
        "100.1",
        at=T0 + timedelta(seconds=1),
    )  # 10
    fill(order(desks["beta"], instrument, "sell"), -100, "99.9", at=T0)  # 10 bps on 9,990
    tca.refresh(START, END)

    rows = {(r["grp"], r["measure"]): r for r in tca.summary("account", START, END)}
    alpha = rows["alpha", "slippage"]
    w, x = [10005.0, 30030.0], [5.0, 10.0]
    mean = (w[0] * x[0] + w[1] * x[1]) / sum(w)
    se = (2 * sum(wi * wi * (xi - mean) ** 2 for wi, xi in zip(w, x, strict=True))) ** 0.5 / sum(w)
    assert (alpha["executions"], alpha["n"], alpha["notional"]) == (2, 2, 40035)
    assert alpha["mean"] == approx(mean)
    assert (alpha["ci_low"], alpha["ci_high"]) == (
        approx(mean - 1.96 * se),
        approx(mean + 1.96 * se),
    )
    beta = rows["beta", "slippage"]
    assert (beta["mean"], beta["ci_low"]) == (approx(10.0), None)  # one row: no interval
    assert {r["grp"] for r in tca.summary("side", START, END)} == {"buy", "sell"}
    assert {r["grp"] for r in tca.summary("size", START, END)} == {"10k-100k", "< 10k"}
    with pytest.raises(ValueError, match="dimension must be one of"):
        tca.summary("desk", START, END)


def test_the_command_refreshes_and_prints_the_curve(account, instrument, market):
    quotes(instrument)
    fill(order(account, instrument), 100, "100.05", at=T0)
    out = StringIO()
    call_command(
        "tca", "--account", str(account.pk), "--start", "2024-05-12", "--end", "2024-05-14",
        "--refresh", stdout=out,
    )  # fmt: skip
    text = out.getvalue()
    assert "1 written, 0 removed" in text
    assert "all: 1 executions, notional 10,005.00" in text
    assert "slippage        +5.00 bps (n=1)" in text
    assert "markout_10s" in text
    assert "markout_1d" in text
    out = StringIO()
    call_command("tca", "--account", "alpha", "--start", "2024-05-12", "--end", "2024-05-14",
                 "--by", "side", stdout=out)  # fmt: skip
    assert "buy: 1 executions" in out.getvalue()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--account", "nobody"], "--account: no account with the id or name 'nobody'"),
        (["--start", "2024-05-14", "--end", "2024-05-12"], "--end .* must be after --start"),
        (["--start", "yesterday"], "--start"),
        (["--by", "desk"], "--by"),
    ],
)
def test_the_command_names_the_option_it_refuses(account, arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("tca", *arguments, stdout=StringIO())
    assert not ExecutionCost.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_a_revised_quote_restates_the_row_and_the_old_knowledge_repeats(account, tmp_path: Path):
    def ingest(name: str, ask: str) -> None:
        path = tmp_path / name
        path.write_text(
            f"timestamp,bid,ask,sequence\n{(T0 - timedelta(minutes=2)).isoformat()},99.9,{ask},1\n"
        )
        call_command("ingest_ticks", str(path), "--symbol", "REVQ", "--asset-class", "equity",
                     stdout=StringIO())  # fmt: skip

    ingest("first.csv", "100.1")  # mid 100
    instrument = Instrument.objects.get(symbol="REVQ")
    buy = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    first = cost(buy)
    assert first.slippage_bps == approx(5.0)
    known_before = between_commits()

    ingest("revised.csv", "100.3")  # mid 100.1: the fill was 5 bps below it
    assert tca.refresh(START, END) == 1
    restated = cost(buy)
    assert restated.slippage_bps == approx(bps(100.05, 100.1))
    assert restated.known_at > first.known_at

    # Read as known before the revision, the first numbers come back.
    tca.refresh(START, END, known_at=known_before)
    assert cost(buy).slippage_bps == approx(5.0)


# Who may read the costs: as executions, by account; the research role not at all.


@pytest.fixture
def costed(desks, instrument, market):
    quotes(instrument)
    for name in ("alpha", "beta"):
        fill(order(desks[name], instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    return desks


def acting(conn: psycopg.Connection, user=None, actor: str = ""):
    conn.execute(
        "SELECT set_config('qvp.user_id', %s, false), set_config('qvp.actor', %s, false)",
        [str(user.pk) if user else "", user.username if user else actor],
    )


def visible(conn: psycopg.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT a.name FROM trading_executioncost c JOIN trading_account a ON a.id = c.account_id"
        " ORDER BY 1"
    ).fetchall()
    return [name for (name,) in rows]


@pytest.mark.django_db(transaction=True)
def test_the_app_role_reads_the_costs_of_its_users_accounts_and_writes_none(costed, connect_as_app):
    conn = connect_as_app()
    assert visible(conn) == []  # nobody declared
    for user, expected in (("alice", ["alpha"]), ("bob", ["beta"]), ("audrey", ["alpha", "beta"])):
        acting(conn, costed[user])
        assert visible(conn) == expected, user
        summary = conn.execute(
            "SELECT grp FROM trading_tca_summary('account', %s, %s, NULL)"
            " WHERE measure = 'slippage' ORDER BY 1",
            [START, END],
        ).fetchall()
        assert [g for (g,) in summary] == expected
    acting(conn, costed["alice"])
    for statement in (
        "UPDATE trading_executioncost SET slippage_bps = 0",
        "DELETE FROM trading_executioncost",
        "SELECT * FROM trading_tca_refresh(now() - interval '9 years', now(), NULL, now())",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)
    assert ExecutionCost.objects.filter(slippage_bps=0).count() == 0


@pytest.mark.django_db(transaction=True)
def test_the_research_role_cannot_read_the_costs(costed, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_roles WHERE rolname = 'qvp_research'")
        if cursor.fetchone() is None:
            pytest.skip("no research role on this server")
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE qvp_research")
        try:
            with pytest.raises(ProgrammingError, match="permission denied"):
                cursor.execute("SELECT count(*) FROM trading_executioncost")
        finally:
            cursor.execute("RESET ROLE")


@pytest.mark.django_db(transaction=True)
def test_the_readonly_role_reads_every_account(costed, app_role_password):
    with connection.cursor() as cursor:
        cursor.execute("SET ROLE trading_readonly")
        try:
            cursor.execute("SELECT count(*) FROM trading_executioncost")
            assert cursor.fetchone()[0] == 2
        finally:
            cursor.execute("RESET ROLE")


def test_the_scheduler_refreshes_the_last_two_days_after_the_close():
    from qvp_site.scheduler import discover

    job = discover()["tca-refresh"]
    assert job.cron == "30 20 * * 1-5"
