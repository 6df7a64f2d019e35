"""Every endpoint of the OpenAPI schema, fuzzed by schemathesis: valid and invalid requests
generated from the schema, sent through the whole site (middleware, DRF, the database).

No answer may be a 5xx (a write the serializers accept and the database then refuses shows
up as one) or break the schema: status codes, content types and bodies must be the
documented ones. Every operation gets schemathesis's coverage phase (boundary values of every
parameter and body field: empty, shortest, longest, out of range, of the wrong type) and
QVP_FUZZ_EXAMPLES generated requests (default 25); QVP_FUZZ_EXAMPLES=200 is a deeper run,
QVP_FUZZ_COVERAGE=0 leaves the coverage phase out.

Then the values that broke the site before, for every operation rather than where they did:
each query parameter with hostile text (JSON whose keys are named like dict methods or
``self``, 10,000 characters, right-to-left marks, a cursor that is not one, numbers out of any
range), a JSON body nested 1,000 deep, and each array of numbers in a body filled with 1e39 or
with zeros. The whole file runs in about three and a half minutes on two idle cores.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
import schemathesis
from django.contrib.auth.models import Group, Permission
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from django.test import Client
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from marketdata.models import DailyBar, Instrument
from qvp_site.operators import OPERATORS
from qvp_site.tokens import create_token
from trading.models import Account

EXAMPLES = int(os.environ.get("QVP_FUZZ_EXAMPLES", "25"))
# What the site promises. Not schemathesis's "schema-valid request rejected": a cross-field
# rule (a bar's high below its low) is a 400 the schema cannot express; nor its auth probes:
# these requests carry a valid token on purpose (test_site.py tests refusals of the rest).
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]


# Generated as the site serves it (no database needed), at collection, so that each
# operation is a test of its own; requests go in-process through Django's WSGI handler.
# The coverage phase: boundary values of every parameter, about 90 requests an operation.
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"enabled": os.environ.get("QVP_FUZZ_COVERAGE", "1") == "1"}}}
)
RAW_SCHEMA = SchemaGenerator().get_schema(request=None, public=True)
schema = schemathesis.openapi.from_dict(RAW_SCHEMA, config=CONFIG)
schema.app = WSGIHandler()
OPERATIONS = [result.ok() for result in schema.get_all_operations()]

DICT_METHOD_KEYS = dict.fromkeys(("items", "keys", "values", "get", "update", "pop"), 1)
# Query values no schema generator thinks of: each has broken a lookup, a template or a
# decoder of the site before. Each query parameter of each operation gets them in turn.
HOSTILE_QUERY = [
    json.dumps(DICT_METHOD_KEYS),
    '{"self": 1}',
    "cD1hYmM=",  # base64 of "p=abc": a cursor that decodes, at a position no page wrote
    "x" * 10_000,
    '{"a": {"b": [1, {"c": null}]}}',
    "[]",
    "{}",
    "not-a-cursor",
    "cD0yMDI0LTAxLTAx",  # base64 of "p=2024-01-01": a time without its offset
    "cD05OTk5OTk5OTk5OTk5OTk5OTk5OTk5",  # "p=9999999999999999999999": beyond any integer
    "\u202eevil\u202c",
    "' OR '1'='1",
    "99999999999999999999999999999",
    "-1",
    "1e39",
    "NaN",
    "0001-01-01T00:00:00Z",
    "9999-12-31T23:59:59+14:00",
    "日本語,💹,Ωμέγα",
]
DEPTH = 1_000
# Every parameter gets the values that broke the site (the first CORE); the rest are shared
# out among the parameters, QVP_FUZZ_HOSTILE_SHARE a parameter (``all``: each gets every one).
CORE = 4
SHARE = os.environ.get("QVP_FUZZ_HOSTILE_SHARE", "2")


def values_for(index: int) -> list[str]:
    """The hostile values of the ``index``-th query parameter of an operation."""
    if SHARE == "all":
        return HOSTILE_QUERY
    rest = HOSTILE_QUERY[CORE:]
    share = int(SHARE)
    return HOSTILE_QUERY[:CORE] + [rest[(index * share + k) % len(rest)] for k in range(share)]


@pytest.fixture
def _one_connection():
    """As Django's test client does: requests keep the test's connection (and transaction)
    instead of closing it when they end."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def token_headers(db, _one_connection, django_user_model):
    """A program's token, and a little data for the generated requests to find."""
    spy = Instrument.objects.create(symbol="SPY", asset_class="equity", exchange="ARCA")
    DailyBar.objects.create(
        instrument=spy, ts=datetime(2026, 1, 5, tzinfo=UTC), open=100, high=101, low=99, close=100
    )
    desk = Group.objects.create(name="fuzz desk")
    Account.objects.create(name="fuzz", base_currency="USD").groups.add(desk)
    user = django_user_model.objects.create_user("fuzzer")
    # The writes need their model's permission: the fuzzer writes market data (operators) and
    # backtests, so that their validation is what gets fuzzed.
    user.groups.add(desk, Group.objects.get(name=OPERATORS))
    user.user_permissions.add(Permission.objects.get(codename="add_backtestrun"))
    _, key = create_token(user, "schemathesis")
    return {"Authorization": f"Token {key}"}


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,  # the same requests on every run: a failure is reproducible
    suppress_health_check=list(HealthCheck),
)
def test_no_endpoint_answers_5xx_or_outside_its_schema(case, token_headers):
    response = case.call(headers=token_headers)
    case.validate_response(response, checks=CHECKS, headers=token_headers)


