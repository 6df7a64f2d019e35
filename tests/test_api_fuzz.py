"""Every endpoint of the OpenAPI schema, fuzzed by schemathesis: valid and invalid requests
generated from the schema, sent through the whole site (middleware, DRF, the database).

No answer may be a 5xx (a write the serializers accept and the database then refuses shows
up as one) or break the schema: status codes, content types and bodies must be the
documented ones. Bounded: QVP_FUZZ_EXAMPLES requests per operation (default 12), so that
`make test` stays quick; QVP_FUZZ_DEEP=1 adds schemathesis's coverage phase for a deeper run.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
import schemathesis
from django.contrib.auth.models import Group, Permission
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, settings
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from marketdata.models import DailyBar, Instrument
from qvp_site.operators import OPERATORS
from qvp_site.tokens import create_token
from trading.models import Account

EXAMPLES = int(os.environ.get("QVP_FUZZ_EXAMPLES", "12"))
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
# The coverage phase (boundary values of every parameter, about 90 requests an operation)
# runs with QVP_FUZZ_DEEP=1; by default the examples and QVP_FUZZ_EXAMPLES generated ones.
CONFIG = SchemathesisConfig.from_dict(
    {"phases": {"coverage": {"enabled": os.environ.get("QVP_FUZZ_DEEP") == "1"}}}
)
schema = schemathesis.openapi.from_dict(
    SchemaGenerator().get_schema(request=None, public=True), config=CONFIG
)
schema.app = WSGIHandler()


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
