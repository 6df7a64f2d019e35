"""The TCA page's records: markout curves by side and by venue, the distribution of slippage,
the costliest fills and the summary with confidence intervals, of the stored execution costs
(``trading_executioncost``, kept by ``trading.tca.refresh``) in the accounts the user may read.

Every figure is one statement over the range's rows, grouped in the database (grouping sets
for the curves, ``width_bucket`` for the histogram): a page's queries do not grow with fills.
The served site reads as the app role, under the table's row-level security; each statement
names the accounts the scope allows (``dashboard.scope``) as well, so that the page shows the
same on the owner's connection (tests, commands), which that security does not bind.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import AnonymousUser
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from dashboard import charts
from dashboard.scope import AccountScope
from trading import tca
from trading.models import ExecutionCost
from trading.querysets import reads_everything

# The horizons of the markouts, as the curves' horizontal axis places them (seconds).
HORIZON_SECONDS = {"1s": 1, "10s": 10, "1m": 60, "5m": 300, "30m": 1800, "1d": 86400}
WORST = 20  # fills in the costliest list
BUCKETS = 30  # of the slippage histogram
DIMENSIONS, MEASURES = tca.DIMENSIONS, tca.MEASURES  # the summary's, for the page's menus
HAS_VENUE = any(f.name == "venue" for f in ExecutionCost._meta.get_fields())


@dataclass(frozen=True)
class Range:
    key: str  # what ?range= says
    label: str
    length: timedelta | None  # None: everything stored


RANGES = {
    r.key: r
    for r in (
        Range("1w", "1 week", timedelta(days=7)),
        Range("1m", "1 month", timedelta(days=31)),
        Range("3m", "3 months", timedelta(days=92)),
        Range("1y", "1 year", timedelta(days=366)),
        Range("all", "all", None),
    )
}
DEFAULT_RANGE = "3m"
BEGINNING = datetime(1970, 1, 1, tzinfo=UTC)


def time_range(key: str | None) -> Range:
    """The range ``key`` names, the default for anything else."""
    return RANGES.get(key or DEFAULT_RANGE, RANGES[DEFAULT_RANGE])


def dimension(key: str | None) -> str:
    """The summary's dimension ``key`` names (``trading.tca.DIMENSIONS``), else by side."""
    return key if key in DIMENSIONS else "side"


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime


def window(chosen: Range, now: datetime | None = None) -> Window:
    """[start, end) of ``chosen``, ending now."""
    end = now or timezone.now()
    return Window(BEGINNING if chosen.length is None else end - chosen.length, end)


def account_ids(scope: AccountScope) -> list[int]:
    """The accounts the page reads: the one selected, else every one the user may read."""
    return [scope.selected.pk] if scope.selected else [a.pk for a in scope.choices]


def has_costs(accounts: list[int]) -> bool:
    """Whether any cost is stored for ``accounts``, whatever the range (the empty state)."""
    return ExecutionCost.objects.filter(account_id__in=accounts).exists()


def _markout_columns() -> str:
    parts = []
    for h in HORIZON_SECONDS:
        column = f"c.markout_{h}_bps"
        parts.append(
            f"sum({column} * c.notional) FILTER (WHERE {column} IS NOT NULL)"
            f" / nullif(sum(c.notional) FILTER (WHERE {column} IS NOT NULL), 0) AS mean_{h},"
            f" count({column}) AS n_{h}"
        )
    return ",\n       ".join(parts)


_VENUE_SET = ", (c.venue)" if HAS_VENUE else ""
_VENUE_GROUP = "CASE WHEN c.venue = '' THEN '(unknown)' ELSE c.venue END" if HAS_VENUE else "''"
# Notional-weighted means per horizon, by side and by venue in one pass (grouping sets).
MARKOUTS_SQL = f"""
SELECT CASE WHEN grouping(c.side) = 0 THEN 'side' ELSE 'venue' END AS dimension,
       CASE WHEN grouping(c.side) = 0 THEN c.side ELSE {_VENUE_GROUP} END AS grp,
       count(*) AS executions,
       {_markout_columns()}
FROM trading_executioncost c
WHERE c.account_id = ANY(%s) AND c.executed_at >= %s AND c.executed_at < %s
GROUP BY GROUPING SETS ((c.side){_VENUE_SET})
ORDER BY 1, 2
"""


@dataclass(frozen=True)
class Curve:
    dimension: str  # side or venue
    group: str
    executions: int
    points: list[tuple[str, float | None, int]]  # horizon, mean bps, n


def markouts(accounts: list[int], span: Window) -> list[Curve]:
    with connection.cursor() as cursor:
        cursor.execute(MARKOUTS_SQL, [accounts, span.start, span.end])
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    return [
        Curve(
            r["dimension"],
            r["grp"],
            r["executions"],
            [(h, _float(r[f"mean_{h}"]), r[f"n_{h}"]) for h in HORIZON_SECONDS],
        )
        for r in rows
    ]


def _float(value: Any) -> float | None:
    return None if value is None else float(value)


def numeric_chart(*series: dict, labels: dict[str, str] | None = None, precision: int = 0) -> dict:
    """A chart (``dashboard.charts.chart``) whose horizontal axis is a number, not a time:
    charts.js draws it as an options chart, each point's ``time`` the number, ``labels``
    naming some of them in the crosshair, ``precision`` their decimals on the axis."""
    return {
        **charts.chart(*series),
        "horizontal": "number",
        "labels": labels or {},
        "precision": precision,
    }


def numeric_line(name: str, points: Sequence[tuple[float, float | None]], *, color: str) -> dict:
    """A line of (number, value) points, the points without a value left out."""
    return {
        "type": "line",
        "name": name,
        "pane": 0,
        "options": {"color": color, "lineWidth": 2, "pointMarkersVisible": True},
        "data": [{"time": x, "value": y} for x, y in points if y is not None],
        "lines": [],
    }


