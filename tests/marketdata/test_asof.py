"""As-of joins (qvp_site/db/asof.py, marketdata/sql/asof/0015.sql), from the side that would
break them: the answers of ``pandas.merge_asof`` on randomised cases (ties on the time, groups
with no right rows, left rows before every right row, tolerances, strict and exact matches,
both directions), a quote lookup that must not take a trade, the executions of the books, and
the psql functions called in raw SQL as the application's role and as the researchers'."""

from __future__ import annotations

import random
from datetime import timedelta

import pandas as pd
import pytest
from django.db import connection
from django.db.models import Count, Sum
from django.utils import timezone

from marketdata.models import Instrument, Tick
from qvp_site.db import partitions
from qvp_site.db.asof import asof
from tests.fixtures.trading import fill, make_order
from tests.marketdata import merge_asof
from tests.marketdata.conftest import START
from tests.plans import index_copies
from tests.qvp_site.test_research_role import connect_as_research

__all__ = ["connect_as_research"]  # fixtures, imported to be used

CASES = 100
# Ticks fall on a few seconds of a minute, so that ties (several quotes at one time, a trade
# and a quote at one time) and exact matches are common.
SECONDS = 12


def _case_parameters(rng: random.Random, case: int) -> dict:
    """Each combination of direction and exactness in turn, a tolerance one case in two (zero
    among them), an offset one in four. One case in three spreads its ticks over days, in
    steps of 7 hours: the join looks within a day of the left time first, then beyond."""
    unit = timedelta(hours=7) if case % 3 == 0 else timedelta(seconds=1)
    return {
        "direction": ("backward", "forward")[case % 2],
        "allow_exact": bool(case // 2 % 2),
        "tolerance": (None if case // 4 % 2 else unit * rng.choice([0, 0.5, 1, 2, 3, 5])),
        "offset": unit * rng.choice([-2, 1, 3]) if case % 8 == 7 else None,
        "unit": unit,
    }


def _random_ticks(rng: random.Random, instruments: list[Instrument], unit: timedelta) -> list[Tick]:
    """Trades and quotes on a few seconds. One instrument in three gets no quotes (an empty
    group); one in five no trades. Sequences are unique per (instrument, time), quotes and
    trades interleaved, in random order, so that ties are broken by sequence, not by kind."""
    ticks = []
    for instrument in instruments:
        no_quotes, no_trades = rng.random() < 1 / 3, rng.random() < 1 / 5
        times = [START + unit * rng.randrange(SECONDS) for _ in range(rng.randint(0, 14))]
        by_time: dict = {}
        for ts in times:
            by_time[ts] = by_time.get(ts, 0) + 1
        for ts, count in by_time.items():
            sequences = rng.sample(range(1, 50), count)
            for sequence in sequences:
                kind = "quote" if rng.random() < 0.6 else "trade"
                if (kind == "quote" and no_quotes) or (kind == "trade" and no_trades):
                    continue
                ticks.append(_tick(instrument, ts, sequence, kind, rng))
    return ticks


def _tick(instrument: Instrument, ts, sequence: int, kind: str, rng: random.Random) -> Tick:
    if kind == "quote":
        bid = round(rng.uniform(90, 110), 2)
        return Tick(
            instrument=instrument, ts=ts, sequence=sequence, kind="quote", bid=bid, ask=bid + 0.05
        )
    price = round(rng.uniform(90, 110), 2)
    return Tick(instrument=instrument, ts=ts, sequence=sequence, kind="trade", price=price, size=1)


def _expected(trades: list[Tick], quotes: list[Tick], params: dict) -> dict[int, int | None]:
    """What pandas.merge_asof answers: trade id -> the matched quote's id (or None)."""
    return merge_asof.matches(
        [(t.id, t.instrument_id, t.ts) for t in trades],
        [(q.id, q.instrument_id, q.ts, q.sequence) for q in quotes],
        **params,
    )


@pytest.mark.parametrize("case", range(CASES))
def test_asof_matches_pandas_merge_asof(partitioned_for, case):
    rng = random.Random(2026_26_00 + case)
    params = _case_parameters(rng, case)
    unit = params.pop("unit")
    partitions.prepare_load("marketdata_tick", START - timedelta(days=2), START + unit * SECONDS)
    instruments = [
        Instrument.objects.create(symbol=f"AS{case}X{n}", asset_class="equity")
        for n in range(rng.randint(1, 4))
    ]
    Tick.objects.bulk_create(_random_ticks(rng, instruments, unit))
    ticks = Tick.objects.filter(instrument__in=instruments)
    trades, quotes = list(ticks.trades()), list(ticks.quotes())

    joined = ticks.trades().asof(
        Tick.objects.quotes(), columns=["id", "ts", "sequence", "bid"], **params
    )
    got = dict(joined.values_list("id", "asof_id"))
    expected = _expected(trades, quotes, params)
    assert got == expected, params

    # The psql functions, the same question laterally, from the trades' ids, instruments and times
    # (on Citus a function is called on the coordinator, not from a query the shards run).
    function = {"backward": "marketdata_quote_asof", "forward": "marketdata_quote_after"}
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT l.id, q.id"
            " FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[]) AS l (id, instrument, ts)"
            f" LEFT JOIN LATERAL {function[params['direction']]}(l.instrument, l.ts + %s, %s, %s) q"
            " ON true",
            [
                [t.id for t in trades],
                [t.instrument_id for t in trades],
                [t.ts for t in trades],
                params["offset"] or timedelta(0),
                params["tolerance"],
                params["allow_exact"],
            ],
        )
        assert dict(cursor.fetchall()) == expected, params


def test_pandas_ties_are_what_the_cases_rely_on():
    """merge_asof takes the last of tied right rows going back and the first going forward;
    its tolerance is inclusive. The cases above compare with pandas, so pandas must do so."""
    right = pd.DataFrame({"ts": [1, 2, 2, 2, 5], "by": 1, "v": ["a", "b1", "b2", "b3", "e"]})
    left = pd.DataFrame({"ts": [0, 2, 3, 4], "by": 1})

    def take(**kw):
        return pd.merge_asof(left, right, on="ts", by="by", **kw)["v"].fillna("-").tolist()

    assert take(direction="backward") == ["-", "b3", "b3", "b3"]
    assert take(direction="forward") == ["a", "b1", "e", "e"]
    assert take(direction="backward", allow_exact_matches=False) == ["-", "a", "b3", "b3"]
    assert take(direction="forward", tolerance=1) == ["a", "b1", "-", "e"]
    assert take(direction="backward", tolerance=1) == ["-", "b3", "b3", "-"]


# --- Quotes, not trades ---------------------------------------------------------------------


@pytest.fixture
def quote_and_trades(partitioned_for, instrument) -> dict:
    """A quote at START, then trades at START + 1 s and two at START + 2 s, with higher
    sequences than the quote's: the latest tick before each trade is a trade."""
    quote = Tick.objects.create(
        instrument=instrument, ts=START, sequence=1, kind="quote", bid=99.9, ask=100.1
    )
    for seconds, sequence in ((1, 2), (2, 3), (2, 4)):
        Tick.objects.create(
            instrument=instrument,
            ts=START + timedelta(seconds=seconds),
            sequence=sequence,
            kind="trade",
            price=100,
            size=5,
        )
    return {"instrument": instrument, "quote": quote}


def test_quote_lookup_takes_no_trade(quote_and_trades):
    trades = Tick.objects.trades().filter(instrument=quote_and_trades["instrument"])
    joined = trades.asof(Tick.objects.quotes(), columns=["id", "kind", "bid", "ask"])
    rows = list(joined.values("sequence", "asof_id", "asof_kind", "asof_bid"))
    assert [r["asof_id"] for r in rows] == [quote_and_trades["quote"].id] * 3
    assert {r["asof_kind"] for r in rows} == {"quote"}


def test_quote_lookup_reads_the_partial_index(quote_and_trades):
    trades = Tick.objects.trades().filter(instrument=quote_and_trades["instrument"])
    joined = trades.asof(Tick.objects.quotes(), columns=["bid"])
    with connection.cursor() as cursor:
        # Either partial index of the quotes: the model's, or the covering one (marketdata
        # 0016) that the planner prefers where the join asks only for what it carries.
        quote_indexes = index_copies(cursor, ["tick_quote_by_time", "tick_quote_asof"])
        cursor.execute("SET LOCAL enable_seqscan = off")  # a table this small is read whole
        plan = joined.explain()
    lateral = plan[plan.index("Limit") :]
    assert "Nested Loop Left Join" in plan
    assert any(name in lateral for name in quote_indexes), lateral
    assert "Filter: ((kind)" not in lateral, lateral  # nothing read to be thrown away


@pytest.mark.parametrize("direction", ["backward", "forward"])
def test_a_match_days_away_is_found_past_the_first_step(partitioned_for, instrument, direction):
    """The join looks within a day first: a quote three days away is found by the second
    step, one nearer than the trade's other quote is preferred, and a tolerance stops it."""
    partitions.prepare_load("marketdata_tick", START - timedelta(days=6), START + timedelta(days=6))
    sign = -1 if direction == "backward" else 1
    for days, sequence, bid in ((3, 1, 97.0), (5, 1, 95.0)):
        Tick.objects.create(
            instrument=instrument, ts=START + sign * timedelta(days=days), sequence=sequence,
            kind="quote", bid=bid, ask=bid + 0.1,
        )  # fmt: skip
    Tick.objects.create(instrument=instrument, ts=START, sequence=1, price=100, size=1)
    trades = Tick.objects.trades().filter(instrument=instrument)

    def bid(**options):
        joined = trades.asof(Tick.objects.quotes(), direction=direction, **options)
        return joined.values_list("asof_bid", flat=True).get()

    assert bid() == 97.0
    assert bid(tolerance=timedelta(days=3)) == 97.0
    assert bid(tolerance=timedelta(days=2, hours=23)) is None
    assert bid(offset=timedelta(days=-sign * 1)) == 97.0


# --- The books: executions and orders -------------------------------------------------------


@pytest.fixture
def fills_and_quotes(partitioned_for, account, instrument) -> dict:
    for seconds, sequence, bid in ((0, 1, 99.0), (60, 1, 99.5), (60, 2, 99.6), (600, 1, 101.0)):
        Tick.objects.create(
            instrument=instrument,
            ts=START + timedelta(seconds=seconds),
            sequence=sequence,
            kind="quote",
            bid=bid,
            ask=bid + 0.2,
        )
    order = make_order(account, instrument)
    early = fill(order, 10, "99.9", at=START - timedelta(seconds=1))
    late = fill(order, 10, "99.7", at=START + timedelta(seconds=90))
    return {"early": early, "late": late}


def test_executions_get_the_quote_at_the_fill_and_thirty_seconds_later(fills_and_quotes):
    from trading.models import Execution

    executions = (
        Execution.objects.asof(
            Tick.objects.quotes(), time="executed_at", columns=["bid", "ask", "ts"], prefix="at_"
        )
        .asof(
            Tick.objects.quotes(),
            time="executed_at",
            direction="forward",
            offset=timedelta(seconds=30),
            columns=["bid"],
            prefix="later_",
        )
        .order_by("executed_at")
    )
    rows = list(executions.values("id", "at_bid", "at_ts", "later_bid"))
    early, late = fills_and_quotes["early"], fills_and_quotes["late"]
    assert rows == [
        {"id": early.id, "at_bid": None, "at_ts": None, "later_bid": 99.5},
        {"id": late.id, "at_bid": 99.6, "at_ts": START + timedelta(seconds=60), "later_bid": 101.0},
    ]
    # Still a queryset: counted, aggregated, filtered on the right side's columns, used as a
    # subquery.
    assert executions.count() == 2
    assert executions.aggregate(quoted=Count("at_bid"), later=Sum("later_bid")) == {
        "quoted": 1,
        "later": 99.5 + 101.0,
    }
    assert list(executions.filter(at_bid__isnull=False).values_list("id", flat=True)) == [late.id]
    assert list(Execution.objects.filter(id__in=executions.filter(later_bid__gt=100).values("id"))
                .values_list("id", flat=True)) == [late.id]  # fmt: skip


def test_a_tolerance_leaves_a_stale_quote_out(fills_and_quotes):
    from trading.models import Execution

    executions = Execution.objects.asof(
        Tick.objects.quotes(), time="executed_at", tolerance=timedelta(seconds=20)
    ).order_by("executed_at")
    assert list(executions.values_list("asof_bid", flat=True)) == [None, None]
    executions = Execution.objects.asof(
        Tick.objects.quotes(), time="executed_at", tolerance=timedelta(seconds=30)
    ).order_by("executed_at")
    assert list(executions.values_list("asof_bid", flat=True)) == [None, 99.6]


@pytest.mark.parametrize("left", ["quote_and_trades", "fills_and_quotes"])
def test_a_right_side_that_can_match_nothing_leaves_every_left_row_unanswered(db, request, left):
    # ``id__in=[]`` can match no row: Django would elide a statement with it. The left rows
    # keep their place, with no answer, as for a right side with no match.
    from trading.models import Execution

    request.getfixturevalue(left)
    rows, time = (
        (Tick.objects.trades(), "ts") if left == "quote_and_trades"
        else (Execution.objects.all(), "executed_at")
    )  # fmt: skip
    joined = rows.asof(Tick.objects.filter(id__in=[]), time=time, columns=["id", "bid"])
    assert rows.count() > 0
    assert list(joined.values_list("asof_id", "asof_bid")) == [(None, None)] * rows.count()
    assert joined.count() == rows.count()


def test_the_quotes_read_as_known_at_a_moment(fills_and_quotes):
    """A run repeated as known at a past moment sees the quotes it saw then: none, here,
    before the quotes were loaded."""
    from trading.models import Execution

    def bids(right):
        joined = Execution.objects.asof(right, time="executed_at").order_by("executed_at")
        return list(joined.values_list("asof_bid", flat=True))

    assert bids(Tick.objects.quotes().known_at(None)) == [None, 99.6]
    assert bids(Tick.objects.quotes().known_at(timezone.now() - timedelta(hours=1))) == [None, None]


def test_a_sliced_left_side_is_refused(db):
    with pytest.raises(TypeError, match="sliced; slice after the as-of join"):
        asof(Tick.objects.all()[:5], Tick.objects.quotes())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"direction": "nearest"}, "direction must be one of backward, forward"),
        ({"tolerance": timedelta(seconds=-1)}, "tolerance must be a timedelta of zero or more"),
        ({"tolerance": 5}, "tolerance must be a timedelta"),
        ({"columns": ["nope"]}, "columns: marketdata.Tick has no column 'nope'"),
        ({"prefix": "a b"}, "prefix must be an identifier"),
    ],
)
def test_bad_options_are_refused_by_name(db, options, message):
    with pytest.raises(ValueError, match=message):
        asof(Tick.objects.all(), Tick.objects.quotes(), **options)


