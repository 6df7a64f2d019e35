"""Runs that can be repeated: a risk run records its valuation time, its knowledge time, its
code and options; measured again as known then, after bars inside its lookback were corrected
(by ``ingest_bars``, so the revisions are real) and a bust was booked, it gives the same numbers
to the last digit, and a run that knows the corrections does not. SQL's ``calculate_var`` reads
as known at a time too, for every role."""

from __future__ import annotations

from datetime import date
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.models import F

from marketdata.models import DailyBarRevision, Instrument
from marketdata.security_master import Terms, clear, set_terms
from qvp_site.code_version import code_version
from risk.models import FactorExposure, RiskMetric, RiskRun
from risk.runs import RunOptions, compute_risk, repeat_run
from tests.knowledge import between_commits as _pause
from tests.risk.conftest import closes_from, daily_bars, day, hold
from tests.risk.test_performance import snapshots
from trading import books
from trading.models import Execution, PortfolioSnapshot

pytestmark = pytest.mark.django_db(transaction=True)

DAYS = 80
LOOKBACK = 60
OPTIONS = RunOptions(confidence=0.95, lookback=LOOKBACK, benchmark="SPY", volatility_window=20)
AS_OF = day(DAYS)
HEADER = "timestamp,open,high,low,close,volume"


def _write(folder: Path, name: str, closes: np.ndarray) -> Path:
    rows = [
        f"{day(k):%Y-%m-%d %H:%M:%S},{c!r},{c * 1.01!r},{c * 0.99!r},{c!r},1000000"
        for k, c in enumerate(closes.tolist())
    ]
    path = folder / name
    path.write_text("\n".join([HEADER, *rows]) + "\n")
    return path


def _ingest(path: Path, symbol: str) -> str:
    out = StringIO()
    call_command("ingest_bars", str(path), "--symbol", symbol, "--timeframe", "1d", stdout=out)
    return out.getvalue()


@pytest.fixture
def market(tmp_path) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    beat = rng.normal(0.0003, 0.01, DAYS)
    closes = {}
    for symbol, beta in {"SPY": 1.0, "BIG": 1.2, "SMAL": 0.6}.items():
        closes[symbol] = closes_from(beta * beat + rng.normal(0, 0.005, DAYS) * (beta != 1))
        assert "inserted" in _ingest(_write(tmp_path, f"{symbol}.csv", closes[symbol]), symbol)
    return closes


@pytest.fixture
def book(account, market):
    held = {s: Instrument.objects.get(symbol=s) for s in ("BIG", "SMAL")}
    hold(account, held["BIG"], 1000, "100")
    hold(account, held["SMAL"], 500, "100")
    snapshots(account, 2e5 * np.cumprod(np.r_[1.0, 1 + np.diff(market["SPY"][:41]) / 100]))
    return account


def _numbers(account) -> dict[tuple[str, str], float]:
    metrics = RiskMetric.objects.filter(account=account, ts=AS_OF)
    exposures = FactorExposure.objects.filter(account=account, ts=AS_OF)
    numbers = {("metric", m): v for m, v in metrics.values_list("metric", "value")}
    numbers.update({("factor", f): e for f, e in exposures.values_list("factor", "exposure")})
    return numbers


def _correct_and_bust(tmp_path: Path, market: dict[str, np.ndarray], account) -> None:
    """Correct ten of BIG's closes inside the lookback, and book a bust of the SMAL fill,
    effective within the valuation (booked now, after the run)."""
    corrected = market["BIG"].copy()
    corrected[DAYS - 30 : DAYS - 20] *= 1.07
    out = _ingest(_write(tmp_path, "BIG-corrected.csv", corrected), "BIG")
    assert "0 inserted, 10 revised" in out
    small = Execution.objects.get(account=account, instrument__symbol="SMAL")
    row = books.bust_row(small, "small-bust", "wrong price")
    books.book({**row, "executed_at": day(10)})


def test_a_run_is_recorded_with_what_it_knew_and_which_code_ran(book):
    report = compute_risk(AS_OF, options=OPTIONS)
    run = RiskRun.objects.get(pk=report.run_id)
    assert run.as_of == AS_OF
    assert run.known_at == report.known_at
    assert run.started_at <= run.finished_at
    assert run.code_version == code_version()
    assert (run.confidence, run.lookback, run.benchmark, run.volatility_window) == (
        0.95,
        LOOKBACK,
        "SPY",
        20,
    )
    assert run.accounts == [book.id]
    assert run.actor == "system:compute_risk"
    assert run.repeat_of is None
    assert run.identical is None
    assert set(RiskMetric.objects.filter(ts=AS_OF).values_list("run", flat=True)) == {run.pk}
    assert set(FactorExposure.objects.filter(ts=AS_OF).values_list("run", flat=True)) == {run.pk}


