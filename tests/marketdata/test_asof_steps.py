"""The as-of join's steps and reads (qvp_site/db/asof.py, marketdata 0016), from the side that
would break them: a match an hour to a day away or days away found by the later steps (by
the queryset and by the psql functions) and a tolerance stopping them; the later steps never
run where the first found a row (a join of 100,000 fills would pay them all); the quotes read
by the covering index alone; ``asof.arrow`` reading the join's rows as Django's connection
acts (role and user: row-level security), not as the superuser the reader connects as."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.db import connection, transaction

from marketdata.models import Instrument, Tick
from qvp_site.acting import declare
from qvp_site.db import engine, partitions
from qvp_site.db.asof import arrow
from qvp_site.db.roles import APP_ROLE
from tests.fixtures.trading import fill, make_order
from tests.marketdata.conftest import START
from tests.plans import index_copies, plan_nodes

FUNCTIONS = {"backward": "marketdata_quote_asof", "forward": "marketdata_quote_after"}


@pytest.fixture
def far_quotes(partitioned_for, instrument) -> Instrument:
    """A trade at START; on each side of it quotes 5 hours and 3 days away (none within the
    hour: the first step finds nothing, the second or third does)."""
    partitions.prepare_load("marketdata_tick", START - timedelta(days=4), START + timedelta(days=4))
    for sign in (-1, 1):
        for distance, bid in ((timedelta(hours=5), 95.0), (timedelta(days=3), 93.0)):
            Tick.objects.create(
                instrument=instrument, ts=START + sign * distance, sequence=1, kind="quote",
                bid=bid + sign, ask=bid + sign + 0.1,
            )  # fmt: skip
    Tick.objects.create(instrument=instrument, ts=START, sequence=1, price=100, size=1)
    return instrument


@pytest.mark.parametrize("direction", ["backward", "forward"])
@pytest.mark.parametrize(
    ("tolerance", "found"),
    [
        (None, 95.0),  # the second step (the day)
        (timedelta(hours=5), 95.0),  # the tolerance's edge, inclusive
        (timedelta(hours=4, minutes=59), None),
        (timedelta(minutes=30), None),  # one step only
    ],
)
def test_the_later_steps_find_what_the_hour_has_not(far_quotes, direction, tolerance, found):
    sign = -1 if direction == "backward" else 1
    expected = None if found is None else found + sign
    trades = Tick.objects.trades().filter(instrument=far_quotes)
    joined = trades.asof(Tick.objects.quotes(), direction=direction, tolerance=tolerance)
    assert joined.values_list("asof_bid", flat=True).get() == expected
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT bid FROM {FUNCTIONS[direction]}(%s, %s, %s)", [far_quotes.id, START, tolerance]
        )
        assert cursor.fetchall() == ([] if found is None else [(expected,)])


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_the_third_step_finds_days_away(far_quotes, direction):
    """The quotes 5 hours away deleted: only the ones 3 days away remain, beyond the day."""
    hours = [START - timedelta(hours=5), START + timedelta(hours=5)]
    Tick.objects.filter(instrument=far_quotes, ts__in=hours).delete()
    sign = -1 if direction == "backward" else 1
    trades = Tick.objects.trades().filter(instrument=far_quotes)
    joined = trades.asof(Tick.objects.quotes(), direction=direction)
    assert joined.values_list("asof_bid", flat=True).get() == 93.0 + sign
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT bid FROM {FUNCTIONS[direction]}(%s, %s)", [far_quotes.id, START])
        assert cursor.fetchall() == [(93.0 + sign,)]
        cursor.execute(
            f"SELECT bid FROM {FUNCTIONS[direction]}(%s, %s, interval '2 days 23 hours')",
            [far_quotes.id, START],
        )
        assert cursor.fetchall() == []


def test_the_later_steps_never_run_where_the_hour_found_a_quote(partitioned_for, instrument):
    """Every trade has a quote a second before it: the day's and the far steps run 0 times."""
    rows = []
    for n in range(20):
        at = START + timedelta(minutes=n)
        rows.append(Tick(instrument=instrument, ts=at, sequence=1, kind="quote", bid=99, ask=100))
        rows.append(
            Tick(instrument=instrument, ts=at + timedelta(seconds=1), sequence=1, price=99, size=1)
        )
    Tick.objects.bulk_create(rows)
    joined = Tick.objects.trades().filter(instrument=instrument).asof(Tick.objects.quotes())
    sql, params = joined.values_list("id", "asof_id").query.sql_with_params()
    with connection.cursor() as cursor:
        if engine.is_citus():  # every shard's plan, not the one Citus would pick to show
            cursor.execute("SET LOCAL citus.explain_all_tasks = on")
        cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0][0]["Plan"]
    # The steps' UNION ALL: an Append of three Limits (another may append the partitions), one
    # on one node, one a shard on Citus.
    appends = [
        node
        for node in plan_nodes(plan)
        if node["Node Type"] == "Append" and {p["Node Type"] for p in node["Plans"]} == {"Limit"}
    ]
    assert appends, plan
    each = [[step["Actual Loops"] for step in append["Plans"]] for append in appends]
    loops = [sum(step) for step in zip(*each, strict=True)]
    assert loops == [20, 0, 0], loops


