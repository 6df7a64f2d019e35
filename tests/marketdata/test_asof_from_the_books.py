"""The as-of join from the books to the ticks, on every engine the answers of
``pandas.merge_asof``. On Citus the executions stay on the coordinator and the ticks are
distributed: the lookups must run on the shards (qvp_site/db/asof_shards.py), never by
bringing the ticks to the coordinator, and give the answers one node gives."""

from __future__ import annotations

import random
from datetime import timedelta
from io import StringIO

import pytest
from django.conf import settings
from django.core.management import call_command
from django.db import NotSupportedError, connection
from django.db.models import Avg, Count, Exists, OuterRef, Subquery

from marketdata.models import Instrument, Tick
from qvp_site.db.asof import default_workers, split
from tests.fixtures.trading import fill, make_order
from tests.knowledge import between_commits
from tests.marketdata import merge_asof
from tests.marketdata.conftest import START

INSTRUMENTS = 8  # over the 4 shards of the test cluster, so over both workers
SECONDS = 20

OPTIONS = [
    {"direction": "backward"},
    {"direction": "forward"},
    {"direction": "backward", "allow_exact": False, "tolerance": timedelta(seconds=4)},
    {"direction": "forward", "offset": timedelta(seconds=3)},
    {"direction": "backward", "offset": timedelta(hours=3)},  # past the first step
]


@pytest.fixture
def books_and_quotes(partitioned_for, account) -> dict:
    """Random quotes on few seconds (ties and exact matches common), one instrument in four
    without any; fills at random seconds, several at one time."""
    from trading.models import Execution

    rng = random.Random(31)
    instruments = [
        Instrument.objects.create(symbol=f"BOOK{n}", asset_class="equity")
        for n in range(INSTRUMENTS)
    ]
    quotes = []
    for n, instrument in enumerate(instruments):
        if n % 4 == 3:
            continue
        seen: set = set()
        for _ in range(10):
            ts = START + timedelta(seconds=rng.randrange(SECONDS))
            sequence = rng.choice([s for s in range(1, 9) if (ts, s) not in seen])
            seen.add((ts, sequence))
            bid = round(rng.uniform(90, 110), 2)
            quotes.append(
                Tick(instrument=instrument, ts=ts, sequence=sequence, kind="quote", bid=bid,
                     ask=bid + 0.05)
            )  # fmt: skip
    Tick.objects.bulk_create(quotes)
    # Read back: on Citus a multi-row INSERT returns its rows shard by shard, not in the
    # order given, so the ids bulk_create sets on the objects may be crossed.
    quotes = list(Tick.objects.filter(instrument__in=instruments))
    for instrument in instruments:
        order = make_order(account, instrument, quantity="1000")
        for _ in range(5):
            fill(order, 1, "100", at=START + timedelta(seconds=rng.randrange(-2, SECONDS + 2)))
    return {"executions": list(Execution.objects.all()), "quotes": quotes}


def _expected(executions, quotes, options: dict) -> dict[int, int | None]:
    return merge_asof.matches(
        [(e.id, e.instrument_id, e.executed_at) for e in executions],
        [(q.id, q.instrument_id, q.ts, q.sequence) for q in quotes],
        **options,
    )


def _joined(**options):
    from trading.models import Execution

    options.setdefault("columns", ["id", "bid", "ask"])
    return Execution.objects.asof(Tick.objects.quotes(), time="executed_at", **options)


@pytest.mark.parametrize("options", OPTIONS)
def test_executions_get_the_quotes_merge_asof_gives(books_and_quotes, options):
    expected = _expected(books_and_quotes["executions"], books_and_quotes["quotes"], options)
    assert len(expected) == 5 * INSTRUMENTS
    assert any(expected.values())
    assert None in expected.values()
    assert dict(_joined(**options).values_list("id", "asof_id")) == expected


def test_a_filter_before_the_join_and_one_after_it_give_the_same_rows(books_and_quotes):
    """The lookups are those of the rows the statement reads, filtered before ``asof`` or
    after it, on the right side's columns too."""
    from trading.models import Execution

    some = [e.id for e in books_and_quotes["executions"][::3]]
    before = Execution.objects.filter(id__in=some).asof(
        Tick.objects.quotes(), time="executed_at", columns=["id"]
    )
    after = _joined().filter(id__in=some)
    assert dict(before.values_list("id", "asof_id")) == dict(after.values_list("id", "asof_id"))
    assert len(some) == after.count()
    quoted = _joined().filter(asof_bid__gt=100)
    assert set(quoted.values_list("id", flat=True)) == {
        i for i, bid in _joined().values_list("id", "asof_bid") if bid is not None and bid > 100
    }


