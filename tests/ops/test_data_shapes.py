"""Real data of every shape beside the demo runs every scheduled job.

A user's own files come in every shape: minute bars without daily ones (an FX feed), daily
bars without minute ones (a Yahoo download), one bar, two runs of bars years apart, or an
instrument with no bars yet. Each is loaded here through ``ingest_bars`` beside the demo, and
every job of the scheduler's registry runs as the scheduler runs it: each succeeds, the odd
instruments get results or a named skip, and the demo's results come out as they would alone.
When one instrument's work fails all the same, the others are stored and the failure is
recorded against that instrument.
"""

from __future__ import annotations

import logging
from datetime import date, timedelta
from io import StringIO
from pathlib import Path

import numpy as np
import pytest
from django.core.management import call_command
from django.db import connection
from django.utils import timezone

from marketdata import demo
from marketdata.models import Instrument
from qvp_site.db import partitions
from qvp_site.models import JobRun
from qvp_site.scheduler import discover, run_job
from risk.models import VolatilityEstimate
from signals.models import Agent, FusedSignal, Signal, SystemLog
from signals.systemlog import DatabaseLogHandler
from tests.fixtures.trading import fill, make_order
from trading.models import Account, PortfolioSnapshot
from vectors import embeddings, regimes
from vectors.models import FeatureEmbedding, FeatureSet, StrategyPattern, VolatilityRegime

pytestmark = pytest.mark.django_db(transaction=True)

DEMO = ("AAPL", "SPY")
DEMO_DAYS = 70  # regime signatures need 65 daily bars: the demo gets six days of them
OLD_END = date(2015, 6, 30)  # the gapped instrument's first run, years before the second
SHAPES = ("MINUTESONLY", "DAILYONLY", "ONEMINUTE", "ONEDAY", "GAPPED", "NOBARS")


def _bars(symbol: str, end: date, days: int, seed: int) -> demo.Bars:
    spec = demo.DEMO_SYMBOLS[symbol]
    return demo.generate(spec, end, days, seed)


def _minute_file(path: Path, bars: demo.Bars) -> Path:
    """FXCM's layout: ISO times with their offset, no volume column."""
    stamps = np.datetime_as_string(bars.ts, unit="s")
    rows = [
        f"{t.replace('T', ' ')}+00:00,{o:.5f},{h:.5f},{lo:.5f},{c:.5f}"
        for t, o, h, lo, c in zip(stamps, bars.open, bars.high, bars.low, bars.close, strict=True)
    ]
    path.write_text("timestamp,open,high,low,close\n" + "\n".join(rows) + "\n")
    return path


def _daily_file(path: Path, bars: demo.Bars) -> Path:
    """Yahoo's daily layout."""
    days = np.datetime_as_string(bars.ts, unit="D")
    rows = [
        f"{d},{o:.6f},{h:.6f},{lo:.6f},{c:.6f},{c * 0.9:.6f},{int(v)}"
        for d, o, h, lo, c, v in zip(
            days, bars.open, bars.high, bars.low, bars.close, bars.volume, strict=True
        )
    ]
    path.write_text("Date,Open,High,Low,Close,Adj Close,Volume\n" + "\n".join(rows) + "\n")
    return path


def _ingest(path: Path, symbol: str, timeframe: str, asset_class: str = "equity") -> None:
    call_command(
        "ingest_bars",
        str(path),
        "--symbol",
        symbol,
        "--timeframe",
        timeframe,
        "--asset-class",
        asset_class,
        stdout=StringIO(),
        stderr=StringIO(),
    )


def _cut(bars: demo.Bars, part: slice) -> demo.Bars:
    return demo.Bars(**{name: values[part] for name, values in bars.columns().items()})


def _last_sessions(bars: demo.Bars, count: int) -> slice:
    """The minutes of the last ``count`` sessions of ``bars`` (an early close's are fewer)."""
    first = np.unique(bars.session)[-count]
    return slice(int(np.searchsorted(bars.session, first)), None)


def _demo_windows() -> int:
    """The demo equities' embedding windows: each bar from the 391st that closes on a
    15-minute mark (26 a full New York session, 14 an early close's)."""
    ts = _bars("AAPL", demo.last_completed_weekday(), DEMO_DAYS, seed=1).ts
    closes = (ts + np.timedelta64(1, "m")).astype("M8[m]").astype(np.int64)
    return int((np.flatnonzero(closes % 15 == 0) >= 390).sum())


