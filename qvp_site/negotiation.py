"""The API's content negotiation (outside qvp_site.api, which DRF's views import: its setting
is read while they load): DRF's, with the client's preferences (``q``) honoured first.

DRF orders the ``Accept`` header's media types by how specific they are and ignores their
``q``: ``Accept: application/vnd.apache.arrow.stream, application/json;q=0.5`` would get JSON,
the first renderer. Here the types are tried by their ``q``, highest first (RFC 9110, 12.5.1;
``q=0`` is "not acceptable"), and among types of one ``q`` as DRF does.

A ``?format=`` no renderer of the view offers is a 406 naming the parameter and what is
offered, not DRF's 404. A route's suffix (``bars.csv``) no renderer offers stays a 404: that
path names nothing (``accounts/0.5/`` is no account). The routes keep the suffix on the
request, not in the view's arguments (``FORMAT_SUFFIX``, qvp_site/api_urls.py).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from django.http import Http404
from rest_framework import exceptions
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.renderers import BaseRenderer
from rest_framework.request import Request
from rest_framework.utils.mediatypes import _MediaType

FORMAT_SUFFIX = "qvp_format_suffix"  # the request's attribute holding a route's suffix
# Where DRF (3.18) keeps a request's parsed Accept list, which its negotiation reads: set to
# one group of preferences at a time.
CACHE = "_parsed_accept_list"


def quality(media_type: _MediaType) -> float:
    """A media type's ``q`` (1 when absent; 0, never acceptable, when it is not a number)."""
    raw = media_type.params.get("q", "1")
    try:
        value = float(raw)
    except ValueError:
        return 0.0
    return value if 0 <= value <= 1 else 0.0


def by_quality(media_types: Sequence[_MediaType]) -> list[list[_MediaType]]:
    """The acceptable media types in groups of one ``q``, highest first."""
    levels = sorted({quality(m) for m in media_types if quality(m) > 0}, reverse=True)
    return [[m for m in media_types if quality(m) == level] for level in levels]


class QualityNegotiation(DefaultContentNegotiation):
    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> Any:
        renderers = list(renderers)
        format_suffix = format_suffix or getattr(request, FORMAT_SUFFIX, None)
        if format_suffix and not any(r.format == format_suffix for r in renderers):
            raise Http404  # a path naming nothing, as DRF answers it
        accepted = [_MediaType(token) for token in self.get_accept_list(request)]
        groups = by_quality(accepted)
        if len(groups) <= 1:  # one preference: DRF's order decides
            return super().select_renderer(request, renderers, format_suffix)
        try:
            for group in groups:
                setattr(request, CACHE, group)  # what DRF's negotiation reads, this round
                try:
                    return super().select_renderer(request, renderers, format_suffix)
                except exceptions.NotAcceptable:
                    continue
        finally:
            setattr(request, CACHE, accepted)
        raise exceptions.NotAcceptable(available_renderers=renderers)

    def filter_renderers(
        self, renderers: Iterable[BaseRenderer], format: str
    ) -> list[BaseRenderer]:
        offered = [r for r in renderers if r.format == format]
        if not offered:
            names = ", ".join(sorted({str(r.format) for r in renderers}))
            raise exceptions.NotAcceptable(
                f"format={format!r} is not offered here; offered: {names}"
            )
        return offered
