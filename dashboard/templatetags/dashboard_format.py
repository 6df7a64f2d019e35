"""Number formats the dashboard's tables share, and ``pairs``: a mapping's items for a loop.

A template's ``value.items`` looks the key "items" up before the method, so JSON stored with
a key named "items" (or "keys", "values") would hand its value to the loop: the page fails for
everyone while the record is shown. Loops over stored JSON go through ``pairs``.
"""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


@register.filter
def percent(value: float | None, digits: int = 2) -> str:
    """A fraction as a signed percentage (0.0123 -> "+1.23 %"); a dash for no value."""
    if value is None:
        return "\u2013"  # an en dash, as the tables show for no value
    return f"{value * 100:+.{digits}f} %"


@register.filter
def brief(value: object) -> str:
    """A number in four significant digits, anything else as it is."""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


@register.filter
def pairs(value: object) -> list[tuple[Any, Any]]:
    """The (key, value) pairs of a mapping, by the method whatever its keys; none for
    anything else (a list, a number, text)."""
    if isinstance(value, dict):
        return list(dict.items(value))
    return []
