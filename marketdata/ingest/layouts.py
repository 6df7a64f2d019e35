"""Which file column holds what, recognised from the header (and a few sample rows).

Known layouts need no options: Yahoo daily (``Date,Open,High,Low,Close,Adj Close,Volume`` in
any order), ``timestamp,open,high,low,close[,volume]``, backtrader's minute files (7 names over
8 fields: the date and the time are two columns under one ``Date`` name), backtrader's
ticksample (one tick per row: price = close, size = volume) and Tardis trades (epoch
microseconds, the trade id as the sequence). ``--columns role=Header,...`` maps anything else.
"""

from __future__ import annotations

import re

from marketdata.ingest.targets import ROLE_TYPES, Target
from qvp_site.loading.layout import Layout, LayoutError, StageColumn, normalize

# For each role, the header names that mean it, best first (compared lower-case, letters and
# digits only: "Adj Close" is "adjclose"). The first unused column matching wins.
SYNONYMS = {
    "ts": ("timestamp", "datetime", "ts", "time", "date"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c"),
    "volume": ("volume", "vol", "v"),
    "vwap": ("vwap",),
    "trade_count": ("tradecount", "trades", "numtrades", "numberoftrades"),
    # A tick file written as one-price bars (backtrader's ticksample) gives close and volume.
    "price": ("price", "last", "lastprice", "tradeprice", "close"),
    "size": ("size", "amount", "qty", "quantity", "lastsize", "volume"),
    "bid": ("bid", "bidprice", "bestbid"),
    "ask": ("ask", "askprice", "bestask", "offer"),
    "bid_size": ("bidsize", "bidqty", "bidamount", "bidvolume"),
    "ask_size": ("asksize", "askqty", "askamount", "askvolume"),
    "side": ("side", "aggressor", "aggressorside", "takerside"),
    "sequence": ("id", "tradeid", "sequence", "seq"),
}
ROLE_NAMES = frozenset(SYNONYMS) | {"date", "time"}

_EPOCH = re.compile(r"^\s*-?\d+(\.\d+)?\s*$")
_YYYYMMDD = re.compile(r"^\s*(19|20)\d{6}\s*$")  # 20240513 is a date, not epoch seconds
# The name given to the nameless time column of a split date/time (no real header has it).
SPLIT_TIME = "\x00time"
_TIME_OF_DAY = re.compile(r"^\s*\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?\s*$")


def parse_columns_option(value: str | None) -> dict[str, str]:
    """``"ts=Date,close=Adj Close"`` -> {"ts": "Date", "close": "Adj Close"}."""
    if not value:
        return {}
    mapping = {}
    for part in value.split(","):
        role, sep, header = part.partition("=")
        role = role.strip().lower()
        if not sep or not header.strip():
            raise LayoutError(f"--columns: {part!r} is not role=Header")
        if role not in ROLE_NAMES:
            known = ", ".join(sorted(ROLE_NAMES))
            raise LayoutError(f"--columns: unknown role {role!r} (roles: {known})")
        mapping[role] = header.strip()
    return mapping


def detect(
    header: list[str],
    sample: list[list[str]],
    target: Target,
    columns: dict[str, str] | None = None,
) -> Layout:
    """The layout of a file with ``header`` whose first data rows are ``sample``."""
    names = [h.strip() for h in header]
    names = _split_date_time(names, sample)
    positions = _explicit(names, columns or {})
    _match_synonyms(names, positions, target)
    _check_found(names, positions, target)
    ts_kind = _ts_kind(positions, sample)
    return _build(names, positions, ts_kind)


def _split_date_time(names: list[str], sample: list[list[str]]) -> list[str]:
    """backtrader writes ``Date,Open,...`` over rows of ``date,time,open,...``: one name more
    is missing than the rows have. Give the time column a name so the rest line up."""
    if not sample or any(len(row) != len(names) + 1 for row in sample):
        return names
    normalized = [normalize(n) for n in names]
    if "time" in normalized:
        return names
    for i, name in enumerate(normalized):
        if name in ("date", "datetime", "timestamp") and _TIME_OF_DAY.match(sample[0][i + 1]):
            return [*names[:i], names[i], SPLIT_TIME, *names[i + 1 :]]
    return names


def _explicit(names: list[str], columns: dict[str, str]) -> dict[str, int]:
    positions = {}
    for role, header in columns.items():
        matches = [i for i, n in enumerate(names) if n.lower() == header.lower()]
        matches = matches or [i for i, n in enumerate(names) if normalize(n) == normalize(header)]
        if not matches:
            raise LayoutError(
                f"--columns: {role}={header}: no column {header!r} in the header ({_listed(names)})"
            )
        positions[role] = matches[0]
    return positions


def _match_synonyms(names: list[str], positions: dict[str, int], target: Target) -> None:
    normalized = [normalize(n) for n in names]
    if SPLIT_TIME in names:
        i = names.index(SPLIT_TIME)
        positions.setdefault("date", i - 1)
        positions.setdefault("time", i)
    has_timestamp = any(n in ("timestamp", "datetime", "ts") for n in normalized)
    if "ts" not in positions and not has_timestamp:
        for role in ("date", "time"):
            if role not in positions and role in normalized:
                positions[role] = normalized.index(role)
        if not ({"date", "time"} <= positions.keys()):
            positions.pop("date", None)
            positions.pop("time", None)
    roles = [] if {"date", "time"} <= positions.keys() else ["ts"]
    for role in [*roles, *target.roles]:
        if role in positions:
            continue
        used = set(positions.values())
        for synonym in SYNONYMS[role]:
            found = [i for i, n in enumerate(normalized) if n == synonym and i not in used]
            if found:
                positions[role] = found[0]
                break


def _check_found(names: list[str], positions: dict[str, int], target: Target) -> None:
    missing = [r for r in target.required if r not in positions]
    if "ts" not in positions and not ({"date", "time"} <= positions.keys()):
        missing.insert(0, "ts")
    if target.needs_one_of and not any(r in positions for r in target.needs_one_of):
        missing.append(" or ".join(target.needs_one_of))
    if missing:
        raise LayoutError(
            f"cannot tell where {', '.join(missing)} is in the header"
            f" ({_listed(names)}); name the columns with"
            " --columns, e.g. --columns ts=Date,close=Close"
        )


def _listed(names: list[str]) -> str:
    return ", ".join(n for n in names if n != SPLIT_TIME)


def _ts_kind(positions: dict[str, int], sample: list[list[str]]) -> str:
    if "ts" not in positions:
        return "split"
    first = sample[0][positions["ts"]] if sample and len(sample[0]) > positions["ts"] else ""
    if _EPOCH.match(first) and not _YYYYMMDD.match(first):
        return "epoch"
    return "text"


def _build(names: list[str], positions: dict[str, int], ts_kind: str) -> Layout:
    by_position = {i: role for role, i in positions.items()}
    columns, roles = [], {}
    for i, header in enumerate(names):
        role = by_position.get(i)
        if role is None:
            columns.append(StageColumn(f"unused_{i}", "text", header))
            continue
        name, type_ = _stage_column(role, ts_kind)
        columns.append(StageColumn(name, type_, "" if header == SPLIT_TIME else header))
        roles[role] = name
    return Layout(columns=tuple(columns), roles=roles, ts_kind=ts_kind)


def _stage_column(role: str, ts_kind: str) -> tuple[str, str]:
    if role == "ts":
        if ts_kind == "epoch":
            return "ts_epoch", "numeric"
        return "ts", "timestamp with time zone"
    if role == "date":
        return "ts_date", "date"
    if role == "time":
        return "ts_time", "time"
    return role, ROLE_TYPES[role]