def test_the_latest_fill_of_each_instrument_gets_its_quote(books_and_quotes):
    """DISTINCT ON the instrument, the latest fill kept: its own time looked up."""
    latest = _joined().order_by("instrument_id", "-executed_at", "-id").distinct("instrument_id")
    expected = _expected(books_and_quotes["executions"], books_and_quotes["quotes"], OPTIONS[0])
    rows = dict(latest.values_list("id", "asof_id"))
    assert len(rows) == INSTRUMENTS
    assert rows == {i: expected[i] for i in rows}


def test_two_joined_querysets_combined_answer_for_both(books_and_quotes):
    from trading.models import Execution

    executions = books_and_quotes["executions"]
    first, second = [executions[0].id, executions[1].id], [executions[-1].id]
    combined = _joined().filter(id__in=first) | _joined().filter(id__in=second)
    expected = _expected(executions, books_and_quotes["quotes"], OPTIONS[0])
    assert dict(combined.values_list("id", "asof_id")) == {i: expected[i] for i in first + second}
    assert Execution.objects.filter(id__in=combined.values("id")).count() == 3


def test_grouped_fills_get_the_quote_at_their_time(books_and_quotes):
    """Fills grouped by instrument and time, the groups of more than one kept."""
    from trading.models import Execution

    grouped = (
        Execution.objects.order_by()
        .values("instrument_id", "executed_at")
        .annotate(fills=Count("id"))
        .filter(fills__gt=1)
        .asof(Tick.objects.quotes(), time="executed_at", columns=["bid"])
    )
    expected = {}
    for execution in books_and_quotes["executions"]:
        key = (execution.instrument_id, execution.executed_at)
        expected[key] = expected.get(key, 0) + 1
    rows = list(grouped.values_list("instrument_id", "executed_at", "fills", "asof_bid"))
    assert {(i, t): n for i, t, n, _ in rows} == {k: n for k, n in expected.items() if n > 1}
    one_by_one = _joined().values_list("instrument_id", "executed_at", "asof_bid")
    bids = {(i, t): bid for i, t, bid in one_by_one}
    assert {(i, t): bid for i, t, _, bid in rows} == {(i, t): bids[i, t] for i, t, _, _ in rows}


@pytest.mark.xfail(
    bool(settings.QVP_CITUS_WORKERS),
    reason="Citus refuses the pairs' CTE correlated to an outer query (issue 31)",
    raises=NotSupportedError,  # a refusal that says so, never a wrong answer
    strict=True,
)
def test_a_join_inside_a_subquery_answers_for_each_outer_row(books_and_quotes):
    from trading.models import Order

    first_quote = Subquery(
        _joined().filter(order=OuterRef("pk")).order_by("executed_at", "id").values("asof_bid")[:1]
    )
    orders = dict(Order.objects.annotate(bid=first_quote).values_list("id", "bid"))
    expected = {}
    for execution in sorted(books_and_quotes["executions"], key=lambda e: (e.executed_at, e.id)):
        expected.setdefault(execution.order_id, _joined().get(id=execution.id).asof_bid)
    assert orders == expected


def test_chained_joins_look_up_once_each(books_and_quotes):
    """The quote at the fill and thirty seconds later: two joins of the fill's time, each
    looked up once (on Citus, one set of pairs each, neither reading the other's)."""
    chained = _joined(prefix="at_").asof(
        Tick.objects.quotes(), time="executed_at", offset=timedelta(seconds=30), prefix="later_"
    )
    later = _expected(
        books_and_quotes["executions"], books_and_quotes["quotes"], {"direction": "backward",
                                                                    "offset": timedelta(seconds=30)}
    )  # fmt: skip
    assert dict(chained.values_list("id", "later_id")) == later
    sql = str(chained.query)
    assert sql.count("AS MATERIALIZED") == (2 if settings.QVP_CITUS_WORKERS else 0)


def test_the_aggregate_of_no_rows_is_none(books_and_quotes):
    spread = _joined().filter(id__in=[]).aggregate(spread=Avg("asof_ask") - Avg("asof_bid"))
    assert spread == {"spread": None}


def test_a_revised_trade_is_read_as_known_at_a_moment(partitioned_for, account, tmp_path):
    """Two trades at one time, the first corrected by a later file. As known before the
    correction, a fill just before them finds the first as it was (going forward: the
    revision comes before the table's second trade) and one just after finds the second (going
    back: the table's row after the revision); as known now, the corrected price. On Citus the
    table's rows and the revisions are looked up apart and the nearer taken."""
    from trading.models import Execution

    header = "timestamp,price,size\n"
    ts, later = ((START + timedelta(seconds=s)).strftime("%Y-%m-%d %H:%M:%S.%f") for s in (0, 2))
    _ingest_ticks(tmp_path / "ticks.csv", f"{header}{ts},10.0,5\n{ts},10.1,6\n{later},11.0,1\n")
    between = between_commits()
    _ingest_ticks(tmp_path / "fixed.csv", f"{header}{ts},9.9,5\n{ts},10.1,6\n{later},11.0,1\n")
    order = make_order(account, Instrument.objects.get(symbol="REV"))
    before = fill(order, 1, "10", at=START - timedelta(seconds=1))
    after = fill(order, 1, "10", at=START + timedelta(seconds=1))

    def prices(moment, direction):
        right = Tick.objects.trades().known_at(moment)
        joined = Execution.objects.asof(
            right, time="executed_at", direction=direction, columns=["price"]
        )
        return dict(joined.values_list("id", "asof_price"))

    forward, backward = prices(between, "forward"), prices(between, "backward")
    assert (forward[before.id], forward[after.id]) == (10.0, 11.0)
    assert (backward[before.id], backward[after.id]) == (None, 10.1)
    assert prices(None, "forward")[before.id] == 9.9
    # Known at the trades' own time, long before the files came: nothing yet.
    assert set(prices(START, "forward").values()) == {None}


