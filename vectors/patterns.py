"""Strategy patterns: market states (256-d) at strategies' decisions, with backtested outcomes.

A market state is multi-timeframe: the 128 features of the last 390 minute bars beside the
128 features of the last 390 thirty-minute bars (made from the minute bars), each from
``vectors.features`` and standardised together as one feature set (``market-state``).

The outcomes come from backtests run here and stored as ``trading.BacktestRun`` rows with
their ``BacktestTrade`` entries and exits, one run per strategy and instrument. The
strategies are simple rules read off the same features, decided every hour on the hour (a
minute bar closing then), each holding for ``HORIZON`` minutes within one session, paying
``FEE_BPS`` on each side; a flat decision is no trade and no pattern. Each trade's outcome:
its return after fees, the Sharpe ratio of its minute returns (annualised), and the largest
fall of its equity from a peak while it was held.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import numpy as np
from django.db import transaction
from django.utils import timezone

from marketdata.knowledge import knowledge_time
from marketdata.models import Instrument
from marketdata.security_master import SymbolNotResolved, resolve
from qvp_site.code_version import code_version
from qvp_site.db.binary_copy import copy_rows
from qvp_site.db.set_aside import IndexesSetAside, table_is_empty
from qvp_site.per_instrument import InstrumentRun
from risk.estimators import PERIODS_PER_YEAR
from trading.models import BacktestRun, BacktestTrade
from trading.reruns import METRICS, Repeated, RerunRefused
from vectors import bars, features, store
from vectors.models import FeatureSet, StrategyPattern
from vectors.store import SetSpec, scaler_of

HORIZON = 60  # minutes held
DECISION_EVERY = 60  # minutes between decisions
SLOW_BARS = 30  # minutes per bar of the slower timeframe
FEE_BPS = 1.0
CAPITAL = Decimal(1_000_000)
MADE_BY = "vectors.patterns"
# Minute bars a state needs: a full window of thirty-minute bars, and one of minute bars.
STATE_LOOKBACK = SLOW_BARS * (features.WINDOW + 2) + features.WINDOW + 2

STATES = SetSpec(
    name="market-state",
    version=1,
    kind=FeatureSet.Kind.STATE,
    timeframe=f"1m+{SLOW_BARS}m",
    stride=DECISION_EVERY,
    feature_names=tuple(
        [f"1m:{n}" for n in features.FEATURE_NAMES]
        + [f"{SLOW_BARS}m:{n}" for n in features.FEATURE_NAMES]
    ),
    description="vectors/features.py over 390 one-minute and 390 thirty-minute bars",
)
TABLE = StrategyPattern._meta.db_table
COLUMNS = (
    "strategy",
    "backtest_id",
    "instrument_id",
    "feature_set_id",
    "ts",
    "state",
    "horizon_minutes",
    "position",
    "forward_return",
    "sharpe",
    "max_drawdown",
)
TYPES = (
    "text",
    "int8",
    "int8",
    "int8",
    "timestamptz",
    "vector",
    "int4",
    "int2",
    "float8",
    "float8",
    "float8",
)


def _column(name: str) -> int:
    return features.FEATURE_NAMES.index(name)


def _momentum(raw: np.ndarray) -> np.ndarray:
    """With the last hour's move."""
    return np.sign(raw[:, _column("ret_60")])


def _mean_reversion(raw: np.ndarray) -> np.ndarray:
    """Against a half-hour move larger than twice its volatility."""
    move = raw[:, _column("ret_30")]
    typical = np.exp(raw[:, _column("rvol_30")]) * np.sqrt(30)
    return np.where(np.abs(move) > 2 * typical, -np.sign(move), 0.0)


def _breakout(raw: np.ndarray) -> np.ndarray:
    """With a close at the edge of the last four hours' range."""
    where = raw[:, _column("close_location_240")]
    return np.where(where > 0.95, 1.0, np.where(where < 0.05, -1.0, 0.0))


def _slow_trend(raw: np.ndarray) -> np.ndarray:
    """With the thirty-minute bars' trend: the close above or below their 60-bar average."""
    return np.sign(raw[:, features.DIMENSIONS + _column("ma_gap_60")])


STRATEGIES: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "momentum-1h": _momentum,
    "mean-reversion-30m": _mean_reversion,
    "breakout-4h": _breakout,
    "trend-30m-bars": _slow_trend,
}


@dataclass
class States:
    """Decision points of one instrument: minute-bar index, time, raw 256 features."""

    index: np.ndarray
    ts: np.ndarray  # datetime64[us]: when the decision's bar closed
    raw: np.ndarray