def _load_shapes(folder: Path) -> None:
    """Each shape through the user's door, ``ingest_bars``; the gapped instrument's two runs
    as two files each (as a user would add a new year's file to an old one)."""
    recent = demo.last_completed_weekday()
    fx = _bars("EURUSD", recent, 3, seed=11)
    _ingest(_minute_file(folder / "fx.csv", fx), "MINUTESONLY", "1m", "fx")
    daily = demo.daily_from_minutes(_bars("NVDA", recent, 100, seed=12))
    _ingest(_daily_file(folder / "daily.csv", daily), "DAILYONLY", "1d")
    _ingest(_minute_file(folder / "one-minute.csv", _cut(fx, slice(-1, None))), "ONEMINUTE", "1m")
    _ingest(_daily_file(folder / "one-day.csv", _cut(daily, slice(-1, None))), "ONEDAY", "1d")
    for name, end, seed in (("old", OLD_END, 13), ("new", recent, 14)):
        minute = _bars("NVDA", end, DEMO_DAYS, seed)
        # Daily bars over the whole run, minute bars over its last five sessions.
        _ingest(
            _daily_file(folder / f"gap-{name}-1d.csv", demo.daily_from_minutes(minute)),
            "GAPPED",
            "1d",
        )
        _ingest(
            _minute_file(folder / f"gap-{name}-1m.csv", _cut(minute, _last_sessions(minute, 5))),
            "GAPPED",
            "1m",
        )
    Instrument.objects.create(symbol="NOBARS", asset_class="equity", exchange="XNAS")


def _hold_and_signal_every_shape() -> None:
    """An account holding each odd instrument, and a running signal on each: the snapshot,
    risk and signal jobs meet them too."""
    account = Account.objects.create(name="shapes", base_currency="USD")
    now = timezone.now()
    partitions.prepare_load("signals_signal", now - timedelta(hours=1), now)
    agent = Agent.objects.create(name="shapes_agent", kind="momentum", version="1")
    for number, instrument in enumerate(Instrument.objects.filter(symbol__in=SHAPES)):
        order = make_order(account, instrument, quantity="10")
        fill(order, 10, "100", at=now - timedelta(days=2, minutes=number))
        Signal.objects.create(
            agent=agent,
            instrument=instrument,
            ts=now - timedelta(hours=1),
            direction=1,
            strength=0.5,
            confidence=0.8,
            horizon=timedelta(days=1),
        )


@pytest.fixture
def demo_and_shapes(tmp_path) -> None:
    call_command(
        "seed_demo", "--symbols", ",".join(DEMO), "--days", str(DEMO_DAYS), stdout=StringIO()
    )
    # The seed embeds only its last weeks: without its vectors, the job embeds the demo's
    # whole history beside the new instruments, as its first run after a load of bars does.
    for model in (FeatureEmbedding, VolatilityRegime, StrategyPattern):
        model.objects.all().delete()
    FeatureSet.objects.all().delete()
    _load_shapes(tmp_path)
    _hold_and_signal_every_shape()


def _run_every_job() -> dict[str, JobRun]:
    jobs = discover()
    assert {"build-embeddings", "compute-risk", "snapshot-portfolios", "fuse-signals"} <= set(jobs)
    return {name: run_job(job) for name, job in sorted(jobs.items())}


def test_every_scheduled_job_runs_with_every_shape_beside_the_demo(demo_and_shapes):
    runs = _run_every_job()
    failed = {name: run.output for name, run in runs.items() if run.status != "succeeded"}
    assert not failed
    windows = _demo_windows()

    # The demo's results are what they are without the odd instruments beside them.
    for symbol in DEMO:
        # 26 windows a session after the first; a signature for each day past the 64th.
        assert FeatureEmbedding.objects.filter(instrument__symbol=symbol).count() == windows
        regime_days = DEMO_DAYS - regimes.FIRST_DAY
        assert VolatilityRegime.objects.filter(instrument__symbol=symbol).count() == regime_days
        assert VolatilityEstimate.objects.filter(instrument__symbol=symbol).exists()

    # The odd ones: a result where their bars allow one, a named skip where they do not.
    embedded = runs["build-embeddings"].output
    assert FeatureEmbedding.objects.filter(instrument__symbol="MINUTESONLY").count() == 3 * 96 - 26
    assert "embeddings: DAILYONLY skipped (no minute bars)" in embedded
    assert "embeddings: NOBARS skipped (no minute bars)" in embedded
    assert "embeddings: ONEMINUTE skipped (1 minute bar(s), a window needs 391)" in embedded
    assert "regimes: MINUTESONLY skipped (no daily bars)" in embedded
    assert "regimes: DAILYONLY skipped (no minute bars)" in embedded
    assert "regimes: ONEDAY skipped (no minute bars)" in embedded
    assert "regimes: NOBARS skipped (no daily bars)" in embedded
    # Two runs of bars years apart: windows and signatures within each run, finite.
    gapped = FeatureEmbedding.objects.filter(instrument__symbol="GAPPED")
    assert gapped.filter(ts__year=OLD_END.year).exists()
    assert gapped.filter(ts__year__gt=2020).exists()
    signatures = VolatilityRegime.objects.filter(instrument__symbol="GAPPED")
    assert signatures.count() == 2 * 5  # each run's days with minutes and 65 daily bars
    assert all(np.isfinite(s).all() for s in signatures.values_list("signature", flat=True))

    risk = runs["compute-risk"].output
    assert "volatility: MINUTESONLY skipped (no daily bars)" in risk
    assert "volatility: ONEDAY skipped (1 daily bar(s): too few for a 20-bar estimate)" in risk
    assert VolatilityEstimate.objects.filter(instrument__symbol="DAILYONLY").exists()
    assert VolatilityEstimate.objects.filter(instrument__symbol="GAPPED").exists()

    # The account holding them is valued, the instrument without a price named as such.
    snapshot = PortfolioSnapshot.objects.get(account__name="shapes")
    assert {item["symbol"] for item in snapshot.unpriced} == {"NOBARS"}
    fused = set(FusedSignal.objects.values_list("instrument__symbol", flat=True))
    assert set(SHAPES) | set(DEMO) <= fused