def numeric_histogram(name: str, points: Sequence[tuple[float, int]], *, color: str) -> dict:
    """Bars of (number, count) points."""
    return {
        "type": "histogram",
        "name": name,
        "pane": 0,
        "options": {"color": color, "priceFormat": {"type": "volume"}},
        "data": [{"time": x, "value": n} for x, n in points],
        "lines": [],
    }


def markout_chart(curves: list[Curve]) -> dict:
    """One line per side and per venue; the horizontal axis is the horizon in seconds."""
    series = []
    for i, curve in enumerate(curves):
        points = [(HORIZON_SECONDS[h], mean) for h, mean, _ in curve.points]
        name = f"{curve.dimension} {curve.group}"
        color = charts.PALETTE[i % len(charts.PALETTE)]
        series.append(numeric_line(name, points, color=color))
    labels = {str(seconds): h for h, seconds in HORIZON_SECONDS.items()}
    return numeric_chart(*series, labels=labels, precision=0)


# The slippage histogram: BUCKETS buckets between the 1st and 99th percentiles (rounded out to
# whole basis points), the tails counted in the first and last; empty buckets as zeros.
HISTOGRAM_SQL = """
WITH scoped AS (
    SELECT c.slippage_bps AS x FROM trading_executioncost c
    WHERE c.account_id = ANY(%(accounts)s) AND c.executed_at >= %(start)s
      AND c.executed_at < %(end)s AND c.slippage_bps IS NOT NULL
),
bounds AS (
    SELECT floor(percentile_cont(0.01) WITHIN GROUP (ORDER BY x)) AS lo,
           ceil(percentile_cont(0.99) WITHIN GROUP (ORDER BY x)) AS hi
    FROM scoped
),
edges AS (
    SELECT lo, CASE WHEN hi > lo THEN hi ELSE lo + 1 END AS hi FROM bounds WHERE lo IS NOT NULL
),
counted AS (
    SELECT least(greatest(width_bucket(s.x, e.lo, e.hi, %(buckets)s), 1), %(buckets)s) AS b,
           count(*) AS n
    FROM scoped s CROSS JOIN edges e
    GROUP BY 1
)
SELECT e.lo + (b.b - 1) * (e.hi - e.lo) / %(buckets)s AS lower,
       e.lo + b.b * (e.hi - e.lo) / %(buckets)s AS upper,
       coalesce(c.n, 0) AS n
FROM edges e
CROSS JOIN generate_series(1, %(buckets)s) AS b (b)
LEFT JOIN counted c ON c.b = b.b
ORDER BY b.b
"""


def slippage_histogram(accounts: list[int], span: Window) -> list[tuple[float, float, int]]:
    """(lower bps, upper bps, fills) per bucket; none without a measured slippage."""
    with connection.cursor() as cursor:
        cursor.execute(
            HISTOGRAM_SQL,
            {"accounts": accounts, "start": span.start, "end": span.end, "buckets": BUCKETS},
        )
        return [(float(lo), float(hi), n) for lo, hi, n in cursor.fetchall()]


def histogram_chart(buckets: list[tuple[float, float, int]]) -> dict:
    """The buckets as bars at their lower bound (bps): a cost to the right of zero."""
    bars = numeric_histogram(
        "fills", [(lower, n) for lower, _, n in buckets], color=charts.PALETTE[0]
    )
    return numeric_chart(bars, precision=1)


def worst_fills(
    user: AbstractBaseUser | AnonymousUser, scope: AccountScope, span: Window
) -> QuerySet[ExecutionCost]:
    """The costliest fills of the range (highest slippage), with their orders."""
    return (
        scope.narrow(ExecutionCost.objects.visible_to(user))
        .filter(executed_at__gte=span.start, executed_at__lt=span.end, slippage_bps__isnull=False)
        .select_related("account", "instrument", "order")
        .order_by("-slippage_bps", "-executed_at")[:WORST]
    )


@dataclass(frozen=True)
class SummaryRow:
    group: str
    executions: int
    notional: float
    measures: dict[str, dict[str, Any]]  # measure -> n, mean, ci_low, ci_high

    def cells(self) -> list[dict[str, Any] | None]:
        """The measures in ``trading.tca.MEASURES``' order (None: not measured)."""
        return [self.measures.get(m) for m in MEASURES]


def summary(
    user: AbstractBaseUser | AnonymousUser, scope: AccountScope, by: str, span: Window
) -> list[SummaryRow]:
    """``trading.tca.summary`` of the scope: of the account selected, of every account for a
    user who reads them all, else of the user's accounts aggregated together (named: the
    owner's connection would read every account)."""
    accounts: int | list[int] | None
    if scope.selected is not None:
        accounts = scope.selected.pk
    elif reads_everything(user):
        accounts = None
    else:
        accounts = [account.pk for account in scope.choices]
    if accounts == []:
        return []
    return _pivot(tca.summary(by, span.start, span.end, accounts))


def _pivot(found: list[dict[str, Any]]) -> list[SummaryRow]:
    """The function's (group, measure) rows as one row per group, its measures beside."""
    groups: dict[str, SummaryRow] = {}
    for r in found:
        row = groups.setdefault(
            r["grp"],
            SummaryRow(r["grp"], r["executions"], float(r["notional"] or 0), {}),
        )
        row.measures[r["measure"]] = {
            "n": r["n"],
            "mean": r["mean"],
            "ci_low": r["ci_low"],
            "ci_high": r["ci_high"],
        }
    return list(groups.values())
