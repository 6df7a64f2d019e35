"""The bulk formats in the OpenAPI schema: a list's (or another of the view's
``bulk_actions``') 200 answer in each format is a file
(``type: string, format: binary``), never the JSON page's schema; other operations and
refusals offer JSON only, as they answer.

Each such operation also has one operation per format at its route's suffix
(``GET bars.arrow``), answering that format only: a generated client takes the first media
type it knows of an answer (JSON, for ``GET bars/``), so only there does it get the bytes.
"""

from __future__ import annotations

import copy
from typing import Any

from qvp_site.api.bulk.formats import FORMATS
from qvp_site.schema import SiteAutoSchema

BULK_MEDIA_TYPES = {f.media_type for f in FORMATS.values()}
FILE = {"schema": {"type": "string", "format": "binary"}}


class BulkAutoSchema(SiteAutoSchema):
    def _get_format_parameters(self) -> list[dict[str, Any]]:
        """``?format=`` on the list (and the view's other ``bulk_actions``) only: elsewhere a
        bulk format is refused (406)."""
        if not self._streams():
            return []
        parameters: list[dict[str, Any]] = super()._get_format_parameters()
        for parameter in parameters:
            # Only json here: a generated client parses this operation's answer as JSON, so
            # an enum offering arrow would make it fail on the bytes. The bulk formats are
            # the operations at the route's suffix (suffix_operations), as documented.
            parameter["schema"]["enum"] = ["json"]
            parameter["description"] = (
                "json (pages). Every row of the range from start to end (both required, at"
                " most QVP_API_BULK_MAX_DAYS apart) as an Arrow IPC stream, a Parquet file or"
                " CSV is ?format=arrow|parquet|csv, Accept, or the operations at this route's"
                " suffix (.arrow, .parquet, .csv)"
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


RANGE = ("start", "end")  # a bulk read needs both: the range it streams
# A stream has no pages, and no ?format= beside its suffix.
NOT_STREAMED = {"format", "cursor", "page", "page_size"}


def suffix_operations(
    result: dict[str, Any], generator: object, request: object, public: bool
) -> dict[str, Any]:
    """drf-spectacular post-processing hook: for each operation that streams the bulk
    formats, the same read at the route's suffix for each format (``bars.arrow``), with
    that format's answer only, ``start`` and ``end`` required, and no pages or
    ``?format=``."""
    paths = result.get("paths", {})
    for path, item in list(paths.items()):
        operation = item.get("get")
        content = operation and operation["responses"].get("200", {}).get("content", {})
        for fmt in FORMATS.values():
            if content and fmt.media_type in content:
                paths[f"{path.rstrip('/')}.{fmt.name}"] = {
                    "get": _in_format(operation, path, fmt.name, fmt.media_type)
                }
    return result


def _in_format(operation: dict[str, Any], path: str, name: str, media_type: str) -> dict[str, Any]:
    suffixed = copy.deepcopy(operation)
    suffixed["operationId"] = f"{operation['operationId']}_{name}"
    suffixed["description"] = (
        f"Every row of `GET {path}` from start to end, oldest first, as {media_type}: the"
        f" same filters, permissions and columns. {operation.get('description', '')}"
    ).strip()
    parameters = [p for p in suffixed.get("parameters", []) if p["name"] not in NOT_STREAMED]
    for parameter in parameters:
        if parameter.get("in") == "query" and parameter["name"] in RANGE:
            parameter["required"] = True
    suffixed["parameters"] = parameters
    answer = suffixed["responses"]["200"]
    answer["content"] = {media_type: dict(FILE)}
    return suffixed
