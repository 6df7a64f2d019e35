"""Daily bars read adjusted for corporate actions (split, total_return) against the same reads
as traded (raw): 500 instruments x 20 years of business-day bars with their actions.

    .venv/bin/python bench/actions.py [--instruments 500] [--years 20] [--runs 3]
                                      [--year-runs 9] [--explain]

Goal (issue 23): each adjusted read at most 1.5 times as long as the raw one.

It makes a throwaway database of the configured server (bench/support/scratch.py), COPYs
``--instruments`` instruments' daily bars over ``--years`` years of business days (as traded:
a split divides the prices from its ex-date on) and states their actions through the owner's
``marketdata_action_set`` in one statement: each instrument a cash dividend every quarter, 0
to 3 splits (3:2, 2:1, 3:1 or 4:1), and about one in seven a reverse split (1:5 or 1:10).
Then, ANALYZEd as autovacuum would, through the ORM as the API reads
(``DailyBar.objects.filter(instrument_id=...).adjusted(a).values_list(...)``, fetched whole):

1. one instrument's whole history, for each instrument in turn: the median read and the total
   of the 500, the three adjustments alternating on every instrument so that they share the
   machine's load; median over ``--runs`` passes;
2. every instrument over the last year in one query, median of ``--year-runs`` runs;

and the server's own execution time of each (EXPLAIN ANALYZE, timing off, best of 5) for one
instrument with splits and for the year. It checks first that the split-adjusted closes of an
instrument with a split do not jump at its ex-date where the raw ones do. ``--explain`` prints
the plans. Prints figures and verdicts; not a test.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "qvp_site.settings")

from bench.support.scratch import name_it, throwaway_database  # noqa: E402

name_it("bench_qvp_actions")

import django  # noqa: E402 - Django must be set up before the app's modules are imported

django.setup()

from django.db import connection, transaction  # noqa: E402

from marketdata import demo  # noqa: E402
from marketdata.models import DailyBar, Instrument  # noqa: E402
from marketdata.querysets import ADJUSTMENTS  # noqa: E402
from qvp_site.db import engine, partitions  # noqa: E402

GOAL_RATIO = 1.5
SEED = 20261205
END = date(2025, 12, 31)
COLUMNS = ("ts", "open", "high", "low", "close", "volume")
SPLIT_RATIOS = (1.5, 2.0, 3.0, 4.0)
REVERSE_RATIOS = (0.2, 0.1)
QUARTER = 63  # business days between dividends
STATE_BATCH = 1_000


@dataclass(frozen=True)
class Actions:
    """Columns of the actions to state, one entry per action."""

    instrument: list[int]
    kind: list[str]
    ex_date: list[date]
    ratio: list[float | None]
    amount: list[float | None]
    pay_date: list[date | None]

    def __len__(self) -> int:
        return len(self.kind)


@dataclass(frozen=True)
class Dataset:
    ids: list[int]
    bars: int
    actions: Actions
    year: tuple[datetime, datetime]  # the last year's [start, end)
    split_instrument: int  # one with a split, for the check and the plans
    split_ex: date


def business_days(years: int) -> np.ndarray:
    start = np.datetime64(END - timedelta(days=round(365.25 * years)), "D")
    days = np.arange(start, np.datetime64(END, "D") + 1, dtype="datetime64[D]")
    return days[np.is_busday(days)]


def _splits(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Indexes (ex-dates, at least a quarter apart from the ends) and ratios of 0 to 3 splits,
    one of them reverse for about one instrument in seven."""
    count = int(rng.integers(0, 4))
    reverse = rng.random() < 1 / 7
    at = np.sort(rng.choice(np.arange(QUARTER, n - QUARTER), count + reverse, replace=False))
    ratios = rng.choice(SPLIT_RATIOS, len(at))
    if reverse:
        ratios[rng.integers(len(at))] = rng.choice(REVERSE_RATIOS)
    return at, ratios