def test_repeated_with_its_known_at_a_run_gives_the_same_numbers(
    book, market, tmp_path, client, django_user_model
):
    first = compute_risk(AS_OF, options=OPTIONS)
    before = _numbers(book)
    assert before[("metric", "var_historical")] > 0
    assert ("factor", "market") in before
    _pause()
    _correct_and_bust(tmp_path, market, book)
    assert DailyBarRevision.objects.filter(instrument__symbol="BIG").count() == 10

    # The stored run measured again: every value identical, recorded as its repeat.
    repeat = repeat_run(first.run_id)
    assert repeat.identical, repeat.differences
    assert repeat.compared == len(before)
    recorded = RiskRun.objects.get(pk=repeat.run_id)
    assert (recorded.repeat_of_id, recorded.identical) == (first.run_id, True)
    assert recorded.known_at == first.known_at
    assert _numbers(book) == before  # a repeat stores no metric

    # A run given the first one's knowledge time stores the very same numbers.
    again = compute_risk(AS_OF, options=OPTIONS, known_at=first.known_at)
    assert again.known_at == first.known_at
    assert _numbers(book) == before

    # Knowing the corrections and the bust, the numbers move.
    now = compute_risk(AS_OF, options=OPTIONS)
    after = _numbers(book)
    assert now.known_at > first.known_at
    for name in ("var_historical", "var_parametric", "gross_exposure", "net_exposure"):
        assert after[("metric", name)] != before[("metric", name)], name
    # Without SMAL (busted), the gross exposure is BIG's alone.
    assert after[("metric", "gross_exposure")] < before[("metric", "gross_exposure")]

    # VaR on demand as known then: the first run's number, to the last digit.
    root = django_user_model.objects.create_superuser("root", password="pw-root-1234")
    client.force_login(root)
    params = {"account": book.id, "confidence": 0.95, "lookback": LOOKBACK}
    params["as_of"] = AS_OF.isoformat()
    then = client.get("/api/v1/risk/var/", {**params, "known_at": first.known_at.isoformat()})
    assert then.status_code == 200, then.content
    assert then.json()["var"] == before[("metric", "var_historical")]
    present = client.get("/api/v1/risk/var/", params).json()
    assert present["var"] == after[("metric", "var_historical")]
    refused = client.get("/api/v1/risk/var/", {**params, "known_at": "yesterday"})
    assert refused.status_code == 400
    assert list(refused.json()) == ["known_at"]

    # The first run's rows are restated now: repeating it says they differ, naming them.
    stale = repeat_run(first.run_id)
    assert not stale.identical
    assert RiskRun.objects.get(pk=stale.run_id).identical is False


def test_sql_reads_as_known_at_a_time_as_the_app_role(book, market, tmp_path, connect_as_app):
    """calculate_var(account, confidence, lookback, as_of, known_at) as trading_app, under
    row-level security: the same rows as the owner's, before and after the corrections."""
    known = _pause()
    _correct_and_bust(tmp_path, market, book)
    query = (
        "SELECT method, observations, portfolio_value, var, cvar"
        " FROM calculate_var(%s, 0.95, %s, %s, %s) ORDER BY method"
    )
    with connection.cursor() as cursor:
        cursor.execute(query, [book.id, LOOKBACK, AS_OF, known])
        owner_then = cursor.fetchall()
        cursor.execute(query, [book.id, LOOKBACK, AS_OF, None])
        owner_now = cursor.fetchall()
    app = connect_as_app()
    app.execute("SELECT set_config('qvp.actor', 'system:test', false)")
    then = app.execute(query, [book.id, LOOKBACK, AS_OF, known]).fetchall()
    present = app.execute(query, [book.id, LOOKBACK, AS_OF, None]).fetchall()
    assert then == owner_then
    assert present == owner_now
    assert then != present
    # The design documents' form, as before, and with a knowledge time.
    every = app.execute("SELECT account_id, method FROM calculate_var(0.95, 252)").fetchall()
    assert {account for account, _ in every} == {book.id}
    known_form = app.execute(
        "SELECT var FROM calculate_var(0.95, %s, %s, %s) ORDER BY method",
        [LOOKBACK, AS_OF, known],
    ).fetchall()
    assert [v for (v,) in known_form] == [row[3] for row in then]
    # Python reads the same holdings as SQL, as known then.
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM risk_holdings(%s, %s, %s)", [book.id, AS_OF, known])
        assert cursor.fetchone()[0] == 2
        cursor.execute("SELECT count(*) FROM risk_holdings(%s, %s)", [book.id, AS_OF])
        assert cursor.fetchone()[0] == 1