# --- psql: the functions, as the application's role and as research --------------------------


@pytest.fixture
def committed_quotes(transactional_db) -> Instrument:
    partitions.prepare_load("marketdata_tick", START - timedelta(days=2), START + timedelta(days=2))
    instrument = Instrument.objects.create(symbol="ASOFQ", asset_class="equity")
    rows = [
        (0, 1, "quote", 99.0),
        (10, 1, "quote", 99.4),
        (10, 2, "quote", 99.5),
        (10, 3, "trade", None),
        (15, 1, "trade", None),
        (20, 1, "quote", 100.0),
    ]
    Tick.objects.bulk_create(
        Tick(
            instrument=instrument,
            ts=START + timedelta(seconds=seconds),
            sequence=sequence,
            kind=kind,
            bid=bid,
            ask=bid + 0.1 if bid else None,
            price=None if bid else 100.0,
            size=None if bid else 1.0,
        )
        for seconds, sequence, kind, bid in rows
    )
    return instrument


QUESTIONS = [
    # (the call, its answer as (seconds after START, sequence) or None)
    ("marketdata_quote_asof(%(i)s, %(t)s + interval '15 seconds')", (10, 2)),
    ("marketdata_quote_asof(%(i)s, %(t)s + interval '10 seconds')", (10, 2)),
    ("marketdata_quote_asof(%(i)s, %(t)s + interval '10 seconds', allow_exact => false)", (0, 1)),
    ("marketdata_quote_asof(%(i)s, %(t)s + interval '15 seconds', interval '4 seconds')", None),
    ("marketdata_quote_asof(%(i)s, %(t)s - interval '1 second')", None),
    ("marketdata_quote_after(%(i)s, %(t)s + interval '10 seconds')", (10, 1)),
    ("marketdata_quote_after(%(i)s, %(t)s + interval '11 seconds')", (20, 1)),
    ("marketdata_quote_after(%(i)s, %(t)s + interval '11 seconds', interval '8 seconds')", None),
    ("marketdata_quote_after(%(i)s, %(t)s + interval '11 seconds', interval '9 seconds')", (20, 1)),
    ("marketdata_trade_asof(%(i)s, %(t)s + interval '19 seconds')", (15, 1)),
    ("marketdata_tick_asof(%(i)s, %(t)s + interval '10 seconds')", (10, 3)),
    ("marketdata_tick_after(%(i)s, %(t)s + interval '10 seconds', allow_exact => false)", (15, 1)),
]