def instrument_bars(rng: np.random.Generator, days: np.ndarray) -> tuple[demo.Bars, list]:
    """One instrument's bars as traded and its actions: (kind, index of the ex-date, ratio,
    dividend amount)."""
    n = len(days)
    log_value = np.log(rng.uniform(20, 200)) + np.cumsum(rng.normal(0.0003, 0.018, n))
    at, ratios = _splits(rng, n)
    # Shares per original share from each day on: the as-traded price is the value over it.
    shares = np.ones(n)
    for index, ratio in zip(at, ratios, strict=True):  # at most four splits
        shares[index:] *= ratio
    close = np.exp(log_value) / shares
    open_ = np.r_[close[0], close[:-1]] * np.exp(rng.normal(0, 0.004, n))
    open_[at] = close[at] * np.exp(rng.normal(0, 0.004, len(at)))  # opens ex-split
    wick = np.abs(rng.normal(0, 0.008, (2, n)))
    high = np.maximum(open_, close) * (1 + wick[0])
    low = np.minimum(open_, close) * (1 - wick[1])
    volume = np.round(rng.lognormal(13, 0.5, n) * shares)
    bars = demo.Bars(
        ts=days.astype("M8[us]"),
        open=open_,
        high=high,
        low=low,
        close=close,
        volume=volume,
        vwap=(high + low + close) / 3,
        trade_count=np.maximum(volume // 100, 1).astype(np.int32),
    )
    actions: list = [("split", int(i), float(r), None) for i, r in zip(at, ratios, strict=True)]
    first = int(rng.integers(5, QUARTER))
    for index in range(first, n, QUARTER):  # quarterly, about 0.4% to 1% of the price
        amount = round(float(close[index - 1] * rng.uniform(0.004, 0.01)), 4)
        actions.append(("cash_dividend", index, None, amount))
    return bars, actions


def load(count: int, years: int) -> Dataset:
    """The instruments, their bars COPYed, their actions stated; ANALYZEd."""
    rng = np.random.default_rng(SEED)
    days = business_days(years)
    first = datetime.combine(days[0].astype(date), datetime.min.time(), UTC)
    last = datetime.combine(days[-1].astype(date), datetime.min.time(), UTC)
    partitions.prepare_load("marketdata_dailybar", first, last)
    columns: dict[str, list] = {name: [] for name in Actions.__dataclass_fields__}
    rows = 0
    with transaction.atomic():
        made = Instrument.objects.bulk_create(
            Instrument(symbol=f"ACT{number:04d}", asset_class="equity", currency="USD")
            for number in range(count)
        )
        ids = [instrument.id for instrument in made]
        for instrument_id in ids:
            bars, actions = instrument_bars(rng, days)
            rows += demo.copy_bars(connection, demo.DAILY_TABLE, instrument_id, bars)
            for kind, index, ratio, amount in actions:
                ex = days[index].astype(date)
                columns["instrument"].append(instrument_id)
                columns["kind"].append(kind)
                columns["ex_date"].append(ex)
                columns["ratio"].append(ratio)
                columns["amount"].append(amount)
                columns["pay_date"].append(ex + timedelta(days=14) if amount else None)
    actions = Actions(**columns)
    state(actions)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE marketdata_dailybar")
        cursor.execute("ANALYZE marketdata_corporateaction")
    split = actions.kind.index("split")
    year_start = last - timedelta(days=365)
    return Dataset(
        ids,
        rows,
        actions,
        (year_start, last + timedelta(days=1)),
        actions.instrument[split],
        actions.ex_date[split],
    )


def state(actions: Actions) -> None:
    """Every action through the owner's marketdata_action_set, ``STATE_BATCH`` a statement
    (each its own transaction: the function takes a lock per action until it commits, and the
    server's lock table is shared)."""
    columns = [getattr(actions, name) for name in Actions.__dataclass_fields__]
    inserted = 0
    with connection.cursor() as cursor:
        for start in range(0, len(actions), STATE_BATCH):
            cursor.execute(
                "SELECT count(*) FILTER (WHERE marketdata_action_set(i, k, e, r, a,"
                " CASE WHEN k = 'cash_dividend' THEN 'USD' END, p, NULL, NULL, NULL)"
                " = 'inserted')"
                " FROM unnest(%s::bigint[], %s::text[], %s::date[], %s::numeric[],"
                " %s::numeric[], %s::date[]) AS t(i, k, e, r, a, p)",
                [column[start : start + STATE_BATCH] for column in columns],
            )
            inserted += cursor.fetchone()[0]
    assert inserted == len(actions), f"{inserted} of {len(actions)} actions stated"


def read_one(instrument_id: int, adjustment: str) -> list[tuple]:
    bars = DailyBar.objects.filter(instrument_id=instrument_id).adjusted(adjustment)
    return list(bars.values_list(*COLUMNS))


def read_year(year: tuple[datetime, datetime], adjustment: str) -> list[tuple]:
    return list(DailyBar.objects.between(*year).adjusted(adjustment).values_list(*COLUMNS))


def check(data: Dataset) -> None:
    """The split-adjusted closes of an instrument with a split move across its ex-date as on
    any day; the raw ones fall (or rise) by the ratio."""
    ex = datetime.combine(data.split_ex, datetime.min.time(), UTC)

    def jump(adjustment: str) -> float:
        rows = read_one(data.split_instrument, adjustment)
        at = next(i for i, row in enumerate(rows) if row[0] >= ex)
        return abs(np.log(rows[at][4] / rows[at - 1][4]))

    assert jump("raw") > 0.3, f"the raw closes do not jump at the split ({jump('raw'):.3f})"
    assert jump("split") < 0.15, f"the split-adjusted closes jump ({jump('split'):.3f})"
    assert len(read_one(data.split_instrument, "total_return")) == len(
        read_one(data.split_instrument, "raw")
    )


def per_instrument(ids: list[int], runs: int) -> dict[str, tuple[float, float]]:
    """Median over passes of (median per instrument, total of the pass), in milliseconds.
    Every instrument is read by each adjustment in a rotating order."""
    medians: dict[str, list[float]] = {a: [] for a in ADJUSTMENTS}
    totals: dict[str, list[float]] = {a: [] for a in ADJUSTMENTS}
    for a in ADJUSTMENTS:  # warm-up
        read_one(ids[0], a)
    for _ in range(runs):
        times: dict[str, list[float]] = {a: [] for a in ADJUSTMENTS}
        for number, instrument_id in enumerate(ids):
            shift = number % len(ADJUSTMENTS)
            for adjustment in ADJUSTMENTS[shift:] + ADJUSTMENTS[:shift]:
                started = time.perf_counter()
                read_one(instrument_id, adjustment)
                times[adjustment].append((time.perf_counter() - started) * 1000)
        for adjustment, found in times.items():
            medians[adjustment].append(statistics.median(found))
            totals[adjustment].append(sum(found))
    return {a: (statistics.median(medians[a]), statistics.median(totals[a])) for a in ADJUSTMENTS}


def timed_each(calls: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median milliseconds of each call over ``runs`` runs after a warm-up, in a rotating
    order so that they share the load."""
    names = list(calls)
    for call in calls.values():
        call()
    times: dict[str, list[float]] = {name: [] for name in names}
    for run in range(runs):
        shift = run % len(names)
        for name in names[shift:] + names[:shift]:
            started = time.perf_counter()
            calls[name]()
            times[name].append((time.perf_counter() - started) * 1000)
    return {name: statistics.median(found) for name, found in times.items()}


def sql_of(queryset) -> tuple[str, list]:
    sql, params = queryset.query.sql_with_params()
    return sql, list(params)


def one_sql(instrument_id: int, adjustment: str) -> tuple[str, list]:
    qs = DailyBar.objects.filter(instrument_id=instrument_id).adjusted(adjustment)
    return sql_of(qs.values_list(*COLUMNS))


def year_sql(year: tuple[datetime, datetime], adjustment: str) -> tuple[str, list]:
    return sql_of(DailyBar.objects.between(*year).adjusted(adjustment).values_list(*COLUMNS))


def server_ms(sql: str, params: list) -> float:
    """The server's own execution time of ``sql``, without per-node timing, best of five."""
    best = float("inf")
    with connection.cursor() as cursor:
        for _ in range(5):
            cursor.execute(f"EXPLAIN (ANALYZE, TIMING OFF, FORMAT JSON) {sql}", params)
            best = min(best, cursor.fetchone()[0][0]["Execution Time"])
    return best


def explain(sql: str, params: list) -> str:
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", params)
        return "\n".join("    " + line for (line,) in cursor.fetchall())


def verdict(ratio: float) -> str:
    return (
        f"ratio {ratio:5.2f} (goal <= {GOAL_RATIO}: {'met' if ratio <= GOAL_RATIO else 'MISSED'})"
    )


def report_lines(label: str, times: dict[str, float], unit: str = "ms") -> None:
    raw = times["raw"]
    print(f"  {label}")
    for adjustment in ADJUSTMENTS:
        value = times[adjustment]
        tail = "" if adjustment == "raw" else "   " + verdict(value / raw)
        print(f"    {adjustment:<13} {value:9.2f} {unit}{tail}")


def measure(data: Dataset, runs: int, year_runs: int, show_plans: bool) -> None:
    info = engine.detect()
    kinds = {k: data.actions.kind.count(k) for k in sorted(set(data.actions.kind))}
    reverse = sum(1 for r in data.actions.ratio if r is not None and r < 1)
    print(f"Engine: {info.engine} (PostgreSQL {info.server_version})")
    print(
        f"{len(data.ids)} instruments, {data.bars:,} daily bars, actions: "
        + ", ".join(f"{n:,} {k}" for k, n in kinds.items())
        + f" ({reverse} reverse splits)"
    )
    print(f"1. One instrument's whole history, each of the {len(data.ids)} (median of {runs}"
          " passes):")  # fmt: skip
    found = per_instrument(data.ids, runs)
    report_lines("median read, ORM values_list", {a: v[0] for a, v in found.items()})
    report_lines("total of the pass", {a: v[1] for a, v in found.items()})
    one = {a: one_sql(data.split_instrument, a) for a in ADJUSTMENTS}
    report_lines("the server alone, one instrument (best of 5)",
                 {a: server_ms(*one[a]) for a in ADJUSTMENTS})  # fmt: skip
    rows = len(read_year(data.year, "raw"))
    print(f"2. Every instrument over {data.year[0]:%Y-%m-%d} .. {data.year[1]:%Y-%m-%d} in one"
          f" query ({rows:,} bars; median of {year_runs} runs):")  # fmt: skip
    report_lines(
        "ORM values_list",
        timed_each({a: (lambda a=a: read_year(data.year, a)) for a in ADJUSTMENTS}, year_runs),
    )
    year = {a: year_sql(data.year, a) for a in ADJUSTMENTS}
    report_lines("the server alone (best of 5)", {a: server_ms(*year[a]) for a in ADJUSTMENTS})
    if show_plans:
        for adjustment in ADJUSTMENTS:
            print(f"Plan, one instrument, {adjustment}:")
            print(explain(*one[adjustment]))
            print(f"Plan, the year, {adjustment}:")
            print(explain(*year[adjustment]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--instruments", type=int, default=500)
    parser.add_argument("--years", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="passes over every instrument")
    parser.add_argument("--year-runs", type=int, default=9, help="runs of the year's read")
    parser.add_argument("--explain", action="store_true", help="print the SQL reads' plans")
    args = parser.parse_args()
    if args.instruments < 1 or not 2 <= args.years <= 60 or args.runs < 1 or args.year_runs < 1:
        parser.error("--instruments >= 1, --years 2..60, --runs >= 1, --year-runs >= 1")
    with throwaway_database():
        started = time.perf_counter()
        data = load(args.instruments, args.years)
        print(f"loaded in {time.perf_counter() - started:.1f} s")
        check(data)
        measure(data, args.runs, args.year_runs, args.explain)
    return 0


if __name__ == "__main__":
    sys.exit(main())
