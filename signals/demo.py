"""Demo agents, their signals, news and social sentiment, computed from seed_demo's bars.

Two rule-based agents read each symbol's daily closes, vectorised with numpy, and speak at
the midnight after each close (when the close is known, so no signal sees its own future):

* ``momentum_agent``: the 20-day log return in units of its 20-day volatility, z; strength
  tanh(z), confidence 1 - exp(-|z|), over 5 days;
* ``mean_reversion_agent``: the close's distance from its 10-day mean in 10-day standard
  deviations, z; strength -tanh(z / 2), confidence 1 - exp(-|z| / 2), over 2 days.

News follows the bars: a headline on each day that moved more than two standard deviations,
its sentiment the move's, and a daily social sentiment per symbol that echoes the last five
days' return with noise. The agents' performance is then measured and each of the last 60
sessions fused, so the API, the admin and the dashboard have something to show. Everything
is written by one INSERT per table from arrays.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from django.db import connection, transaction
from numpy.lib.stride_tricks import sliding_window_view

from marketdata import demo as bars_demo
from marketdata.models import Instrument
from qvp_site.db import partitions
from signals import fusion, performance
from signals.models import Agent, AgentKind

AGENTS = {
    "momentum_agent": (AgentKind.MOMENTUM, "20-day return in units of 20-day volatility"),
    "mean_reversion_agent": (AgentKind.MEAN_REVERSION, "distance from the 10-day mean"),
}
DAY = np.timedelta64(1, "D")
FUSED_SESSIONS = 60

SIGNALS_SQL = """
INSERT INTO signals_signal
    (agent_id, instrument_id, ts, direction, strength, confidence, horizon, explanation)
SELECT a, i, ts, sign(s)::smallint, s, c, h * interval '1 day',
       jsonb_build_object('features', jsonb_build_object(%s, f1, %s, f2), 'reason',
                          format(%s, round(f1::numeric, 4), round(z::numeric, 2)))
FROM unnest(%s::bigint[], %s::bigint[], %s::timestamptz[], %s::float8[], %s::float8[],
            %s::int[], %s::float8[], %s::float8[], %s::float8[]) AS t(a, i, ts, s, c, h, f1, f2, z)
"""

NEWS_SQL = """
INSERT INTO signals_newsarticle (ts, source, headline, body, url, symbols, sentiment)
SELECT ts, 'QVP demo wire',
       format('%%s %%s %%s%%%% on the day', sym, CASE WHEN r > 0 THEN 'jumps' ELSE 'falls' END,
              to_char(abs(r) * 100, 'FM990.0')),
       format('%%s closed at %%s, a move of %%s standard deviations.', sym,
              round(c::numeric, 4), round(z::numeric, 1)),
       '', ARRAY[sym], s
FROM unnest(%s::timestamptz[], %s::text[], %s::float8[], %s::float8[], %s::float8[],
            %s::float8[]) AS t(ts, sym, r, c, z, s)
"""

SENTIMENT_SQL = """
INSERT INTO signals_socialsentiment
    (instrument_id, ts, platform, sentiment, mentions, bullish, bearish)
SELECT i, ts, 'demo-social', s, m, b, n
FROM unnest(%s::bigint[], %s::timestamptz[], %s::float8[], %s::int[], %s::int[], %s::int[])
    AS t(i, ts, s, m, b, n)