def test_the_quotes_are_read_from_the_covering_index_alone(partitioned_for, instrument):
    Tick.objects.create(instrument=instrument, ts=START, sequence=1, kind="quote", bid=1, ask=2)
    trades = Tick.objects.trades().filter(instrument=instrument)
    joined = trades.asof(Tick.objects.quotes(), columns=["id", "ts", "sequence", "bid", "ask"])
    with connection.cursor() as cursor:
        covering = index_copies(cursor, ["tick_quote_asof"])
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_bitmapscan = off")
        plan = joined.explain()
    lateral = plan[plan.index("Limit") :]
    assert "Index Only Scan Backward using" in lateral, lateral
    assert any(name in lateral for name in covering), lateral


# --- asof.arrow -----------------------------------------------------------------------------


@pytest.fixture
def fills_of_two_desks(transactional_db, desks, instrument) -> dict:
    """A quote, and a fill after it in each desk's account (committed: the reader's own
    connection sees only what is)."""
    partitions.prepare_load("marketdata_tick", START - timedelta(days=1), START + timedelta(days=1))
    Tick.objects.create(instrument=instrument, ts=START, sequence=1, kind="quote", bid=9, ask=10)
    fills = {}
    for name in ("alpha", "beta"):
        order = make_order(desks[name], instrument)
        fills[name] = fill(order, 10, "10", at=START + timedelta(seconds=5))
    return fills


def _joined():
    from trading.models import Execution

    return (
        Execution.objects.order_by("id")
        .asof(Tick.objects.quotes(), time="executed_at", columns=["bid", "ask"])
        .values_list("id", "asof_bid", "asof_ask")
    )


def test_arrow_reads_what_the_queryset_reads(fills_of_two_desks):
    table = arrow(_joined())
    assert table.column_names == ["id", "asof_bid", "asof_ask"]
    assert sorted(zip(*table.to_pydict().values(), strict=True)) == list(_joined())
    assert len(table) == 2


def test_arrow_reads_as_the_app_role_and_the_user_django_acts_as(
    fills_of_two_desks, desks, app_role_password
):
    """The reader connects as the superuser Django's settings name; under the app role with
    bob declared, it sees bob's desk's fill alone, as the queryset does."""
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"SET LOCAL ROLE {APP_ROLE}")
        declare(desks["bob"])
        expected = list(_joined())
        table = arrow(_joined())
    assert expected == [(fills_of_two_desks["beta"].id, 9.0, 10.0)]
    assert list(zip(*table.to_pydict().values(), strict=True)) == expected


def test_arrow_reads_with_memoize_off_unless_told(transactional_db, instrument):
    """An as-of join's left times seldom repeat: the read turns the lookups' cache off (the
    setting is the read's own, Django's connection keeps its)."""
    from django.db.models.expressions import RawSQL

    setting = Instrument.objects.annotate(m=RawSQL("current_setting('enable_memoize')", []))
    assert arrow(setting.values_list("m")).to_pydict() == {"m": ["off"]}
    assert arrow(setting.values_list("m"), settings={}).to_pydict() == {"m": ["on"]}
    assert list(setting.values_list("m", flat=True)) == ["on"]