def states(minute: bars.Series, ends: np.ndarray) -> States:
    """The raw market state at each minute-bar index in ``ends`` that has both windows."""
    slow = bars.resample(minute, SLOW_BARS)
    closes = minute.closes_at()[ends]
    # The last thirty-minute bar closed by the decision (a bucket still open is not used).
    slow_end = np.searchsorted(slow.closes_at(), closes, side="right") - 1
    ok = (slow_end >= features.WINDOW) & (ends >= features.WINDOW)
    ends, slow_end = ends[ok], slow_end[ok]
    fast_raw = features.compute(features.windows_ending_at(minute.columns(), ends))
    slow_raw = features.compute(features.windows_ending_at(slow.columns(), slow_end))
    return States(ends, closes[ok], np.hstack([fast_raw, slow_raw]))


def _holdable(minute: bars.Series, ends: np.ndarray) -> np.ndarray:
    """Decisions whose exit bar is HORIZON minutes later in the same run of bars."""
    ends = ends[ends + HORIZON < len(minute)]
    return ends[minute.ts[ends + HORIZON] - minute.ts[ends] == np.timedelta64(HORIZON, "m")]


@dataclass
class Outcomes:
    forward_return: np.ndarray
    sharpe: np.ndarray
    max_drawdown: np.ndarray
    entry: np.ndarray
    exit: np.ndarray


