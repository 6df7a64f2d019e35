"""The exceptions the client raises: one class per kind of answer, each naming what the server
said.

Every class derives from ``QvpError`` (the HTTP status, the URL, the parsed body). A refusal
of a write or of query parameters (400, 409) is ``Refused``: its ``problems`` name each
refused item (its index in the list you gave, when the server named one), field and the
server's messages. The server answers refusals in three shapes (qvp_site/api/errors.py,
qvp_site/api/batches.py), all read here:

- ``{"<index>": {"<field>": ["message", ...]}}``: a batch with bad items;
- ``{"<field>": ["message", ...]}``, possibly nested (``{"bars": {"3": {"high": [...]}}}``);
- ``{"detail": "message", "rule": "constraint", "index": 3}``: a rule of the database or of
  the domain (``index`` only for a batch item).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

# How many problems the exception's message lists; ``problems`` holds them all.
SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class Problem:
    """One refused thing: the item's ``index`` (None for the request as a whole), the
    ``field`` (None when the server named none), the server's ``messages``, and the ``rule``
    that refused it when a rule of the database or the domain did."""

    index: int | None
    field: str | None
    messages: tuple[str, ...]
    rule: str | None = None

    def __str__(self) -> str:
        where = [f"item {self.index}"] if self.index is not None else []
        if self.field:
            where.append(self.field)
        text = "; ".join(self.messages)
        if self.rule:
            text = f"{text} (rule {self.rule})"
        return f"{': '.join(where)}: {text}" if where else text


class QvpError(Exception):
    """An answer the client cannot turn into data: ``status`` (0 when no answer came),
    ``url``, ``body`` (the parsed JSON, or the text) and the ``problems`` read from it."""

    def __init__(self, message: str, *, status: int = 0, url: str = "", body: Any = None):
        self.status, self.url, self.body = status, url, body
        self.problems: list[Problem] = problems_of(body)
        super().__init__(message)


class Refused(QvpError):
    """400 or 409: the server refused the request's data; ``problems`` names each item
    (index), field and message. A batch refused is written not at all."""


class BatchRefused(Refused):
    """A refusal of one batch of a write split into several: the indices of ``problems`` are
    in the whole list you gave; ``written`` items (the batches before) were written."""

    def __init__(self, message: str, *, written: int, status: int, url: str, body: Any):
        self.written = written
        super().__init__(message, status=status, url=url, body=body)


class Unauthorized(QvpError):
    """401, or QVP's 403 refusing the token rather than a permission: no token, or one the
    server does not take (wrong, revoked, expired, or its user inactive)."""


class Forbidden(QvpError):
    """403: the token's user may not do this (a permission, an account they may not trade,
    an auditor writing)."""


class NotFound(QvpError):
    """404: no such record or endpoint (or one the user may not see, which the server
    answers as unknown)."""


class NotAcceptable(QvpError):
    """406: the endpoint does not offer the format asked (e.g. no Arrow stream)."""


class Throttled(QvpError):
    """429 on the last attempt: the server's rate limit held for every retry."""


class Unavailable(QvpError):
    """503 on the last attempt (a statement over the server's time limit, the database
    down), or no connection at all."""


class ServerError(QvpError):
    """Another 5xx: a fault of the server, not of the request."""


def problems_of(body: Any) -> list[Problem]:
    """The problems a refusal's body names, in the order the server gave them."""
    if isinstance(body, dict) and "detail" in body and isinstance(body["detail"], str):
        index = body.get("index")
        rule = body.get("rule")
        return [
            Problem(
                index if isinstance(index, int) else None,
                None,
                (body["detail"],),
                rule if isinstance(rule, str) and rule else None,
            )
        ]
    return list(_walk(body, None, ()))


def _walk(node: Any, index: int | None, fields: tuple[str, ...]) -> Iterator[Problem]:
    """Problems under ``node``: a key that is a whole number is an item's index (the first
    one met: the item of the list posted), other keys are fields (the innermost named)."""
    if isinstance(node, dict):
        for key, value in node.items():
            text = str(key)
            if text.isdigit() and index is None:
                yield from _walk(value, int(text), ())
            elif text.isdigit():  # an index inside an item (a list field's element)
                yield from _walk(value, index, (*fields, f"[{text}]"))
            else:
                yield from _walk(value, index, (*fields, text))
        return
    if isinstance(node, list) and node and all(isinstance(item, dict) for item in node):
        # A list serializer's errors: one object per element, empty for a good one.
        for position, item in enumerate(node):
            if index is None:
                yield from _walk(item, position, ())
            else:
                yield from _walk(item, index, (*fields, f"[{position}]"))
        return
    field = ".".join(fields).replace(".[", "[") or None
    yield Problem(index, field, tuple(_messages(node)) or (str(node),))


def _messages(node: Any) -> list[str]:
    if isinstance(node, str):
        return [node]
    if isinstance(node, list):
        return [str(item) for item in node if not isinstance(item, dict | list)]
    if node is None:
        return []
    return [str(node)]


def describe(problems: list[Problem]) -> str:
    """The problems in a line each (the first ``SHOWN_PROBLEMS``)."""
    lines = [str(problem) for problem in problems[:SHOWN_PROBLEMS]]
    if len(problems) > SHOWN_PROBLEMS:
        lines.append(f"... and {len(problems) - SHOWN_PROBLEMS} more (see .problems)")
    return "\n  ".join(["", *lines]) if lines else ""