"""


def seed(batches: dict, seed: int, write: Callable[[str], None]) -> None:
    """Add the demo agents and what they emit over the bars of ``batches`` (seed_demo's
    {spec: (minute bars, daily bars)}); nothing when a demo agent exists already."""
    if Agent.objects.filter(name__in=AGENTS).exists():
        write("Demo agents exist already: no demo signals added.")
        return
    started = time.monotonic()
    symbols = {spec.symbol: daily for spec, (_minute, daily) in batches.items() if len(daily)}
    if not symbols:
        return
    ids = dict(Instrument.objects.filter(symbol__in=symbols).values_list("symbol", "id"))
    first = min(daily.ts[0] for daily in symbols.values())
    last = max(daily.ts[-1] for daily in symbols.values()) + 2 * DAY
    for table in ("signals_signal", "signals_newsarticle", "signals_socialsentiment"):
        partitions.prepare_load(table, _moment(first), _moment(last))
    rng = bars_demo.rng_for(seed, "signals-demo")
    with transaction.atomic():
        agents = {
            name: Agent.objects.create(name=name, kind=kind, version="demo-1", description=text)
            for name, (kind, text) in AGENTS.items()
        }
        counts = [
            _insert_signals(agents["momentum_agent"].id, ids, symbols, momentum),
            _insert_signals(agents["mean_reversion_agent"].id, ids, symbols, mean_reversion),
        ]
        news = _insert_news(symbols)
        social = _insert_sentiment(ids, symbols, rng)
    end = _moment(last)
    measured = performance.refresh([30, 90], list(AGENTS), end)
    # Fused after each of the last sessions, not only the latest: the dashboard draws how the
    # target weights moved.
    sessions = max((daily.ts for daily in symbols.values()), key=len)[-FUSED_SESSIONS:]
    fused = sum(len(fusion.fuse(_moment(day + DAY)).fused) for day in sessions)
    write(
        f"Signals demo: {len(agents)} agents, {sum(counts)} signals, {news} news articles,"
        f" {social} social sentiment rows, {len(measured)} performance windows,"
        f" {fused} fused signals in {time.monotonic() - started:.1f} s."
    )


def _moment(day: np.datetime64) -> datetime:
    return day.astype("datetime64[us]").astype(datetime).replace(tzinfo=UTC)


def _rolling(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation over the ``window`` values ending at each index (from
    index window - 1 on)."""
    windows = sliding_window_view(values, window)
    return windows.mean(axis=1), windows.std(axis=1, ddof=1)


def momentum(closes: np.ndarray) -> dict[str, np.ndarray] | None:
    """Per day from the 21st: strength, confidence, horizon (days) and the features."""
    lookback = 20
    if len(closes) <= lookback + 1:
        return None
    returns = np.diff(np.log(closes))
    _mean, vol = _rolling(returns, lookback)  # vol[k]: returns k .. k+19, i.e. up to day k+20
    change = np.log(closes[lookback:] / closes[:-lookback])  # day lookback .. n-1
    z = change / (vol * np.sqrt(lookback))
    return {
        "index": np.arange(lookback, len(closes)),
        "strength": np.tanh(z),
        "confidence": 1 - np.exp(-np.abs(z)),
        "horizon": np.full(len(z), 5),
        "feature_1": np.expm1(change),
        "feature_2": vol,
        "z": z,
        "names": ("return_20d", "volatility_20d", "20-day return %s is %s sd from flat"),
    }


def mean_reversion(closes: np.ndarray) -> dict[str, np.ndarray] | None:
    window = 10
    if len(closes) < window:
        return None
    mean, sd = _rolling(closes, window)
    z = (closes[window - 1 :] - mean) / sd
    return {
        "index": np.arange(window - 1, len(closes)),
        "strength": -np.tanh(z / 2),
        "confidence": 1 - np.exp(-np.abs(z) / 2),
        "horizon": np.full(len(z), 2),
        "feature_1": closes[window - 1 :] / mean - 1,
        "feature_2": sd / mean,
        "z": z,
        "names": (
            "distance_from_mean_10d",
            "dispersion_10d",
            "close %s from its 10-day mean, z %s",
        ),
    }