def test_command_runs_as_known_at_and_repeats(book, market, tmp_path):
    out = StringIO()
    known = _pause()
    call_command(
        "compute_risk",
        "--as-of",
        AS_OF.isoformat(),
        "--known-at",
        known.isoformat(),
        "--lookback",
        str(LOOKBACK),
        stdout=out,
    )
    run = RiskRun.objects.latest("started_at")
    assert run.known_at == known
    assert f"Risk run {run.pk} as of" in out.getvalue()
    assert f"known at {known.isoformat()}" in out.getvalue()
    _correct_and_bust(tmp_path, market, book)
    out = StringIO()
    call_command("compute_risk", "--repeat", str(run.pk), stdout=out)
    assert f"repeats run {run.pk}" in out.getvalue()
    assert "identical" in out.getvalue()
    with pytest.raises(CommandError, match="no risk run 0"):
        call_command("compute_risk", "--repeat", "0")
    with pytest.raises(CommandError, match="--repeat takes the run's own"):
        call_command("compute_risk", "--repeat", str(run.pk), "--as-of", AS_OF.isoformat())
    with pytest.raises(CommandError, match=r"--known-at.*is not settled yet"):
        call_command("compute_risk", "--known-at", "2999-01-01T00:00:00Z")


def test_a_run_repeats_after_its_snapshots_were_restated(book):
    """The performance metrics and the NAV come from the portfolio snapshots: taken again with
    other numbers since (a deposit found late, say), they are read as stored at the run's
    knowledge time (trading 0012 keeps their history), so the run still repeats exactly."""
    first = compute_risk(AS_OF, options=OPTIONS)
    before = _numbers(book)
    _pause()
    restated = PortfolioSnapshot.objects.filter(account=book, ts__gte=day(20))
    assert restated.update(cash=F("cash") * 2, nav=F("nav") * 2, daily_pnl=F("daily_pnl") * 3)
    repeat = repeat_run(first.run_id)
    assert repeat.identical, repeat.differences
    compute_risk(AS_OF, options=OPTIONS)
    after = _numbers(book)
    for name in ("total_return", "volatility", "sharpe"):
        assert after[("metric", name)] != before[("metric", name)], name


def test_the_benchmark_is_the_instrument_that_bore_its_symbol_then(book, market):
    """A delisted company that bore SPY once is not the benchmark: beta, in SQL and in a run,
    is measured against the instrument that bore the symbol on the valuation date."""
    query = "SELECT beta FROM calculate_portfolio_metrics(%s, %s, 'SPY', 0, %s)"
    with connection.cursor() as cursor:
        cursor.execute(query, [book.id, LOOKBACK, AS_OF])
        (beta,) = cursor.fetchone()
    compute_risk(AS_OF, options=OPTIONS)
    before = _numbers(book)
    spy = Instrument.objects.get(symbol="SPY")
    clear(spy.id, None, date(2000, 1, 3))  # listed since 2000 (not since always)
    impostor = Instrument.objects.create(symbol="SPY", asset_class="equity", active=False)
    set_terms(impostor.id, date(1993, 1, 4), date(1995, 1, 3), Terms("SPY", "USD"))
    set_terms(impostor.id, date(1995, 1, 3), None, Terms("SPY", "USD", "delisted"))
    clear(impostor.id, None, date(1993, 1, 4))
    daily_bars(impostor, closes_from(np.random.default_rng(5).normal(0, 0.05, DAYS - 1)))
    with connection.cursor() as cursor:
        cursor.execute(query, [book.id, LOOKBACK, AS_OF])
        assert cursor.fetchone() == (beta,)
    compute_risk(AS_OF, options=OPTIONS)
    assert _numbers(book) == before
