"""A risk run (``compute_risk``): volatility estimates, then per account VaR and CVaR by every
method, portfolio metrics, exposures and factor exposures, stored at the run's time, then the
limit checks; the alerts raised are delivered after the run's transaction commits.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
import pandas as pd
from django.db import connection

from marketdata.models import Instrument
from qvp_site.acting import acting_as
from qvp_site.db import partitions
from qvp_site.per_instrument import InstrumentRun
from risk import alerts, delivery, factors, var
from risk.models import Metric
from risk.performance import portfolio_performance
from risk.volatility import compute_volatility
from trading.models import Account

ACTOR = "compute_risk"

UPSERT_METRICS_SQL = """
INSERT INTO risk_riskmetric (account_id, ts, metric, value, confidence, lookback)
SELECT account_id, %(ts)s, metric, value, confidence, lookback
FROM unnest(%(account)s::bigint[], %(metric)s::text[], %(value)s::float8[],
            %(confidence)s::float8[], %(lookback)s::integer[])
    AS m(account_id, metric, value, confidence, lookback)
ON CONFLICT (account_id, metric, ts) DO UPDATE
SET value = EXCLUDED.value, confidence = EXCLUDED.confidence, lookback = EXCLUDED.lookback
"""

UPSERT_EXPOSURES_SQL = """
INSERT INTO risk_factorexposure (account_id, ts, factor, exposure)
SELECT account_id, %(ts)s, factor, exposure
FROM unnest(%(account)s::bigint[], %(factor)s::text[], %(exposure)s::float8[])
    AS e(account_id, factor, exposure)
ON CONFLICT (account_id, factor, ts) DO UPDATE SET exposure = EXCLUDED.exposure
"""

LATEST_NAV_SQL = """
SELECT DISTINCT ON (account_id) account_id, nav::float8 FROM trading_portfoliosnapshot
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
) -> RunReport:
    """The run; ``instruments`` records what each instrument's volatility estimate became
    (one that fails is recorded there while the others go on; without it, its error stops
    the run)."""
    report = RunReport() if instruments is None else RunReport(instruments=instruments)
    ids = (
        sorted(accounts)
        if accounts is not None
        else list(Account.objects.values_list("id", flat=True))
    )
    for table in ("risk_riskmetric", "risk_factorexposure"):
        partitions.prepare_load(table, as_of, as_of)
    with acting_as(ACTOR):
        report.volatility_estimates = compute_volatility(
            as_of, window=options.volatility_window, run=report.instruments
        )
        rows = _measure(ids, as_of, options)
        report.metrics, report.exposures = _store(rows, as_of)
        report.alerts_raised = alerts.raise_alerts(as_of, ids)
    report.deliveries = delivery.deliver(report.alerts_raised)
    # The older undelivered ones: this run's own were just tried, each attempt counted.
    report.deliveries += delivery.deliver_undelivered(skip=report.alerts_raised)
    return report


def _measure(ids: list[int], as_of: datetime, options: RunOptions) -> _Rows:
    benchmark = Instrument.objects.filter(symbol=options.benchmark).values_list("id", flat=True)
    table = factors.loadings(as_of, benchmark.first(), options.lookback)
    with connection.cursor() as cursor:
        cursor.execute(LATEST_NAV_SQL, [ids, as_of])
        navs = dict(cursor.fetchall())
    rows = _Rows()
    for account in ids:  # accounts, each a handful of set-based reads
        held = var.holdings(account, as_of)
        _var_metrics(rows, account, held, as_of, options)
        _performance_metrics(rows, account, as_of, options)
        rows.metric(account, Metric.GROSS_EXPOSURE, float(np.abs(held.values).sum()))
        rows.metric(account, Metric.NET_EXPOSURE, held.total)
        nav = navs.get(account) or float(np.abs(held.values).sum())
        values = pd.Series(held.values, index=held.instrument_ids)
        for factor, exposure in factors.exposures(values, nav, table).items():
            rows.exposures["account"].append(account)
            rows.exposures["factor"].append(factor)
            rows.exposures["exposure"].append(exposure)
    return rows


def _var_metrics(rows: _Rows, account: int, held, as_of: datetime, options: RunOptions) -> None:
    returns = var.daily_returns(held.instrument_ids, as_of, options.lookback)
    for method, (var_name, cvar_name) in VAR_METRICS.items():
        result = var.var_from(returns, held, method, options.confidence, options.lookback)
        rows.metric(account, var_name, result.var, options.confidence, options.lookback)
        rows.metric(account, cvar_name, result.cvar, options.confidence, options.lookback)


def _performance_metrics(rows: _Rows, account: int, as_of: datetime, options: RunOptions) -> None:
    perf = portfolio_performance(
        account, as_of, lookback=options.lookback, benchmark=options.benchmark
    )
    for name in ("total_return", "volatility", "sharpe", "sortino", "max_drawdown", "beta"):
        rows.metric(account, name, getattr(perf, name), lookback=options.lookback)


def _store(rows: _Rows, as_of: datetime) -> tuple[int, int]:
    with connection.cursor() as cursor:
        cursor.execute(UPSERT_METRICS_SQL, {"ts": as_of, **rows.metrics})
        metrics = cursor.rowcount
        cursor.execute(UPSERT_EXPOSURES_SQL, {"ts": as_of, **rows.exposures})
        return metrics, cursor.rowcount
