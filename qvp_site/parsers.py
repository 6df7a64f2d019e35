"""Request parsers that refuse text PostgreSQL cannot store, before any lookup sees it.

PostgreSQL text (and jsonb) holds no NUL character, and UTF-8 has no lone surrogate, which
JSON's \\u escapes can still express: either would reach the database as an error (a 500) in
any lookup that no serializer validator guards, such as a symbol looked up by a related
field. Here they are a 400 that says where.
"""

from __future__ import annotations

from collections.abc import Iterator

from django.http import QueryDict
from rest_framework import parsers
from rest_framework.exceptions import ParseError


def unstorable(data, path: str = "") -> Iterator[str]:
    """The paths of the strings (keys included) in ``data`` that PostgreSQL cannot store."""
    if isinstance(data, str):
        if "\x00" in data or not _utf8(data):
            yield path or "(the body)"
    elif isinstance(data, dict | QueryDict):
        items = data.lists() if isinstance(data, QueryDict) else data.items()
        for key, value in items:
            where = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and ("\x00" in key or not _utf8(key)):
                yield f"{path}[key {key!r}]" if path else f"key {key!r}"
            else:
                yield from unstorable(value, where)
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from unstorable(value, f"{path}[{index}]")


def _utf8(text: str) -> bool:
    if text.isascii():
        return True
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _checked(data):
    found = next(unstorable(data), None)
    if found is not None:
        raise ParseError(f"{found}: a NUL character or a lone surrogate, which cannot be stored")
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
