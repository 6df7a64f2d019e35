"""Request parsers that refuse text PostgreSQL cannot store, before any lookup sees it.

PostgreSQL text (and jsonb) holds no NUL character, and UTF-8 has no lone surrogate, which
JSON's \\u escapes can still express: either would reach the database as an error (a 500) in
any lookup that no serializer validator guards, such as a symbol looked up by a related
field. Here they are a 400 naming the field, in the shape of the serializers' refusals
(``{field: [reason]}``, and ``{index: {field: [reason]}}`` for an item of a batch).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ValidationError

REASON = "holds a NUL character or a lone surrogate, which cannot be stored"
Path = tuple[str | int, ...]


def unstorable(data, path: Path = ()) -> Iterator[tuple[Path, bool]]:
    """Where ``data`` holds a string PostgreSQL cannot store: (path, whether it is a key)."""
    if isinstance(data, str):
        if not storable(data):
            yield path, False
    elif isinstance(data, dict | QueryDict):
        items = data.lists() if isinstance(data, QueryDict) else data.items()
        for key, value in items:
            if isinstance(key, str) and not storable(key):
                yield path, True
            else:
                yield from unstorable(value, (*path, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from unstorable(value, (*path, index))


def storable(text: str) -> bool:
    """Whether PostgreSQL can store ``text``: no NUL, no lone surrogate."""
    if "\x00" in text:
        return False
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def refusal(path: Path, is_key: bool) -> dict:
    """The 400's body: the field (or batch item and field), the rest of the path in words."""
    head = 2 if path and isinstance(path[0], int) else 1
    named, rest = [str(p) for p in path[:head]], path[head:]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in rest).lstrip(".")
    reason = f"{where}: {REASON}" if where else REASON
    if is_key:
        reason = f"a key in {where or 'it'} {REASON}"
    body: Any = [reason]  # the reason, nested in a dict under each name of its path
    for name in reversed(named or ["non_field_errors"]):
        body = {name: body}
    return body


def _checked(data):
    found = next(unstorable(data), None)
    if found is not None:
        raise ValidationError(refusal(*found))
    return data


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return _checked(super().parse(stream, media_type, parser_context))


class FormParser(parsers.FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        return _checked(super().parse(stream, media_type, parser_context))


class MultiPartParser(parsers.MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        result = super().parse(stream, media_type, parser_context)
        _checked(result.data)
        return result
