"""The as-of join from the books to the ticks, on every engine the answers of
``pandas.merge_asof``. On Citus the executions stay on the coordinator and the ticks are
distributed: the lookups must run on the shards (qvp_site/db/asof_shards.py), never by
bringing the ticks to the coordinator, and give the answers one node gives."""

from __future__ import annotations

import random
from datetime import timedelta

import pytest
from django.conf import settings
from django.db import connection

from marketdata.models import Instrument, Tick
from qvp_site.db.asof import default_workers, split
from tests.fixtures.trading import fill, make_order
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

    return Execution.objects.asof(
        Tick.objects.quotes(), time="executed_at", columns=["id", "bid"], **options
    )


@pytest.mark.parametrize("options", OPTIONS)
def test_executions_get_the_quotes_merge_asof_gives(books_and_quotes, options):
    expected = _expected(books_and_quotes["executions"], books_and_quotes["quotes"], options)
    assert len(expected) == 5 * INSTRUMENTS
    assert any(expected.values())
    assert None in expected.values()
    assert dict(_joined(**options).values_list("id", "asof_id")) == expected


def test_a_filter_before_the_join_and_one_after_it_give_the_same_rows(books_and_quotes):
    """The lookups are those of the rows when ``asof`` is called; a filter after it narrows
    the rows, with the same answers."""
    from trading.models import Execution

    some = [e.id for e in books_and_quotes["executions"][::3]]
    before = Execution.objects.filter(id__in=some).asof(
        Tick.objects.quotes(), time="executed_at", columns=["id"]
    )
    after = _joined().filter(id__in=some)
    assert dict(before.values_list("id", "asof_id")) == dict(after.values_list("id", "asof_id"))
    assert len(some) == after.count()


@pytest.mark.skipif(not settings.QVP_CITUS_WORKERS, reason="the shards of a Citus cluster")
def test_on_citus_the_lookups_run_on_the_shards(books_and_quotes):
    sql, params = _joined().query.sql_with_params()
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
    """On one node a statement's lookups run on one core, so ``arrow`` reads parts at once by
    default; on Citus the shards share them, and each part would make every lookup again.
    (tests/marketdata/test_asof_parallel.py reads committed rows in parts.)"""
    unordered = _joined().order_by()
    assert len(split(unordered)) == (1 if settings.QVP_CITUS_WORKERS else default_workers())
    parts = split(unordered, 2)  # asked: parts on every engine, the same rows
    assert len(parts) == 2
    rows = [dict(part.values_list("id", "asof_id")) for part in parts]
    assert rows[0] | rows[1] == dict(unordered.values_list("id", "asof_id"))
    assert not rows[0].keys() & rows[1].keys()