def _resolve(node: Any) -> Any:
    """``node`` with its ``$ref`` (to the schema's components) followed."""
    while isinstance(node, dict) and "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        node = RAW_SCHEMA["components"]["schemas"][name]
    return node


# An array's lengths when its schema gives none: the usual dimensions of a vector.
LENGTHS = [1, 2, 3, 8, 16, 32, 64, 128, 256, 384, 512, 768, 1024]


def number_arrays(node: Any) -> Iterator[tuple[str, int]]:
    """The properties of a body's schema that are arrays of numbers, with each length the
    schema allows (a vector's dimension, which the schema may not state)."""
    node = _resolve(node)
    for name, prop in (node.get("properties") or {}).items() if isinstance(node, dict) else []:
        prop = _resolve(prop)
        items = _resolve(prop.get("items") or {})
        if prop.get("type") == "array" and items.get("type") in ("number", "integer"):
            low, high = prop.get("minItems", 0), prop.get("maxItems", max(LENGTHS))
            for length in sorted({low, high, *LENGTHS}):
                if max(low, 1) <= length <= high:
                    yield name, length


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def hostile_cases(operation) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what, the arguments of a case) for ``operation``: each query parameter with each of
    the hostile values, a body nested 1,000 deep, arrays of numbers out of float range."""
    for index, parameter in enumerate(operation.query):
        # One parameter at a time, the others left out: the first refusal would otherwise
        # hide what a later parameter does.
        for value in values_for(index):
            yield f"{parameter.name}={value[:30]!r}", {"query": {parameter.name: value}}
    body = RAW_SCHEMA["paths"][operation.path][operation.method.lower()].get("requestBody")
    if body and "application/json" in body["content"]:
        yield "a body nested 1,000 deep", {"body": nested(DEPTH), "raw": True}
        schema_node = body["content"]["application/json"].get("schema", {})
        yield "a body of dict-method keys", {"body": {**DICT_METHOD_KEYS, "self": 1}}
        for name, length in number_arrays(schema_node):
            for value in (1e39, 0, -1e39):
                yield f"{name}=[{value}]*{length}", {"body": {name: [value] * length}}


@pytest.mark.parametrize("operation", OPERATIONS, ids=lambda operation: operation.label)
def test_hostile_values_get_no_5xx_from_any_operation(operation, token_headers):
    """What the generators miss, sent to every operation: a 4xx naming what is wrong, or an
    answer, never a 5xx. Sent by Django's test client, the body as raw bytes (a 1,000-deep
    body is no Python object schemathesis could serialise)."""
    path = operation.path
    for parameter in operation.path_parameters:
        path = path.replace("{" + parameter.name + "}", "1")
    client = Client(raise_request_exception=False)
    failures = []
    for what, case in hostile_cases(operation):
        body = case.get("body")
        data = body if case.get("raw") else (None if body is None else json.dumps(body))
        # In a savepoint: a request whose statement failed leaves the test's transaction
        # usable for the next one.
        with transaction.atomic():
            response = client.generic(
                operation.method.upper(),
                path,
                data=data or "",
                content_type="application/json",
                QUERY_STRING=urlencode(case.get("query") or {}),
                HTTP_AUTHORIZATION=token_headers["Authorization"],
            )
            transaction.set_rollback(True)
        if response.status_code >= 500:
            failures.append(f"{response.status_code} {operation.label} with {what}{_why(response)}")
    assert not failures, "\n".join(failures)


def _why(response) -> str:
    """The exception behind a 5xx, when the view raised one."""
    info = getattr(response, "exc_info", None)
    return f": {info[1]!r}"[:300] if info else ""
