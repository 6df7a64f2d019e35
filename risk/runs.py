"""A risk run (``compute_risk``): volatility estimates, then per account VaR and CVaR by every
method, portfolio metrics, exposures and factor exposures, stored at the run's time, then the
limit checks; the alerts raised are delivered after the run's transaction commits.

Each run is recorded (``RiskRun``): its valuation time ``as_of``, its knowledge time
``known_at`` (by default the time it starts), the code that ran and its options. Every
read of market data and of the books is made as known at ``known_at``, so running again with
the same ``as_of``, ``known_at`` and options gives the same numbers to the last digit whatever
was corrected since; ``repeat_run`` does that for a stored run and says whether they are. A run
given a ``known_at`` of the past checks no limit: alerts speak of what is known now.

Returns (the volatility estimates', the VaR's) are read adjusted for corporate actions by
``adjustment``, by default ``total_return``: a split is not a day the price halved.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import pandas as pd
from django.db import connection

from marketdata.knowledge import knowledge_time
from marketdata.security_master import SymbolNotResolved, resolve
from qvp_site.acting import acting_as
from qvp_site.code_version import code_version
from qvp_site.db import partitions
from qvp_site.per_instrument import InstrumentRun
from risk import alerts, delivery, factors, var
from risk.models import FactorExposure, Metric, RiskMetric, RiskRun
from risk.performance import portfolio_performance
from risk.volatility import DEFAULT_ADJUSTMENT, checked_adjustment, compute_volatility
from trading.models import Account

ACTOR = "compute_risk"

UPSERT_METRICS_SQL = """
INSERT INTO risk_riskmetric (account_id, ts, metric, value, confidence, lookback, run_id)
SELECT account_id, %(ts)s, metric, value, confidence, lookback, %(run)s
FROM unnest(%(account)s::bigint[], %(metric)s::text[], %(value)s::float8[],
            %(confidence)s::float8[], %(lookback)s::integer[])
    AS m(account_id, metric, value, confidence, lookback)
ON CONFLICT (account_id, metric, ts) DO UPDATE
SET value = EXCLUDED.value, confidence = EXCLUDED.confidence, lookback = EXCLUDED.lookback,
    run_id = EXCLUDED.run_id
"""

UPSERT_EXPOSURES_SQL = """
INSERT INTO risk_factorexposure (account_id, ts, factor, exposure, run_id)
SELECT account_id, %(ts)s, factor, exposure, %(run)s
FROM unnest(%(account)s::bigint[], %(factor)s::text[], %(exposure)s::float8[])
    AS e(account_id, factor, exposure)