def test_a_failing_instrument_is_recorded_and_the_others_proceed(
    demo_and_shapes, monkeypatch, caplog
):
    from risk import volatility
    from vectors import bars

    broken = Instrument.objects.get(symbol="GAPPED").id
    load, store = bars.load, volatility._store

    def load_or_fail(instrument_id, **options):
        if instrument_id == broken:
            raise RuntimeError("disk on fire")
        return load(instrument_id, **options)

    def store_or_fail(instrument, *args):
        if instrument == broken:
            raise RuntimeError("disk on fire")
        return store(instrument, *args)

    now = timezone.now()
    partitions.prepare_load("signals_systemlog", now - timedelta(hours=1), now + timedelta(hours=1))
    monkeypatch.setattr(bars, "load", load_or_fail)
    monkeypatch.setattr(volatility, "_store", store_or_fail)
    jobs = discover()
    with caplog.at_level(logging.ERROR, logger="qvp_site.per_instrument"):
        embedded = run_job(jobs["build-embeddings"])
        risk = run_job(jobs["compute-risk"])

    for run in (embedded, risk):
        assert run.status == JobRun.Status.FAILED
        assert "GAPPED FAILED (RuntimeError: disk on fire)" in run.output
        assert "instruments failed (the others' results are stored)" in run.output
    named = [r for r in caplog.records if getattr(r, "instrument", None) == "GAPPED"]
    assert {r.task for r in named} == {"embeddings", "regimes", "volatility"}
    # The system log keeps them, each naming the instrument and what failed.
    written = [h for h in logging.getLogger().handlers if isinstance(h, DatabaseLogHandler)]
    assert all(handler.flush(timeout=10) for handler in written)
    kept = SystemLog.objects.filter(level="ERROR", context__instrument="GAPPED")
    assert {entry.context["task"] for entry in kept} == {"embeddings", "regimes", "volatility"}
    assert all("disk on fire" in entry.message for entry in kept)

    assert not FeatureEmbedding.objects.filter(instrument__symbol="GAPPED").exists()
    assert not VolatilityRegime.objects.filter(instrument__symbol="GAPPED").exists()
    assert not VolatilityEstimate.objects.filter(instrument__symbol="GAPPED").exists()
    for symbol in DEMO:
        count = FeatureEmbedding.objects.filter(instrument__symbol=symbol).count()
        assert count == _demo_windows()
        assert VolatilityRegime.objects.filter(instrument__symbol=symbol).exists()
        assert VolatilityEstimate.objects.filter(instrument__symbol=symbol).exists()
    assert FeatureEmbedding.objects.filter(instrument__symbol="MINUTESONLY").exists()
    # A caller that keeps no record (the demo's seed) gets the error itself.
    with pytest.raises(RuntimeError, match="disk on fire"):
        embeddings.build([Instrument.objects.get(id=broken)])


def test_the_commands_that_walk_instruments_name_what_they_skip(demo_and_shapes):
    out = StringIO()
    call_command("build_patterns", "--no-progress", stdout=out, stderr=StringIO())
    assert "patterns: NOBARS skipped (no minute bars)" in out.getvalue()
    assert "patterns: DAILYONLY skipped (no minute bars)" in out.getvalue()
    out = StringIO()
    call_command("detect_anomalies", "--hours", "72", stdout=out)
    text = out.getvalue()
    assert "anomalies: DAILYONLY skipped (no minute bars)" in text
    assert "anomalies: ONEDAY skipped (no minute bars)" in text
    assert "MINUTESONLY:" in text
    assert "ONEMINUTE:" in text
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM risk_marketanomaly")
        assert cursor.fetchone()[0] > 0
