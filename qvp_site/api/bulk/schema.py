"""The bulk formats in the OpenAPI schema: a list's (or another of the view's
``bulk_actions``') 200 answer in each format is a file
(``type: string, format: binary``), never the JSON page's schema; other operations and
refusals offer JSON only, as they answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from qvp_site.api.bulk.formats import FORMATS

BULK_MEDIA_TYPES = {f.media_type for f in FORMATS.values()}
FILE = {"schema": {"type": "string", "format": "binary"}}


class BulkAutoSchema(AutoSchema):
    def _get_format_parameters(self) -> list[dict[str, Any]]:
        """``?format=`` on the list (and the view's other ``bulk_actions``) only: elsewhere a
        bulk format is refused (406)."""
        if not self._streams():
            return []
        parameters: list[dict[str, Any]] = super()._get_format_parameters()
        for parameter in parameters:
            parameter["description"] = (
                "json (pages), or every row of the range from start to end (both required,"
                " at most QVP_API_BULK_MAX_DAYS apart) as an Arrow IPC stream, a Parquet"
                " file or CSV; also chosen by Accept"
            )
        return parameters

    def _streams(self) -> bool:
        actions = getattr(self.view, "bulk_actions", frozenset({"list"}))
        return getattr(self.view, "action", None) in actions

    def _get_response_for_code(
        self,
        serializer: Any,
        status_code: str,
        media_types: Any = None,
        direction: Any = "response",
    ) -> dict[str, Any]:
        response: dict[str, Any] = super()._get_response_for_code(  # type: ignore[no-untyped-call]
            serializer, status_code, media_types, direction
        )
        content = response.get("content")
        if not content:
            return response
        streams = self._streams() and status_code.startswith("2")
        for media_type in BULK_MEDIA_TYPES & set(content):
            if streams:
                content[media_type] = dict(FILE)
            else:
                del content[media_type]
        return response
