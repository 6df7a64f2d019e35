"""Transaction cost analysis, version 0016 (trading/sql/tca/0016.sql): a cash dividend between
a fill and its markout, costs by venue, strategy and agent, the order's decision price in the
shortfall, and restatement without waiting for the close: a bust booked through the API as the
application's role takes the cost row out at once, a revised quote is restated by the pending
refresh (``manage.py tca --pending``), which nobody but the owner may run or read."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.utils import timezone
from psycopg import errors

from marketdata.models import Instrument
from qvp_site.db import partitions
from signals.models import Agent
from tests.fixtures.trading import T0, fill, make_order
from tests.trading.test_tca import END, START, approx, bps, cost, market, quote, quotes
from trading import tca
from trading.models import Execution, ExecutionCost

__all__ = ["market"]  # the fixture, imported to be used here


def order(account, instrument, side: str = "buy", quantity: str = "100", **extra):
    """An order created a minute before T0 (its arrival)."""
    return make_order(
        account, instrument, side, quantity, created_at=T0 - timedelta(minutes=1), **extra
    )


def set_action(instrument, kind: str, ex_date: date, ratio, amount) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT marketdata_action_set(%s, %s, %s, %s, %s, %s, NULL, NULL, NULL, NULL)",
            [instrument.pk, kind, ex_date, ratio, amount, "USD" if amount else None],
        )


def queued() -> list[tuple]:
    """The queue, once the changes are gathered into it (on Citus; elsewhere the statement
    triggers queue them as they are made)."""
    tca.gather_changes()
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT account_id, instrument_id, cause FROM trading_tcapending ORDER BY id"
        )
        return cursor.fetchall()


def empty_queue() -> None:
    """The queue is not a model's table: a transactional test's flush leaves it as it was."""
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM trading_tcapending")


# Dividends: a markout across an ex-date shows the total return, not the drop.


def test_a_markout_across_a_cash_dividend_adds_it_back(account, instrument, market):
    quotes(instrument)  # mid 100, then 100.2 from T0 + 5 s
    # A dividend of 1 goes ex on 2024-05-14 (00:00 UTC); the next day's mid is 99.5.
    quote(instrument, 24 * 3600 - 60, "99.4", "99.6")
    set_action(instrument, "cash_dividend", date(2024, 5, 14), None, 1)
    buy = fill(order(account, instrument), 100, "100", at=T0)
    tca.refresh(START, END)

    row = cost(buy)
    # The price moved from 100 to 99.5 and the holder was paid 1: 100.5 in the fill's terms.
    assert row.markout_1d_bps == approx(bps(99.5 + 1, 100))
    assert row.markout_30m_bps == approx(bps(100.2, 100))  # before the ex moment: untouched
    assert row.slippage_bps == approx(0.0)


def test_an_arrival_before_a_dividend_and_a_fill_after_it_compare_ex(account, instrument, market):
    quotes(instrument)  # the arrival, a minute before T0: mid 100
    quote(instrument, 24 * 3600 + 60, "99.0", "99.2")  # ex: mid 99.1
    set_action(instrument, "cash_dividend", date(2024, 5, 14), None, Decimal("0.9"))
    # Decided the day before, filled the morning after the ex moment at 99.15.
    buy = fill(order(account, instrument), 100, "99.15", at=T0 + timedelta(seconds=24 * 3600 + 90))
    tca.refresh(START, END + timedelta(days=1))

    row = cost(buy)
    # The arrival mid of 100 read before the ex moment is 99.1 ex the dividend.
    assert (row.arrival_price, row.arrival_source) == (approx(100 - 0.9), "quote_mid")
    assert row.slippage_bps == approx(bps(99.15, 99.1))


def test_a_dividend_is_taken_in_the_fills_shares_across_a_split(account, instrument, market):
    quotes(instrument)
    # The next day: a 2:1 split and a dividend of 0.5 a new share, mid 50.
    quote(instrument, 24 * 3600 - 60, "49.9", "50.1")
    set_action(instrument, "split", date(2024, 5, 14), 2, None)
    set_action(instrument, "cash_dividend", date(2024, 5, 14), None, Decimal("0.5"))
    buy = fill(order(account, instrument), 100, "100", at=T0)
    tca.refresh(START, END)

    # An old share is two new ones: worth 100, paid 1.
    assert cost(buy).markout_1d_bps == approx(bps(101, 100))


# The lookups read the fill's day first, then the day before.


def test_a_quote_of_the_day_before_is_found_across_midnight(account, instrument, market):
    midnight = T0.replace(hour=0, minute=0) + timedelta(days=1)
    seconds = int((midnight - T0).total_seconds())
    quote(instrument, seconds - 30, "99.9", "100.1")  # 23:59:30, the day before the fill
    quote(instrument, seconds - 60, "98.9", "99.1")  # older: not the latest
    buy = fill(order(account, instrument), 100, "100.05", at=midnight + timedelta(seconds=20))
    tca.refresh(START, END + timedelta(days=1))

    row = cost(buy)
    assert (row.mid_at_fill, row.spread_paid_bps) == (approx(100.0), approx(5.0))
    assert row.markout_1s_bps == approx(bps(100.0, 100.05))


# Dimensions: venue, strategy, agent.


def test_costs_carry_venue_strategy_and_agent_and_group_by_them(desks, instrument, market):
    quotes(instrument)
    momentum = Agent.objects.create(name="mom-1", kind="momentum")
    decided = order(desks["alpha"], instrument, strategy="pairs", agent=momentum)
    fill(decided, 100, "100.05", at=T0, venue="XNAS")
    fill(order(desks["alpha"], instrument), 100, "100.1", at=T0 + timedelta(seconds=1))
    tca.refresh(START, END)

    rows = ExecutionCost.objects.order_by("executed_at")
    assert [(r.venue, r.strategy, r.agent_id) for r in rows] == [
        ("XNAS", "pairs", momentum.pk),
        ("", "", None),
    ]
    for dimension, groups in (
        ("venue", {"XNAS": 5.0, "(unknown)": 10.0}),
        ("strategy", {"pairs": 5.0, "(none)": 10.0}),
        ("agent", {"mom-1": 5.0, "(none)": 10.0}),
    ):
        found = {
            r["grp"]: r["mean"]
            for r in tca.summary(dimension, START, END)
            if r["measure"] == "slippage"
        }
        assert found == {g: approx(m) for g, m in groups.items()}, dimension


def test_the_command_groups_by_venue(account, instrument, market):
    quotes(instrument)
    fill(order(account, instrument), 100, "100.05", at=T0, venue="ARCX")
    out = StringIO()
    call_command("tca", "--start", "2024-05-12", "--end", "2024-05-14", "--refresh",
                 "--by", "venue", stdout=out)  # fmt: skip
    assert "ARCX: 1 executions" in out.getvalue()


def test_the_shortfall_measures_from_the_orders_decision_price(account, instrument, market):
    quotes(instrument)  # arrival mid 100
    decided = order(account, instrument, decision_price=Decimal("99.9"))
    fill(decided, 100, "100.05", at=T0)
    arrived = order(account, instrument)
    fill(arrived, 100, "100.05", at=T0)

    rows = {r["order_id"]: r for r in tca.shortfall(START, END)}
    mine = rows[decided.pk]
    assert (mine["decision_price"], mine["decision_source"]) == (approx(99.9), "order")
    assert mine["arrival_price"] == approx(100.0)  # the arrival stays the arrival
    assert mine["execution_cost"] == approx(100 * (100.05 - 99.9))
    assert mine["shortfall_bps"] == approx(100 * 0.15 / (99.9 * 100) * 1e4)
    other = rows[arrived.pk]
    assert (other["decision_price"], other["decision_source"]) == (approx(100.0), "arrival")


# Restatement at once.


@pytest.mark.django_db(transaction=True)
def test_a_bust_through_the_api_as_the_app_role_takes_the_row_out_at_once(
    desks, instrument, client, app_role_password
):
    empty_queue()
    for table in ("marketdata_tick", "marketdata_minutebar"):
        partitions.prepare_load(table, T0 - timedelta(days=2), T0 + timedelta(days=2))
    quotes(instrument)
    busted = fill(order(desks["alpha"], instrument), 100, "100.05", at=T0)
    kept = fill(order(desks["alpha"], instrument), 50, "100.1", at=T0 + timedelta(seconds=1))
    tca.refresh(START, END)
    client.force_login(desks["alice"])

    with connection.cursor() as cursor:
        cursor.execute("SET ROLE trading_app")
    try:
        response = client.post(
            f"/api/v1/executions/{busted.pk}/bust/",
            {"reason": "broker bust"},
            content_type="application/json",
        )
    finally:
        with connection.cursor() as cursor:
            cursor.execute("RESET ROLE")
    assert response.status_code == 201, response.content

    # Committed with the bust: nobody reads what the busted fill cost.
    assert list(ExecutionCost.objects.values_list("execution", flat=True)) == [kept.pk]
    assert queued() == [(desks["alpha"].pk, instrument.pk, "execution")]
    assert tca.pending() == 1
    done = tca.refresh_pending()
    assert (done.ranges, done.refreshed.written, done.refreshed.removed) == (1, 0, 0)
    assert queued() == []


def test_a_correction_gets_its_row_from_the_pending_refresh(account, instrument, market):
    empty_queue()
    quotes(instrument)
    wrong = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    right = Execution.objects.create(
        exec_id="fix-1", order_id=wrong.order_id, account_id=wrong.account_id,
        instrument_id=wrong.instrument_id, side="buy", quantity=wrong.quantity,
        price="100.1", fee=0, executed_at=T0 + timedelta(seconds=1), kind="correction",
        supersedes=wrong, reason="price corrected",
    )  # fmt: skip
    assert not ExecutionCost.objects.exists()

    out = StringIO()
    call_command("tca", "--pending", stdout=out)
    assert "pending: 1 queued ranges refreshed, 1 written, 0 removed" in out.getvalue()
    (row,) = ExecutionCost.objects.all()
    assert (row.execution_id, row.slippage_bps) == (right.pk, approx(10.0))
    assert queued() == []


@pytest.mark.django_db(transaction=True)
def test_a_revised_quote_is_restated_by_the_pending_refresh(account, tmp_path: Path):
    def ingest(name: str, ask: str) -> None:
        path = tmp_path / name
        path.write_text(
            f"timestamp,bid,ask,sequence\n{(T0 - timedelta(minutes=2)).isoformat()},99.9,{ask},1\n"
        )
        call_command("ingest_ticks", str(path), "--symbol", "REVP", "--asset-class", "equity",
                     stdout=StringIO())  # fmt: skip

    empty_queue()
    ingest("first.csv", "100.1")  # mid 100
    instrument = Instrument.objects.get(symbol="REVP")
    buy = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    first = cost(buy)
    assert first.slippage_bps == approx(5.0)

    ingest("revised.csv", "100.3")  # mid 100.1: the fill was 5 bps below it
    assert queued() == [(None, instrument.pk, "marketdata_tickrevision")]
    done = tca.refresh_pending()
    assert (done.ranges, done.refreshed.written) == (1, 1)
    restated = cost(buy)
    assert restated.slippage_bps == approx(bps(100.05, 100.1))
    assert restated.known_at > first.known_at
    assert queued() == []
    assert tca.refresh_pending().ranges == 0


# On Citus the changes are gathered by their moments (trading/sql/tca_gather_on_citus/0020.sql),
# which the statements of one transaction share: there the steps are committed one by one.
@pytest.mark.committed_on_citus
def test_quotes_added_near_a_measured_fill_queue_its_day_once(account, instrument, market):
    """A quote that arrives after the costs were computed (a late load, a live feed) replaces
    nothing, so no revision names it: the insert itself queues the fill's days (on Citus, the
    gathering of the changes), and a second statement on the same day moves the entry's moment
    instead of queueing it again."""
    empty_queue()
    quotes(instrument)
    buy = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    assert queued() == []
    quote(instrument, -90, "100.3", "100.5")  # late: now the latest before the order
    quote(instrument, -80, "100.3", "100.5")
    assert queued() == [(None, instrument.pk, "marketdata_tick")]
    tca.refresh_pending(known_at=timezone.now())
    assert cost(buy).arrival_price == approx(100.4)
    assert queued() == []


def test_a_dividend_stated_after_the_refresh_queues_the_fills_around_it(
    account, instrument, market
):
    empty_queue()
    quotes(instrument)
    quote(instrument, 24 * 3600 - 60, "99.4", "99.6")
    buy = fill(order(account, instrument), 100, "100", at=T0)
    tca.refresh(START, END)
    assert cost(buy).markout_1d_bps == approx(bps(99.5, 100))

    set_action(instrument, "cash_dividend", date(2024, 5, 14), None, 1)
    assert queued() == [(None, instrument.pk, "marketdata_corporateaction")]
    tca.refresh_pending()
    assert cost(buy).markout_1d_bps == approx(bps(100.5, 100))


def test_pending_takes_no_range(account):
    with pytest.raises(CommandError, match="--pending takes no --start"):
        call_command("tca", "--pending", "--start", "2024-05-12", stdout=StringIO())


def test_the_scheduler_refreshes_the_queue_every_five_minutes_in_the_week():
    from qvp_site.scheduler import discover

    job = discover()["tca-pending"]
    assert job.cron == "*/5 * * * 1-5"


@pytest.mark.django_db(transaction=True)
def test_the_app_role_may_neither_read_nor_write_the_queue_nor_refresh_it(desks, connect_as_app):
    conn = connect_as_app()
    for statement in (
        "SELECT count(*) FROM trading_tcapending",
        "INSERT INTO trading_tcapending (first_at, end_at, cause) VALUES (now(), now() + interval"
        " '1 day', 'me')",
        "DELETE FROM trading_tcapending",
        "SELECT * FROM trading_tca_refresh_pending(now())",
    ):
        with pytest.raises(errors.InsufficientPrivilege):
            conn.execute(statement)