def _insert_signals(agent_id: int, ids: dict, symbols: dict, rule) -> int:
    columns: dict[str, list] = {k: [] for k in ("a", "i", "ts", "s", "c", "h", "f1", "f2", "z")}
    names = None
    for symbol, daily in symbols.items():
        found = rule(daily.close)
        if found is None:
            continue
        ok = np.isfinite(found["z"])  # a flat stretch has no volatility to measure against
        names = found["names"]
        count = int(ok.sum())
        columns["a"] += [agent_id] * count
        columns["i"] += [ids[symbol]] * count
        # Spoken at the midnight after the close it reads.
        columns["ts"] += _iso(daily.ts[found["index"][ok]] + DAY)
        columns["s"] += found["strength"][ok].tolist()
        columns["c"] += found["confidence"][ok].tolist()
        columns["h"] += found["horizon"][ok].tolist()
        columns["f1"] += found["feature_1"][ok].tolist()
        columns["f2"] += found["feature_2"][ok].tolist()
        columns["z"] += found["z"][ok].tolist()
    if names is None:
        return 0
    values = [columns[k] for k in ("a", "i", "ts", "s", "c", "h", "f1", "f2", "z")]
    with connection.cursor() as cursor:
        cursor.execute(SIGNALS_SQL, [*names, *values])
        return cursor.rowcount


def _iso(moments: np.ndarray) -> list[str]:
    """Times as ISO 8601 text in UTC, all at once (PostgreSQL casts them)."""
    return np.datetime_as_string(moments.astype("datetime64[us]"), timezone="UTC").tolist()


def _day_moves(daily) -> tuple[np.ndarray, np.ndarray]:
    """Each day's return (from the day before) and its z against the 20 days before it."""
    returns = np.diff(daily.close) / daily.close[:-1]
    _mean, sd = _rolling(returns, 20)
    z = np.full(len(returns), np.nan)
    z[20:] = returns[20:] / sd[:-1]
    return returns, z


def _insert_news(symbols: dict) -> int:
    ts, syms, moves, closes, zs = [], [], [], [], []
    for symbol, daily in symbols.items():
        if len(daily) < 22:
            continue
        returns, z = _day_moves(daily)
        big = np.flatnonzero(np.abs(np.nan_to_num(z)) > 2)
        # Written after the close of the day that moved (index k + 1 of the bars).
        ts += _iso(daily.ts[big + 1] + DAY - np.timedelta64(2, "h"))
        syms += [symbol] * len(big)
        moves += returns[big].tolist()
        closes += daily.close[big + 1].tolist()
        zs += z[big].tolist()
    if not ts:
        return 0
    sentiment = np.clip(np.tanh(np.asarray(zs) / 3), -1, 1).tolist()
    with connection.cursor() as cursor:
        cursor.execute(NEWS_SQL, [ts, syms, moves, closes, zs, sentiment])
        return cursor.rowcount


def _insert_sentiment(ids: dict, symbols: dict, rng: np.random.Generator) -> int:
    columns: dict[str, list] = {k: [] for k in ("i", "ts", "s", "m", "b", "n")}
    for symbol, daily in symbols.items():
        if len(daily) < 6:
            continue
        week = np.log(daily.close[5:] / daily.close[:-5])
        noise = rng.normal(0.0, 0.3, len(week))
        sentiment = np.clip(np.tanh(week / week.std(ddof=1) / 2 + noise), -1, 1)
        mentions = rng.poisson(200 * (1 + np.abs(sentiment)), len(week)) + 1
        bullish = np.round(mentions * (1 + sentiment) / 2 * 0.8).astype(int)
        bearish = np.round(mentions * (1 - sentiment) / 2 * 0.8).astype(int)
        columns["i"] += [ids[symbol]] * len(week)
        columns["ts"] += _iso(daily.ts[5:] + DAY)
        columns["s"] += sentiment.tolist()
        columns["m"] += mentions.tolist()
        columns["b"] += bullish.tolist()
        columns["n"] += bearish.tolist()
    if not columns["i"]:
        return 0
    with connection.cursor() as cursor:
        cursor.execute(SENTIMENT_SQL, [columns[k] for k in ("i", "ts", "s", "m", "b", "n")])
        return cursor.rowcount
