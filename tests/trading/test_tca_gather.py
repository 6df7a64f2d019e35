"""The TCA's pending refresh restates every change of the ticks near a measured fill, whoever
makes it and however long its transaction stays open: on one node the statement triggers of
trading/sql/tca/0016.sql queue it, on Citus the refresh gathers it first
(trading/sql/tca_gather_on_citus/0020.sql), by when it was learnt, up to the settled moment. And
on Citus no role but the owner runs the gathering or moves its moment, which would hide changes
from it."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from tests.attack_review.test_attacks_26 import denied, owner_connection, refused_as
from tests.fixtures.trading import T0, fill
from tests.trading.test_tca import END, START, approx, cost, market, order, quotes
from tests.trading.test_tca_restate import empty_queue, queued
from trading import tca

__all__ = ["market"]  # the fixture, imported to be used here

# A quote loaded late: the latest before the order (mid 100.4), its arrival price now.
LATE_QUOTE = (
    "INSERT INTO marketdata_tick (instrument_id, ts, sequence, kind, bid, ask, side)"
    " VALUES (%s, %s, 0, 'quote', 100.3, 100.5, '')"
)


def measured(account, instrument):
    """A buy at T0 at 100.05 against a mid of 100, its cost computed: 5 bps of slippage."""
    quotes(instrument)
    buy = fill(order(account, instrument), 100, "100.05", at=T0)
    tca.refresh(START, END)
    assert cost(buy).slippage_bps == approx(5.0)
    return buy


@pytest.mark.django_db(transaction=True)
def test_a_quote_the_application_adds_is_restated(account, instrument, market, db_role):
    """On Citus the application's rows are dated by the worker that stores them (marketdata
    0021), not by the coordinator that gathers: they are gathered all the same."""
    empty_queue()
    buy = measured(account, instrument)
    with db_role("trading_app"), connection.cursor() as cursor:
        cursor.execute(LATE_QUOTE, [instrument.pk, T0 - timedelta(seconds=90)])
    assert tca.refresh_pending().ranges == 1
    assert cost(buy).arrival_price == approx(100.4)
    assert queued() == []


@pytest.mark.django_db(transaction=True)
def test_a_load_open_across_a_refresh_is_restated_once_it_commits(account, instrument, market):
    """A load that began before a pending refresh and commits after it: its quote is learnt
    from the load's start, which the refresh cannot see yet. The refresh leaves it (it reads as
    known at the settled moment, before the open load), and the next one restates it."""
    empty_queue()
    buy = measured(account, instrument)
    with owner_connection() as load:
        load.execute(LATE_QUOTE, [instrument.pk, T0 - timedelta(seconds=90)])
        assert tca.refresh_pending().ranges == 0
        assert cost(buy).arrival_price == approx(100.0)
        load.commit()
    assert tca.refresh_pending().ranges == 1
    assert cost(buy).arrival_price == approx(100.4)
    assert tca.refresh_pending().ranges == 0


ON_CITUS_ALONE = pytest.mark.skipif(
    not settings.QVP_CITUS_WORKERS,
    reason="the gathering exists on Citus alone (elsewhere the statement triggers queue)",
)
GATHERING = [
    "SELECT trading_tca_gather(now())",
    "SELECT * FROM trading_tca_changed_days('marketdata_tick', 'marketdata_tickrevision',"
    " '-infinity', now())",
    "SELECT * FROM trading_tcagathered",
    "UPDATE trading_tcagathered SET gathered_until = 'infinity'",
    "DELETE FROM trading_tcagathered",
]


@ON_CITUS_ALONE
@pytest.mark.parametrize("statement", GATHERING)
@pytest.mark.parametrize("role", ["trading_app", "trading_readonly", "qvp_research"])
def test_no_role_gathers_or_moves_the_gatherings_moment(app_role_password, db, role, statement):
    assert denied(refused_as(role, statement))


@ON_CITUS_ALONE
def test_a_gathering_reads_no_further_than_the_settled_moment(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT gathered_until FROM trading_tcagathered")
        (before,) = cursor.fetchone()
        cursor.execute("SELECT trading_tca_gather('infinity'), marketdata_settled_at()")
        _queued, settled = cursor.fetchone()
        cursor.execute("SELECT gathered_until FROM trading_tcagathered")
        (after,) = cursor.fetchone()
    assert before < after <= settled


@ON_CITUS_ALONE
def test_a_gathering_reads_no_further_than_the_moment_asked_and_never_back(db):
    with connection.cursor() as cursor:
        cursor.execute("SELECT gathered_until, marketdata_settled_at() FROM trading_tcagathered")
        before, settled = cursor.fetchone()
        asked = before + (settled - before) / 2
        cursor.execute("SELECT trading_tca_gather(%s)", [asked])
        cursor.execute("SELECT gathered_until FROM trading_tcagathered")
        assert cursor.fetchone()[0] == asked
        cursor.execute("SELECT trading_tca_gather(%s)", [before - timedelta(days=1)])
        assert cursor.fetchone()[0] == 0  # an earlier moment gathers nothing
        cursor.execute("SELECT gathered_until FROM trading_tcagathered")
        assert cursor.fetchone()[0] == asked  # and moves nothing back