def _answer(conn, call: str, instrument: Instrument):
    row = conn.execute(
        f"SELECT ts, sequence FROM {call}", {"i": instrument.id, "t": START}
    ).fetchall()
    assert len(row) <= 1
    return ((row[0][0] - START).seconds, row[0][1]) if row else None


@pytest.mark.parametrize("role", ["app", "research"])
def test_psql_functions_answer_as_each_reading_role(
    committed_quotes, connect_as_app, connect_as_research, role
):
    conn = connect_as_app() if role == "app" else connect_as_research()
    for call, answer in QUESTIONS:
        assert _answer(conn, call, committed_quotes) == answer, call


def test_psql_functions_join_a_table_laterally(committed_quotes, connect_as_app):
    conn = connect_as_app()
    rows = conn.execute(
        "SELECT l.s, q.bid FROM generate_series(0, 25, 5) AS l(s)"
        " LEFT JOIN LATERAL marketdata_quote_asof(%s, %s + l.s * interval '1 second') q ON true"
        " ORDER BY l.s",
        [committed_quotes.id, START],
    ).fetchall()
    assert rows == [(0, 99.0), (5, 99.0), (10, 99.5), (15, 99.5), (20, 100.0), (25, 100.0)]


def test_psql_functions_refuse_a_negative_tolerance(committed_quotes, connect_as_app):
    import psycopg

    conn = connect_as_app()
    with pytest.raises(psycopg.errors.InvalidParameterValue, match="marketdata_quote_asof: tol"):
        conn.execute(
            "SELECT * FROM marketdata_quote_asof(%s, now(), interval '-1 second')",
            [committed_quotes.id],
        )


def test_psql_functions_run_with_the_callers_rights(db):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.proname, p.prosecdef, p.provolatile, p.proconfig FROM pg_proc p"
            " WHERE p.proname ~ '^marketdata_(quote|trade|tick|minutebar|dailybar)_(asof|after)$'"
        )
        functions = cursor.fetchall()
    assert len(functions) == 10
    for name, definer, volatility, config in functions:
        assert not definer, name
        assert volatility == "s", name
        assert "search_path=pg_catalog, public, pg_temp" in config, name
