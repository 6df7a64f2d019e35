"""Python values as the API's JSON: decimals and times as text, durations as ISO 8601,
numpy and pandas scalars as plain numbers, missing values (None, NaN, NaT) as null."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from qvp_client.ranges import as_utc, iso


def duration(value: timedelta) -> str:
    """ISO 8601, as the API's durations read: ``P1DT2H``, ``PT0.5S``."""
    if value < timedelta(0):
        return "-" + duration(-value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    text = f"P{value.days}DT{hours}H{minutes}M{seconds}"
    if value.microseconds:
        text += f".{value.microseconds:06d}"
    return text + "S"


def plain(value: Any) -> Any:
    """``value`` as JSON can carry it."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if isinstance(value, Decimal):
        return None if value.is_nan() else str(value)
    if isinstance(value, datetime):  # pandas' Timestamp too; NaT is missing
        return None if _is_missing(value) else iso(as_utc(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):  # pandas' Timedelta too
        return None if _is_missing(value) else duration(value)
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    item = getattr(value, "item", None)  # a numpy scalar
    if callable(item):
        return plain(item())
    tolist = getattr(value, "tolist", None)  # a numpy array
    if callable(tolist):
        return plain(tolist())
    if _is_missing(value):
        return None
    raise TypeError(f"cannot send a {type(value).__name__} as JSON: {value!r}")


def _is_missing(value: Any) -> bool:
    if type(value).__name__ == "NAType":  # pandas.NA, whose comparisons are NA again
        return True
    # NaT compares unequal to itself, as NaN does.
    try:
        return bool(value != value)
    except (TypeError, ValueError):
        return False


def records(items: Any) -> list[dict[str, Any]]:
    """A list of objects from a list of mappings, or from a DataFrame (pandas or Polars),
    each value made plain."""
    to_dicts = getattr(items, "to_dicts", None)  # Polars
    if callable(to_dicts):
        items = to_dicts()
    elif callable(getattr(items, "to_dict", None)) and hasattr(items, "columns"):  # pandas
        items = items.to_dict(orient="records")
    elif isinstance(items, Mapping):
        items = [items]
    if not isinstance(items, Iterable):
        raise TypeError("give a list of mappings or a DataFrame")
    found: list[dict[str, Any]] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            raise TypeError(f"item {index}: a mapping of fields, not {type(item).__name__}")
        found.append({str(key): plain(value) for key, value in item.items()})
    return found
