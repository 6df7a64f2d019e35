"""Reruns of stored backtest runs: the same strategy over the same bars, compared exactly.

A run records the knowledge time it read its market data as known at (``known_at``) and the
code that ran it (``code_version``). An engine that can repeat its runs registers here by the
``made_by`` it writes in their ``parameters`` (trading knows no app above it: the engine's
app registers a dotted path when it is ready); ``rerun`` asks it for the trades and metrics the
run gives again and compares them with the stored ones, exactly: a rerun that gives the same
numbers to the last digit is identical, anything else is a difference, named. A rerun writes
nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.utils.module_loading import import_string

from qvp_site.code_version import code_version
from trading.models import BacktestRun, BacktestTrade

METRICS = ("total_return", "sharpe", "sortino", "max_drawdown", "hit_rate", "turnover")
TRADE_FIELDS = ("instrument_id", "ts", "side", "quantity", "price", "fee", "pnl")
MAX_DIFFERENCES = 10  # the first ones say what changed; the count says how much

# A trade as compared: TRADE_FIELDS in order.
TradeRow = tuple[int, datetime, str, Decimal, Decimal, Decimal, Decimal | None]

_RERUNNERS: dict[str, str] = {}  # made_by -> dotted path of its rerunner


class RerunRefused(ValueError):
    """A run that cannot be rerun, with the field of the run that says why."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name
        self.message = message


@dataclass(frozen=True)
class Repeated:
    """What an engine computed again for a run: its metrics and its trades, in the order the
    engine stores them."""

    metrics: dict[str, float | None]
    trades: Sequence[TradeRow]


# An engine's rerunner: (run, known_at to read at) -> the run computed again; it refuses with
# RerunRefused what it cannot repeat (a strategy or parameters it does not know).
Rerunner = Callable[[BacktestRun, datetime], Repeated]


@dataclass(frozen=True)
class RerunReport:
    run_id: int
    strategy: str
    known_at: datetime  # what the rerun read at
    exact: bool  # whether that is the run's own known_at
    trades_stored: int
    trades_rerun: int
    differences: list[str] = field(default_factory=list)
    code_version_run: str = ""
    code_version_now: str = ""

    @property
    def identical(self) -> bool:
        return not self.differences

    @property
    def code_changed(self) -> bool | None:
        """Whether other code ran the rerun; None where the run did not record its code."""
        if not self.code_version_run:
            return None
        return self.code_version_run != self.code_version_now

    def lines(self) -> list[str]:
        read = "its own known_at" if self.exact else "a known_at other than the run's"
        head = (
            f"backtest {self.run_id} ({self.strategy}) rerun with the bars known at"
            f" {self.known_at.isoformat()} ({read}): {self.trades_rerun} trade(s) against"
            f" {self.trades_stored} stored."
        )
        verdict = (
            ["identical: the same trades and metrics, to the last digit."]
            if self.identical
            else [
                f"different: {len(self.differences)} difference(s) shown, the first ones:",
                *(f"  {d}" for d in self.differences),
            ]
        )
        return [head, *verdict, self._code_line()]

    def _code_line(self) -> str:
        if self.code_changed is None:
            return f"code version: not recorded by the run; rerun by {self.code_version_now}."
        if self.code_changed:
            return (
                f"code version differs: the run was made by {self.code_version_run},"
                f" the rerun by {self.code_version_now}."
            )
        return f"code version: the same ({self.code_version_now})."

    def as_dict(self) -> dict[str, Any]:
        return {
            "run": self.run_id,
            "strategy": self.strategy,
            "known_at": self.known_at,
            "known_at_is_the_runs": self.exact,
            "identical": self.identical,
            "trades_stored": self.trades_stored,
            "trades_rerun": self.trades_rerun,
            "differences": self.differences,
            "code_version_run": self.code_version_run or None,
            "code_version_now": self.code_version_now,
            "code_changed": self.code_changed,
        }


def register(made_by: str, rerunner: str) -> None:
    """``rerunner``: the dotted path of the engine's Rerunner for the runs it made."""
    _RERUNNERS[made_by] = rerunner


def rerunner_of(run: BacktestRun) -> Rerunner:
    """The rerunner of the engine that made ``run``; refused for a run no engine here made."""
    made_by = run.parameters.get("made_by") if isinstance(run.parameters, dict) else None
    if not isinstance(made_by, str) or made_by not in _RERUNNERS:
        known = ", ".join(sorted(_RERUNNERS)) or "none"
        raise RerunRefused(
            "parameters",
            f"backtest {run.pk} was made by {made_by or 'an engine it does not name'}"
            f" (parameters.made_by), not by a strategy QVP can rerun ({known})",
        )
    rerunner: Rerunner = import_string(_RERUNNERS[made_by])
    return rerunner


def rerun(run: BacktestRun, known_at: datetime | None = None) -> RerunReport:
    """Run ``run`` again over its bars as known at its ``known_at`` (or at ``known_at``, to see
    what knowledge learnt since changes) and compare; writes nothing."""
    if run.known_at is None:
        raise RerunRefused(
            "known_at",
            f"backtest {run.pk} records no known_at (it was made before runs recorded what they"
            " knew): the bars it read cannot be told apart from later corrections, so it cannot"
            " be repeated",
        )
    rerunner = rerunner_of(run)
    read_at = known_at if known_at is not None else run.known_at
    again = rerunner(run, read_at)
    stored = list(
        BacktestTrade.objects.filter(run=run).order_by("ts", "id").values_list(*TRADE_FIELDS)
    )
    # Stored trades list by time then insertion: the rerun's in the same order (a stable sort).
    trades = sorted(again.trades, key=lambda row: row[1])
    differences = _metric_differences(run, again.metrics) + _trade_differences(stored, trades)
    return RerunReport(
        run_id=run.pk,
        strategy=run.strategy,
        known_at=read_at,
        exact=read_at == run.known_at,
        trades_stored=len(stored),
        trades_rerun=len(trades),
        differences=differences[:MAX_DIFFERENCES],
        code_version_run=run.code_version,
        code_version_now=code_version(),
    )


def _same(a: object, b: object) -> bool:
    """Exactly equal; two NaNs are the same number here."""
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    return a == b


def _metric_differences(run: BacktestRun, metrics: dict[str, float | None]) -> list[str]:
    return [
        f"{name}: stored {getattr(run, name)!r}, rerun {metrics.get(name)!r}"
        for name in METRICS
        if not _same(getattr(run, name), metrics.get(name))
    ]


def _trade_differences(stored: list[tuple], again: list[TradeRow]) -> list[str]:
    found = []
    if len(stored) != len(again):
        found.append(f"trades: {len(stored)} stored, {len(again)} rerun")
    for number, (old, new) in enumerate(zip(stored, again, strict=False), start=1):
        changed = [
            f"{name} stored {o!s}, rerun {n!s}"
            for name, o, n in zip(TRADE_FIELDS, old, new, strict=True)
            if not _same(o, n)
        ]
        if changed:
            found.append(f"trade {number} ({old[1].isoformat()}): " + "; ".join(changed))
        if len(found) >= MAX_DIFFERENCES:
            break
    return found
