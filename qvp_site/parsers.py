"""Request parsers that refuse text PostgreSQL cannot store, and JSON nested too deep, before
any lookup sees it.

PostgreSQL text (and jsonb) holds no NUL character, and UTF-8 has no lone surrogate, which
JSON's \\u escapes can still express: either would reach the database as an error (a 500) in
any lookup that no serializer validator guards, such as a symbol looked up by a related
field. Here they are a 400 naming the field, in the shape of the serializers' refusals
(``{field: [reason]}``, and ``{index: {field: [reason]}}`` for an item of a batch).

JSON nested deeper than ``MAX_JSON_DEPTH`` arrays and objects is refused with a 400 naming the
depth: Python's decoder raises RecursionError (a 500) near a thousand levels, and every walk
over a parsed document (the check below, a serializer's, the database adapter's) recurses as
well. No record of the site holds more than a few levels. ``loads``, ``JSONField`` (the API's
serializers) and ``JSONFormField`` (the admin's forms) apply the same bound to JSON text read
elsewhere: a query parameter, a form's field.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from typing import Any

from django import forms
from django.conf import settings
from django.http import QueryDict
from rest_framework import parsers, serializers
from rest_framework.exceptions import ParseError, ValidationError

REASON = "holds a NUL character or a lone surrogate, which cannot be stored"
MAX_JSON_DEPTH = 64
TOO_DEEP = f"JSON nested deeper than {MAX_JSON_DEPTH} levels of arrays and objects"
Path = tuple[str | int, ...]


class TooDeep(ValueError):
    """JSON nested deeper than MAX_JSON_DEPTH (a ValueError, as the decoder's own errors)."""

    def __init__(self) -> None:
        super().__init__(TOO_DEEP)


def unstorable(data, path: Path = ()) -> Iterator[tuple[Path, bool]]:
    """Where ``data`` holds a string PostgreSQL cannot store: (path, whether it is a key).
    Raises TooDeep past MAX_JSON_DEPTH levels (the walk's recursion stays bounded)."""
    if isinstance(data, str):
        if not storable(data):
            yield path, False
        return
    if len(path) >= MAX_JSON_DEPTH and isinstance(data, dict | list | tuple):
        raise TooDeep
    if isinstance(data, dict | QueryDict):
        items = data.lists() if isinstance(data, QueryDict) else data.items()
        for key, value in items:
            if isinstance(key, str) and not storable(key):
                yield path, True
            else:
                yield from unstorable(value, (*path, key))
    elif isinstance(data, list | tuple):
        for index, value in enumerate(data):
            yield from unstorable(value, (*path, index))


def loads(text: str | bytes, **options: Any) -> Any:
    """``json.loads`` refusing JSON nested deeper than MAX_JSON_DEPTH with TooDeep, however
    deep (the decoder's RecursionError included)."""
    try:
        data = json.loads(text, **options)
    except RecursionError:
        raise TooDeep from None
    bounded(data)
    return data


def bounded(data: object, depth: int = 1) -> None:
    """Raise TooDeep when ``data`` nests deeper than MAX_JSON_DEPTH arrays and objects."""
    if not isinstance(data, dict | list | tuple):
        return
    if depth > MAX_JSON_DEPTH:
        raise TooDeep
    for value in data.values() if isinstance(data, dict) else data:
        if isinstance(value, dict | list | tuple):  # a call per container, not per value
            bounded(value, depth + 1)


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
    try:
        found = next(unstorable(data), None)
    except TooDeep as error:
        raise ParseError(str(error)) from None
    if found is not None:
        raise ValidationError(refusal(*found))
    return data


# In UTF-8 JSON, a NUL or a lone surrogate can only be written as a \u escape: a raw NUL is
# a control character the decoder refuses, raw surrogate bytes are not UTF-8. A body with no
# such escape needs no walk for them (a batch of 10,000 signals spent 0.23 s in it).
_UNSTORABLE_ESCAPE = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)
_UTF8 = {"utf-8", "utf8", "ascii", "us-ascii"}


class JSONParser(parsers.JSONParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        try:
            data = super().parse(io.BytesIO(raw), media_type, parser_context)
        except RecursionError:  # nested far too deep for the decoder itself
            raise ParseError(TOO_DEEP) from None
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        if str(encoding).lower() in _UTF8 and not _UNSTORABLE_ESCAPE.search(raw):
            try:
                bounded(data)
            except TooDeep as error:
                raise ParseError(str(error)) from None
            return data
        return _checked(data)


class JSONField(serializers.JSONField):
    """DRF's JSONField, reading JSON text (a query parameter, a form's field) with ``loads``:
    nested too deep is the field's 400, not the decoder's RecursionError."""

    def to_internal_value(self, data: Any) -> Any:
        try:
            if self.binary or getattr(data, "is_json_string", False):
                text = data.decode() if isinstance(data, bytes) else data
                return loads(text, cls=self.decoder)
            bounded(data)  # parsed already (a JSON body: the parser bounded it too)
        except TooDeep as error:
            raise serializers.ValidationError(str(error)) from None
        except ValueError:
            self.fail("invalid")
        return super().to_internal_value(data)


class JSONFormField(forms.JSONField):
    """Django's form JSONField (the admin's) with the parser's depth bound: text nested too
    deep is the field's error, shown on the form, where Django's decoder would raise
    RecursionError, in validation and again when the form is shown with what was posted."""

    def to_python(self, value: Any) -> Any:
        if isinstance(value, str) and not self.disabled and value not in self.empty_values:
            try:
                loads(value, cls=self.decoder)
            except TooDeep as error:
                raise forms.ValidationError(str(error), code="too_deep") from None
            except ValueError:
                pass  # not JSON: Django's own message, below
        return super().to_python(value)

    def bound_data(self, data: Any, initial: Any) -> Any:
        if isinstance(data, str) and not self.disabled:
            try:
                loads(data, cls=self.decoder)
            except TooDeep:
                return forms.fields.InvalidJSONInput(data)  # shown back as posted
            except ValueError:
                pass
        return super().bound_data(data, initial)