def outcomes(minute: bars.Series, index: np.ndarray, position: np.ndarray) -> Outcomes:
    """Each trade's return after fees, annualised Sharpe of its minute returns, drawdown."""
    path = minute.close[index[:, None] + np.arange(HORIZON + 1)]  # (trades, H + 1)
    fee = FEE_BPS / 10_000
    equity = 1 + position[:, None] * (path / path[:, :1] - 1)
    steps = np.diff(equity, axis=1) / equity[:, :-1]
    spread = steps.std(axis=1, ddof=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sharpe = np.where(
            spread > 0, steps.mean(axis=1) / spread * np.sqrt(PERIODS_PER_YEAR["1m"]), 0.0
        )
    drawdown = 1 - (equity / np.maximum.accumulate(equity, axis=1)).min(axis=1)
    return Outcomes(
        forward_return=equity[:, -1] * (1 - fee) ** 2 - 1,
        sharpe=sharpe,
        max_drawdown=np.clip(drawdown, 0, 1),
        entry=path[:, 0],
        exit=path[:, -1],
    )


def build(
    instruments: Iterable[Instrument],
    *,
    since: datetime | None = None,
    progress: Callable[[Iterable], Iterable] = lambda items: items,
    run: InstrumentRun | None = None,
    known_at: datetime | None = None,
) -> dict[str, int]:
    """Run every strategy over each instrument's bars (decisions from ``since`` on, or all),
    replacing the runs made here before; store runs, trades and patterns. Returns patterns
    written per strategy. An instrument without a decision to test is a skip in ``run``; one
    that fails is recorded there and the others go on.

    The bars are read as known at ``known_at`` (default: the build's start, settled: just
    before every transaction still open, so that a load committing later cannot be known by
    then; ``marketdata.knowledge``), and each run records it with the code's version, so that
    ``rerun`` can read exactly the same bars again later."""
    run = run if run is not None else InstrumentRun("patterns", isolated=False)
    written: dict[str, int] = dict.fromkeys(STRATEGIES, 0)
    with transaction.atomic():
        store.lock_builds()
        # Knowledge not yet settled is refused: what loads still open commit would change it.
        read = Reading(known_at=knowledge_time(known_at), since=since)
        computed = {}
        for instrument in progress(list(instruments)):
            with run.each(instrument.symbol):
                minute, found = _decisions(instrument, read)
                if len(found.index):
                    computed[instrument] = (minute, found)
                else:
                    run.skip(instrument.symbol, _why_no_decision(minute))
        if not computed:
            return written
        feature_set = STATES.fitted(np.concatenate([s.raw for _, s in computed.values()]))
        scaler = scaler_of(feature_set)
        for instrument in computed:
            with run.each(instrument.symbol):
                _replace_runs(instrument)
        # Replacing every pattern is a bulk load: the HNSW index is built after it.
        with IndexesSetAside(TABLE, when=table_is_empty(TABLE)):
            for instrument, (minute, found) in computed.items():
                if instrument.symbol in run.failed:
                    continue
                with run.each(instrument.symbol):
                    for strategy, count in _backtest(
                        instrument, feature_set, minute, found, scaler.transform(found.raw), read
                    ).items():
                        written[strategy] += count
    return written


@dataclass(frozen=True)
class Reading:
    """What a build read: the bars as known at ``known_at``, decisions from ``since`` on (or
    all). A run stores both, and its rerun reads the same."""

    known_at: datetime
    since: datetime | None = None


def _decisions(instrument: Instrument, read: Reading) -> tuple[bars.Series, States]:
    """The instrument's minute bars, and its market states at the decisions that can be held."""
    minute = bars.load(
        instrument.id, lookback_from=read.since, lookback=STATE_LOOKBACK, known_at=read.known_at
    )
    ends = _holdable(minute, bars.stride_ends(minute, DECISION_EVERY, features.WINDOW))
    if read.since is not None:
        moment = np.datetime64(read.since.astimezone(UTC).replace(tzinfo=None), "us")
        ends = ends[minute.closes_at()[ends] >= moment]
    return minute, states(minute, ends)


def _why_no_decision(minute: bars.Series) -> str:
    if not len(minute):
        return "no minute bars"
    return (
        f"{len(minute)} minute bar(s): no hourly decision with {features.WINDOW} minute and"
        f" {features.WINDOW} {SLOW_BARS}-minute bars behind it and {HORIZON} minutes after"
    )


def _backtest(instrument, feature_set, minute, found, vectors, read: Reading) -> dict[str, int]:
    """Each strategy's trades of one instrument stored; patterns written per strategy."""
    written = {}
    for strategy, rule in STRATEGIES.items():
        position = rule(found.raw)
        trade = position != 0
        if trade.any():
            written[strategy] = _store(
                strategy, instrument, feature_set, minute, found, vectors, position, trade, read
            )
    return written


def _replace_runs(instrument: Instrument) -> None:
    runs = BacktestRun.objects.filter(
        parameters__made_by=MADE_BY, parameters__symbol=instrument.symbol
    )
    # Patterns and trades first, each one DELETE: the cascade from the runs would fetch
    # every row (vectors included) to delete them one batch at a time.
    StrategyPattern.objects.filter(backtest__in=runs).delete()
    BacktestTrade.objects.filter(run__in=runs).delete()
    runs.delete()


@dataclass
class TradesMade:
    """One strategy's trades over one instrument's bars, computed and not yet stored."""

    index: np.ndarray  # the minute bar of each decision
    ts: np.ndarray  # each entry's time
    exits: np.ndarray  # each exit's time
    position: np.ndarray  # +1 long, -1 short
    result: Outcomes


def _trades_of(minute: bars.Series, found: States, position: np.ndarray) -> TradesMade:
    trade = position != 0
    index = found.index[trade]
    return TradesMade(
        index=index,
        ts=found.ts[trade],
        exits=minute.closes_at()[index + HORIZON],
        position=position[trade],
        result=outcomes(minute, index, position[trade]),
    )


def _store(
    strategy, instrument, feature_set, minute, found, vectors, position, trade, read: Reading
) -> int:
    made = _trades_of(minute, found, position)
    run = _run(strategy, instrument, made, read)
    _trades(run, instrument, made)
    rows = zip(
        [strategy] * len(made.index),
        [run.id] * len(made.index),
        [instrument.id] * len(made.index),
        [feature_set.id] * len(made.index),
        bars.to_datetimes(made.ts),
        vectors[trade],
        [HORIZON] * len(made.index),
        made.position.astype(int).tolist(),
        made.result.forward_return.tolist(),
        made.result.sharpe.tolist(),
        made.result.max_drawdown.tolist(),
        strict=True,
    )
    return copy_rows(TABLE, COLUMNS, TYPES, rows)


def parameters(instrument: Instrument, since: datetime | None) -> dict[str, Any]:
    """What a run of these rules is made of, stored with it (a rerun applies the same)."""
    return {
        "made_by": MADE_BY,
        "symbol": instrument.symbol,
        "horizon_minutes": HORIZON,
        "decision_every_minutes": DECISION_EVERY,
        "fee_bps": FEE_BPS,
        "since": since.astimezone(UTC).isoformat() if since is not None else None,
    }


def summary(made: TradesMade) -> dict[str, Any]:
    """The run's period and metrics from its trades taken one after another (they never
    overlap)."""
    r = made.result.forward_return
    start, end = bars.to_datetimes(np.array([made.ts[0], made.exits[-1]]))
    years = max((end - start).days / 365.25, 1 / 365.25)
    per_year = len(r) / years
    spread, downside = r.std(ddof=1) if len(r) > 1 else 0.0, np.sqrt(np.mean(np.minimum(r, 0) ** 2))
    equity = np.cumprod(1 + r)
    return {
        "period_start": start,
        "period_end": end,
        "total_return": float(equity[-1] - 1),
        "sharpe": float(r.mean() / spread * np.sqrt(per_year)) if spread > 0 else None,
        "sortino": float(r.mean() / downside * np.sqrt(per_year)) if downside > 0 else None,
        "max_drawdown": float(
            np.clip(1 - (equity / np.maximum.accumulate(np.r_[1.0, equity])[1:]).min(), 0, 1)
        ),
        "hit_rate": float((r > 0).mean()),
        "turnover": float(2 * len(r)),
    }


def _run(strategy, instrument, made: TradesMade, read: Reading) -> BacktestRun:
    return BacktestRun.objects.create(
        strategy=strategy,
        parameters=parameters(instrument, read.since),
        status=BacktestRun.Status.SUCCEEDED,
        initial_capital=CAPITAL,
        known_at=read.known_at,
        code_version=code_version(),
        finished_at=timezone.now(),
        **summary(made),
    )


def _money(values: np.ndarray) -> list[Decimal]:
    return [Decimal(f"{v:.8f}") for v in values.tolist()]


def trade_rows(instrument_id: int, made: TradesMade) -> list[tuple]:
    """Entry and exit of each trade, sized to the run's capital at the entry price, as
    (instrument_id, ts, side, quantity, price, fee, pnl) in the order they are stored: the
    entries, then the exits."""
    fee = FEE_BPS / 10_000
    result = made.result
    quantity = np.maximum(np.floor(float(CAPITAL) / result.entry), 1) * made.position
    entry_fee, exit_fee = (
        np.abs(quantity) * result.entry * fee,
        np.abs(quantity) * result.exit * fee,
    )
    pnl = quantity * (result.exit - result.entry) - entry_fee - exit_fee
    times = bars.to_datetimes(np.concatenate([made.ts, made.exits]))
    sides = np.where(np.concatenate([quantity, -quantity]) > 0, "buy", "sell")
    return list(
        zip(
            [instrument_id] * len(times),
            times,
            sides.tolist(),
            _money(np.concatenate([quantity, -quantity])),
            _money(np.concatenate([result.entry, result.exit])),
            _money(np.concatenate([entry_fee, exit_fee])),
            [None] * len(made.ts) + _money(pnl),
            strict=True,
        )
    )


def _trades(run: BacktestRun, instrument: Instrument, made: TradesMade) -> None:
    copy_rows(
        BacktestTrade._meta.db_table,
        ("run_id", "instrument_id", "ts", "side", "quantity", "price", "fee", "pnl"),
        ("int8", "int8", "timestamptz", "text", "numeric", "numeric", "numeric", "numeric"),
        ((run.id, *row) for row in trade_rows(instrument.id, made)),
    )


def current_state(
    instrument: Instrument, feature_set: FeatureSet
) -> tuple[datetime, np.ndarray] | None:
    """The instrument's market state at its newest minute bar, scaled; None without enough bars."""
    minute = bars.load(instrument.id, lookback_from=timezone.now(), lookback=STATE_LOOKBACK)
    if len(minute) <= features.WINDOW:
        return None
    found = states(minute, np.array([len(minute) - 1]))
    if not len(found.index):
        return None
    return bars.to_datetimes(found.ts)[0], scaler_of(feature_set).transform(found.raw)[0]


def rerun(run: BacktestRun, known_at: datetime) -> Repeated:
    """``run`` (made here) computed again over its instrument's bars as known at ``known_at``,
    from its own parameters: its trades and metrics, as ``trading.reruns`` compares them.
    Refuses a strategy or parameters these rules no longer apply. Writes nothing."""
    rule = STRATEGIES.get(run.strategy)
    if rule is None:
        raise RerunRefused(
            "strategy",
            f"backtest {run.pk}'s strategy {run.strategy!r} is not one of the rules of"
            f" build_patterns ({', '.join(STRATEGIES)})",
        )
    stored = run.parameters
    symbol = stored.get("symbol")
    if not symbol:
        raise RerunRefused("parameters", f"backtest {run.pk}: no instrument {symbol!r}")
    try:  # the instrument that bore the symbol when the run began (the security master)
        instrument = resolve(symbol, run.period_start.astimezone(UTC).date())
    except SymbolNotResolved as refusal:
        raise RerunRefused("parameters", f"backtest {run.pk}: {refusal}") from None
    since = _since(run)
    expected = parameters(instrument, since)
    for name, value in expected.items():
        if stored.get(name) != value:
            raise RerunRefused(
                "parameters",
                f"backtest {run.pk}: parameters.{name} is {stored.get(name)!r} where this code"
                f" runs {value!r}; it cannot repeat the run",
            )
    minute, found = _decisions(instrument, Reading(known_at=known_at, since=since))
    position = rule(found.raw)
    if not (position != 0).any():
        return Repeated(metrics=dict.fromkeys(METRICS), trades=[])
    made = _trades_of(minute, found, position)
    metrics = summary(made)
    return Repeated(
        metrics={name: metrics[name] for name in METRICS}, trades=trade_rows(instrument.id, made)
    )


def _since(run: BacktestRun) -> datetime | None:
    since = run.parameters.get("since")
    if since is None:
        return None
    try:
        return datetime.fromisoformat(since)
    except (TypeError, ValueError):
        raise RerunRefused(
            "parameters", f"backtest {run.pk}: parameters.since {since!r} is not a time"
        ) from None