ON CONFLICT (account_id, factor, ts) DO UPDATE
SET exposure = EXCLUDED.exposure, run_id = EXCLUDED.run_id
"""

# Who acts, as the audit trail and the revisions name them (marketdata_actor, marketdata 0009).
# The run's knowledge time, when none is given, is the settled moment (marketdata.knowledge):
# just before every transaction still open, so that a load or a booking in flight as the run
# reads, committed after, is not known by then either; one given after it is refused.
RUN_START_SQL = "SELECT marketdata_actor()"

LATEST_NAV_SQL = """
SELECT DISTINCT ON (account_id) account_id, nav::float8
FROM trading_portfoliosnapshot_known_at(%s::timestamptz)
WHERE account_id = ANY(%s) AND ts <= %s ORDER BY account_id, ts DESC
"""

VAR_METRICS = {
    "historical": (Metric.VAR_HISTORICAL, Metric.CVAR_HISTORICAL),
    "parametric": (Metric.VAR_PARAMETRIC, Metric.CVAR_PARAMETRIC),
    "monte_carlo": (Metric.VAR_MONTE_CARLO, Metric.CVAR_MONTE_CARLO),
}


@dataclass(frozen=True)
class RunOptions:
    confidence: float = 0.95
    lookback: int = 252
    benchmark: str = "SPY"
    volatility_window: int = 20


@dataclass
class RunReport:
    run_id: int | None = None
    known_at: datetime | None = None
    volatility_estimates: int = 0
    metrics: int = 0
    exposures: int = 0
    alerts_raised: list[int] = field(default_factory=list)
    deliveries: int = 0
    # Instruments skipped or failed by the volatility estimates (the others are stored).
    instruments: InstrumentRun = field(
        default_factory=lambda: InstrumentRun("volatility", isolated=False)
    )


@dataclass
class _Rows:
    """Columns of the rows to upsert, filled account by account."""

    metrics: dict[str, list] = field(
        default_factory=lambda: {
            k: [] for k in ("account", "metric", "value", "confidence", "lookback")
        }
    )
    exposures: dict[str, list] = field(
        default_factory=lambda: {k: [] for k in ("account", "factor", "exposure")}
    )

    def values(self) -> dict[tuple[int, str], float]:
        """Every value by (account, "metric:<name>" or "factor:<name>")."""
        found = {
            (account, f"metric:{name}"): value
            for account, name, value in zip(
                self.metrics["account"], self.metrics["metric"], self.metrics["value"], strict=True
            )
        }
        found.update(
            {
                (account, f"factor:{name}"): value
                for account, name, value in zip(
                    self.exposures["account"],
                    self.exposures["factor"],
                    self.exposures["exposure"],
                    strict=True,
                )
            }
        )
        return found

    def metric(self, account: int, name: str, value, confidence=None, lookback=None) -> None:
        if value is None or not math.isfinite(value):
            return  # not computable (too little history): nothing stored, nothing checked
        for key, item in zip(
            self.metrics, (account, str(name), float(value), confidence, lookback), strict=True
        ):
            self.metrics[key].append(item)


def compute_risk(
    as_of: datetime,
    accounts: Iterable[int] | None = None,
    options: RunOptions = RunOptions(),
    instruments: InstrumentRun | None = None,
    *,
    known_at: datetime | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> RunReport:
    """The run, recorded; ``known_at`` the knowledge time it reads (default: the settled
    moment; one given names the past, and the run then checks no limit), ``adjustment`` how
    its returns are adjusted for corporate actions. ``instruments`` records what each
    instrument's volatility estimate became (one that fails is recorded there while the
    others go on; without it, its error stops the run)."""
    checked_adjustment(adjustment)  # before anything is written
    report = RunReport() if instruments is None else RunReport(instruments=instruments)
    for table in ("risk_riskmetric", "risk_factorexposure"):
        partitions.prepare_load(table, as_of, as_of)
    with acting_as(ACTOR):
        # Inside: under row-level security only the acting command sees every account.
        ids = _account_ids(accounts)
        run = _start(as_of, known_at, ids, options, adjustment=adjustment)
        report.run_id, report.known_at = run.pk, run.known_at
        report.volatility_estimates = compute_volatility(
            as_of,
            window=options.volatility_window,
            run=report.instruments,
            known_at=run.known_at,
            adjustment=adjustment,
        )
        rows = _measure(ids, as_of, options, run.known_at, adjustment)
        report.metrics, report.exposures = _store(rows, as_of, run.pk)
        if known_at is None:
            report.alerts_raised = alerts.raise_alerts(as_of, ids)
        _finish(run)
    if known_at is None:
        report.deliveries = delivery.deliver(report.alerts_raised)
        # The older undelivered ones: this run's own were just tried, each attempt counted.
        report.deliveries += delivery.deliver_undelivered(skip=report.alerts_raised)
    return report


@dataclass
class RepeatReport:
    """A stored run measured again with its ``as_of``, ``known_at``, options and accounts."""

    run_id: int
    repeat_of: int
    compared: int  # metrics and exposures compared
    # (account, metric or factor): (stored value, repeated value); None where one has none.
    differences: dict[tuple[int, str], tuple[float | None, float | None]]

    @property
    def identical(self) -> bool:
        return not self.differences


def repeat_run(run_id: int) -> RepeatReport:
    """Measure run ``run_id`` again (VaR and CVaR, portfolio metrics, exposures and factor
    exposures) and compare, value for value, with the rows it stored; the repeat is recorded
    with its verdict and stores no metric. Rows a later run restated at the same ``as_of`` no
    longer name this run: they count as differences (the run cannot be checked against them)."""
    first = RiskRun.objects.get(pk=run_id)
    options = RunOptions(first.confidence, first.lookback, first.benchmark, first.volatility_window)
    with acting_as(ACTOR):
        run = _start(
            first.as_of, first.known_at, list(first.accounts), options, first, first.adjustment
        )
        rows = _measure(
            list(first.accounts), first.as_of, options, first.known_at, first.adjustment
        )
        stored = _stored(first)
        found = rows.values()
        differences = {
            key: (stored.get(key), found.get(key))
            for key in sorted(stored.keys() | found.keys())
            if stored.get(key) != found.get(key)
        }
        run.identical = not differences
        _finish(run, "identical")
    return RepeatReport(run.pk, first.pk, len(stored.keys() | found.keys()), differences)


def _account_ids(accounts: Iterable[int] | None) -> list[int]:
    if accounts is not None:
        return sorted(accounts)
    return list(Account.objects.order_by("id").values_list("id", flat=True))


def _start(
    as_of: datetime,
    known_at: datetime | None,
    ids: list[int],
    options: RunOptions,
    repeat_of: RiskRun | None = None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> RiskRun:
    known = knowledge_time(known_at)
    with connection.cursor() as cursor:
        cursor.execute(RUN_START_SQL)
        (actor,) = cursor.fetchone()
    return RiskRun.objects.create(
        as_of=as_of,
        known_at=known,
        code_version=code_version(),
        confidence=options.confidence,
        lookback=options.lookback,
        benchmark=options.benchmark,
        volatility_window=options.volatility_window,
        adjustment=adjustment,
        accounts=ids,
        actor=actor,
        repeat_of=repeat_of,
    )


def _finish(run: RiskRun, *fields: str) -> None:
    with connection.cursor() as cursor:
        cursor.execute("SELECT clock_timestamp()")
        run.finished_at = cursor.fetchone()[0]
    run.save(update_fields=["finished_at", *fields])


def _stored(run: RiskRun) -> dict[tuple[int, str], float]:
    """The metrics and exposures that still name ``run``, keyed as ``_Rows.values``."""
    metrics = RiskMetric.objects.filter(run=run).values_list("account_id", "metric", "value")
    exposures = FactorExposure.objects.filter(run=run).values_list(
        "account_id", "factor", "exposure"
    )
    stored = {(account, f"metric:{name}"): value for account, name, value in metrics}
    stored.update({(account, f"factor:{name}"): value for account, name, value in exposures})
    return stored


def _benchmark(symbol: str, as_of: datetime, known_at: datetime | None) -> int | None:
    """The instrument that bore the benchmark's symbol on the valuation date, as known then
    (None when none did: the factors and beta that need it are left out, as without one)."""
    try:
        return resolve(symbol, as_of.astimezone(UTC).date(), known_at).id
    except SymbolNotResolved:
        return None


def _measure(
    ids: list[int],
    as_of: datetime,
    options: RunOptions,
    known_at: datetime | None,
    adjustment: str = DEFAULT_ADJUSTMENT,
) -> _Rows:
    benchmark = _benchmark(options.benchmark, as_of, known_at)
    table = factors.loadings(
        as_of, benchmark, options.lookback, known_at=known_at, adjustment=adjustment
    )
    # The NAV is the latest snapshot's, as stored at known_at (trading 0012 keeps its history).
    with connection.cursor() as cursor:
        cursor.execute(LATEST_NAV_SQL, [known_at, ids, as_of])
        navs = dict(cursor.fetchall())
    rows = _Rows()
    for account in ids:  # accounts, each a handful of set-based reads
        held = var.holdings(account, as_of, known_at)
        _var_metrics(rows, account, held, as_of, options, known_at, adjustment)
        _performance_metrics(rows, account, as_of, options, known_at, adjustment)
        rows.metric(account, Metric.GROSS_EXPOSURE, float(np.abs(held.values).sum()))
        rows.metric(account, Metric.NET_EXPOSURE, held.total)
        nav = navs.get(account) or float(np.abs(held.values).sum())
        values = pd.Series(held.values, index=held.instrument_ids)
        for factor, exposure in factors.exposures(values, nav, table).items():
            rows.exposures["account"].append(account)
            rows.exposures["factor"].append(factor)
            rows.exposures["exposure"].append(exposure)
    return rows


def _var_metrics(
    rows: _Rows,
    account: int,
    held: var.Holdings,
    as_of: datetime,
    options: RunOptions,
    known_at: datetime | None,
    adjustment: str,
) -> None:
    returns = var.daily_returns(held.instrument_ids, as_of, options.lookback, known_at, adjustment)
    for method, (var_name, cvar_name) in VAR_METRICS.items():
        result = var.var_from(returns, held, method, options.confidence, options.lookback)
        rows.metric(account, var_name, result.var, options.confidence, options.lookback)
        rows.metric(account, cvar_name, result.cvar, options.confidence, options.lookback)


def _performance_metrics(
    rows: _Rows,
    account: int,
    as_of: datetime,
    options: RunOptions,
    known_at: datetime | None,
    adjustment: str,
) -> None:
    perf = portfolio_performance(
        account,
        as_of,
        lookback=options.lookback,
        benchmark=options.benchmark,
        known_at=known_at,
        adjustment=adjustment,
    )
    for name in ("total_return", "volatility", "sharpe", "sortino", "max_drawdown", "beta"):
        rows.metric(account, name, getattr(perf, name), lookback=options.lookback)


def _store(rows: _Rows, as_of: datetime, run: int) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_METRICS_SQL, {"ts": as_of, "run": run, **rows.metrics})
        metrics = cursor.rowcount
        cursor.execute(UPSERT_EXPOSURES_SQL, {"ts": as_of, "run": run, **rows.exposures})
        return metrics, cursor.rowcount