@pytest.mark.xfail(
    bool(settings.QVP_CITUS_WORKERS),
    reason="Citus refuses the filter's own EXISTS over the ticks from the coordinator's rows",
    raises=NotSupportedError,
    strict=True,
)
def test_a_filter_on_the_answer_through_a_subquery(books_and_quotes):
    """A condition on the join's answer inside a subquery (EXISTS ... OuterRef) is left out of
    the pairs, as any condition on the answer is."""
    found = _joined().filter(Exists(Tick.objects.filter(id=OuterRef("asof_id"))))
    expected = _expected(books_and_quotes["executions"], books_and_quotes["quotes"], OPTIONS[0])
    assert set(found.values_list("id", flat=True)) == {i for i, q in expected.items() if q}


def test_each_join_timed_by_the_one_before(books_and_quotes):
    """The quote at the fill, the one before it, and the one before that: three joins, each
    timed by the answer of the one before."""
    quotes = books_and_quotes["quotes"]
    chained = (
        _joined(prefix="a_", columns=["id", "ts"])
        .asof(Tick.objects.quotes(), time="a_ts", allow_exact=False, columns=["id", "ts"],
              prefix="b_")
        .asof(Tick.objects.quotes(), time="b_ts", allow_exact=False, columns=["id"], prefix="c_")
    )  # fmt: skip
    at_fill = _expected(books_and_quotes["executions"], quotes, OPTIONS[0])
    rows = [(q.id, q.instrument_id, q.ts) for q in quotes]
    right = [(q.id, q.instrument_id, q.ts, q.sequence) for q in quotes]
    previous = merge_asof.matches(rows, right, allow_exact=False)
    expected = {}
    for execution, quote in at_fill.items():
        before = previous.get(quote) if quote else None
        expected[execution] = (quote, before, previous.get(before) if before else None)
    got = {i: (a, b, c) for i, a, b, c in chained.values_list("id", "a_id", "b_id", "c_id")}
    assert got == expected
    assert any(c for _, _, c in expected.values())


def _ingest_ticks(path, text: str) -> None:
    path.write_text(text)
    call_command("ingest_ticks", str(path), "--symbol", "REV", stdout=StringIO())


@pytest.mark.skipif(not settings.QVP_CITUS_WORKERS, reason="the shards of a Citus cluster")
@pytest.mark.parametrize("known_at", [None, START], ids=["now", "as-known-then"])
def test_on_citus_the_lookups_run_on_the_shards(books_and_quotes, known_at):
    """The current quotes, or the quotes as known at a moment (the table's rows and the
    revisions, each looked up on the shards)."""
    from trading.models import Execution

    right = Tick.objects.quotes().known_at(known_at)
    joined = Execution.objects.asof(right, time="executed_at", columns=["id", "bid"])
    sql, params = joined.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL citus.explain_all_tasks = on")
        cursor.execute(f"EXPLAIN (COSTS OFF) {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    tasks = plan.split("->  Task")[1:]
    lookups = [t for t in tasks if "Scan Backward" in t and "marketdata_tick_" in t]
    assert lookups, plan
    # Each on a worker, from its own shard of the keys and the left rows sent with the task.
    for task in lookups:
        assert any(f"port={port}" in task for _, port in settings.QVP_CITUS_WORKERS), task
        assert "marketdata_instrument_key_" in task
        assert "read_intermediate_result" in task
    # No tick read whole (into the coordinator or a task): each read is a lookup's probe.
    assert "Seq Scan on marketdata_tick_" not in plan, plan
    assert "Bitmap Heap Scan on marketdata_tick_" not in plan, plan


def test_arrow_reads_in_parts_where_one_statement_runs_on_one_core(books_and_quotes):
    """A statement's lookups run on one core of each node: ``arrow`` reads parts at once
    (tests/marketdata/test_asof_parallel.py reads committed rows); the parts are the rows."""
    unordered = _joined().order_by()
    assert len(split(unordered)) == default_workers()
    parts = split(unordered, 2)
    rows = [dict(part.values_list("id", "asof_id")) for part in parts]
    assert rows[0] | rows[1] == dict(unordered.values_list("id", "asof_id"))
    assert not rows[0].keys() & rows[1].keys()
