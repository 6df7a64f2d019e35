"""The bulk formats in the OpenAPI schema: a list's 200 answer in each format is a file
(``type: string, format: binary``), never the JSON page's schema; other operations and
refusals offer JSON only, as they answer."""

from __future__ import annotations

from typing import Any

from drf_spectacular.openapi import AutoSchema

from qvp_site.api.bulk.formats import FORMATS

BULK_MEDIA_TYPES = {f.media_type for f in FORMATS.values()}
FILE = {"schema": {"type": "string", "format": "binary"}}


class BulkAutoSchema(AutoSchema):
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
        streams = getattr(self.view, "action", None) == "list" and status_code.startswith("2")
        for media_type in BULK_MEDIA_TYPES & set(content):
            if streams:
                content[media_type] = dict(FILE)
            else:
                del content[media_type]
        return response
