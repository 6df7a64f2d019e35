"""Chart data as the dashboard's script draws it (``static/dashboard/charts.js``).

A chart is a dict of series, each with a type the charting library knows (candlestick, line,
histogram, area), a name, its points in time order and the pane it is drawn in, and optional
horizontal lines (a limit). Times are UNIX seconds: the library's own unit, unambiguous in
any browser's time zone. The template passes the dict through ``json_script`` (data, never
script, so the content security policy stays strict).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal

from qvp_site.display import price_places

UP = "#1a7f5a"
DOWN = "#c0392b"
PALETTE = ("#2962ff", "#e67e22", "#8e44ad", "#16a085", "#c0392b", "#7f8c8d", "#d4ac0d")


def epoch(ts: datetime) -> int:
    return int(ts.timestamp())


def chart(*series: dict, intraday: bool = False) -> dict:
    """A chart of ``series``; ``points`` counts their points (0: nothing to draw)."""
    return {
        "series": list(series),
        "intraday": intraday,
        "points": sum(len(s["data"]) for s in series),
    }


def line(
    name: str,
    points: Iterable[tuple[datetime, float | None]],
    *,
    color: str | None = None,
    pane: int = 0,
    limits: Iterable[tuple[str, float]] = (),
) -> dict:
    """A line of (time, value) points, with horizontal ``limits`` (title, level) drawn on it."""
    return {
        "type": "line",
        "name": name,
        "pane": pane,
        "options": {"color": color or PALETTE[0], "lineWidth": 2},
        "data": [{"time": epoch(ts), "value": float(v)} for ts, v in points if v is not None],
        "lines": [{"title": title, "price": float(level)} for title, level in limits],
    }


def curves(rows: Iterable[tuple[str, datetime, float | Decimal]]) -> dict[str, list]:
    """(name, time, value) rows, ordered by name then time, as each name's points."""
    found: dict[str, list] = defaultdict(list)
    for name, ts, value in rows:
        found[name].append((ts, value))
    return found


def lines(named_points: dict[str, list[tuple[datetime, float]]], pane: int = 0) -> list[dict]:
    """One line per name, in the palette's colours."""
    return [
        line(name, points, color=PALETTE[i % len(PALETTE)], pane=pane)
        for i, (name, points) in enumerate(named_points.items())
    ]


def candles(rows: list[dict], name: str, tick_size: Decimal | None = None) -> list[dict]:
    """OHLC candles and a volume histogram below them, from bucket or bar rows (dicts with
    bucket, open, high, low, close, volume); buckets without bars are left out. The price
    scale moves by ``tick_size`` and shows its decimals (the library's default is 0.01)."""
    rows = [r for r in rows if r["open"] is not None]
    ohlc = [
        {
            "time": epoch(r["bucket"]),
            "open": float(r["open"]),
            "high": float(r["high"]),
            "low": float(r["low"]),
            "close": float(r["close"]),
        }
        for r in rows
    ]
    volume = [
        {
            "time": epoch(r["bucket"]),
            "value": float(r["volume"] or 0),
            "color": UP if r["close"] >= r["open"] else DOWN,
        }
        for r in rows
    ]
    return [
        {
            "type": "candlestick",
            "name": name,
            "pane": 0,
            "options": _price_format(tick_size),
            "data": ohlc,
            "lines": [],
        },
        {
            "type": "histogram",
            "name": "volume",
            "pane": 1,
            "options": {"priceFormat": {"type": "volume"}},
            "data": volume,
            "lines": [],
        },
    ]


def _price_format(tick_size: Decimal | None) -> dict:
    """The series' price format on the instrument's tick grid; the library's without one."""
    places = price_places(tick_size)
    if places is None or tick_size is None:
        return {}
    return {"priceFormat": {"type": "price", "precision": places, "minMove": float(tick_size)}}
