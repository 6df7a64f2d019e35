"""The JSON parser skips its walk for NUL and lone surrogates when a UTF-8 body holds no escape
that could write one: every way such text can still arrive is refused naming the field, and
the depth bound holds on the fast path too."""

from __future__ import annotations

import io

import pytest
from rest_framework.exceptions import ParseError, ValidationError

from qvp_site.parsers import MAX_JSON_DEPTH, REASON, TOO_DEEP, JSONParser


def parse(body: bytes, encoding: str = "utf-8") -> object:
    return JSONParser().parse(io.BytesIO(body), "application/json", {"encoding": encoding})


@pytest.mark.parametrize(
    ("body", "field"),
    [
        (b'{"strategy": "\\uDBFF"}', "strategy"),  # upper-case hex
        (b'{"strategy": "\\udc00"}', "strategy"),  # a low surrogate alone
        (b'[{"a": 1}, {"exec_id": "e\\u0000"}]', "1"),
    ],
)
def test_an_escape_that_writes_unstorable_text_is_refused_naming_it(body, field):
    with pytest.raises(ValidationError) as refused:
        parse(body)
    assert field in refused.value.detail
    assert REASON in str(refused.value.detail)


def test_a_body_in_utf_16_gets_the_whole_walk():
    # Its escapes are not the UTF-8 bytes the fast path looks for.
    body = '{"strategy": "x\\u0000"}'.encode("utf-16")
    with pytest.raises(ValidationError) as refused:
        parse(body, "utf-16")
    assert refused.value.detail == {"strategy": [REASON]}


def test_a_surrogate_pair_is_stored_text_and_parses():
    assert parse(b'{"note": "\\ud83d\\ude00"}') == {"note": "\U0001f600"}


def test_an_escaped_backslash_before_u0000_is_plain_text():
    assert parse(b'{"note": "a\\\\u0000"}') == {"note": "a\\u0000"}


def test_the_depth_bound_holds_without_the_walk():
    body = b"[" * (MAX_JSON_DEPTH + 1) + b"]" * (MAX_JSON_DEPTH + 1)
    with pytest.raises(ParseError, match=TOO_DEEP):
        parse(body)
    at_the_limit = b"[" * MAX_JSON_DEPTH + b"]" * MAX_JSON_DEPTH
    assert parse(at_the_limit) is not None
