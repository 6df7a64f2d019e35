"""Number formats the dashboard's tables share."""

from __future__ import annotations

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
