"""The API's request path made shorter (issue 27) without losing what it guarantees.

A token's lookup sets the request's time limit and names its user in one statement
(``qvp_site.acting``): a refused token names nobody, a page that is not the API still gets
its limit, row-level security still scopes by the token's user. A numbered page reads its
rows and the list's count in one statement (``qvp_site.api.pagination.CountingPaginator``),
with the same answer as Django's paginator. Every response says the server's time
(``Server-Timing``, ``qvp_site.metrics``).
"""

from __future__ import annotations

import math
import sys
from datetime import timedelta

import pytest
from django.contrib.auth.models import AnonymousUser
from django.core.paginator import Paginator
from django.db import connection, connections, transaction
from django.http import HttpResponse
from django.test import RequestFactory
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.request import Request
from rest_framework.test import APIClient

from marketdata.api import InstrumentViewSet
from marketdata.models import Instrument
from qvp_site import time_limits
from qvp_site.acting import ActingTokenAuthentication, ActingUserMiddleware
from qvp_site.api.pagination import CountingPaginator, PageNumberPagination
from qvp_site.tokens import create_token
from tests.fixtures.trading_api import account_names

URL = "/api/v1/instruments/"


def settings_seen() -> tuple[str, str, int]:
    """Who acts, and the statement limit in milliseconds, as the database sees them now."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT current_setting('qvp.user_id', true), current_setting('qvp.actor', true),"
            " (extract(epoch FROM current_setting('statement_timeout')::interval) * 1000)::int"
        )
        return cursor.fetchone()


def request_limit_ms() -> int:
    return int(time_limits.milliseconds(time_limits.REQUEST) or 0)


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {create_token(user, 'path test')[1]}")
    return client


@pytest.fixture
def request_limit(settings):
    """A request's limit unlike the test process's own (a command's), to tell them apart."""
    settings.QVP_REQUEST_STATEMENT_TIMEOUT = 17.0
    settings.QVP_COMMAND_STATEMENT_TIMEOUT = 600.0
    return request_limit_ms()


@pytest.fixture
def seen_by_the_list(monkeypatch) -> list:
    seen: list = []
    listing = InstrumentViewSet.list

    def spying(*args, **kwargs):
        seen.append(settings_seen())
        return listing(*args, **kwargs)

    monkeypatch.setattr(InstrumentViewSet, "list", spying)
    return seen


def test_a_token_request_runs_as_its_user_within_the_request_limit(
    django_user_model, request_limit, seen_by_the_list
):
    bob = django_user_model.objects.create_user("bob")
    assert token_client(bob).get(URL).status_code == 200
    assert seen_by_the_list == [(str(bob.pk), "bob", request_limit)]


def test_a_token_list_costs_its_lookup_and_one_statement(django_user_model):
    for n in range(7):
        Instrument.objects.create(symbol=f"P{n}", asset_class="equity", exchange="XNAS")
    client = token_client(django_user_model.objects.create_user("bob"))
    client.get(URL)  # the first use writes the token's last_used_at
    with CaptureQueriesContext(connection) as queries:
        response = client.get(URL, {"page_size": 5})
    statements = [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    # The token (the limit set, its user named), then the page and the list's count.
    assert len(statements) == 2, statements
    assert "set_config('qvp.user_id'" in statements[0]
    assert "COUNT(*) OVER ()" in statements[1]
    assert response.status_code == 200
    assert response.json()["count"] == 7
    assert len(response.json()["results"]) == 5


@pytest.mark.parametrize("flaw", ["revoked", "expired", "inactive"])
def test_a_refused_token_names_nobody(django_user_model, flaw):
    bob = django_user_model.objects.create_user("bob")
    token, key = create_token(bob, "path test")
    if flaw == "revoked":
        token.revoked_at = timezone.now()
    elif flaw == "expired":
        token.expires_at = timezone.now() - timedelta(seconds=1)
    else:
        bob.is_active = False
        bob.save()
    token.save()
    django_request = RequestFactory().get(URL, HTTP_AUTHORIZATION=f"Token {key}")
    django_request._qvp_token_declares = True  # as ActingUserMiddleware leaves it
    with transaction.atomic():
        with pytest.raises(AuthenticationFailed):
            ActingTokenAuthentication().authenticate(Request(django_request))
        assert settings_seen()[:2] == ("", "")


def test_an_unknown_token_is_refused(db, seen_by_the_list):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token qvp_not-a-key")
    assert client.get(URL).status_code in (401, 403)
    assert seen_by_the_list == []


def test_a_token_sent_to_a_page_not_of_the_api_still_gets_the_request_limit(request_limit, db):
    seen = []

    def view(request):
        seen.append(settings_seen())
        return HttpResponse()

    request = RequestFactory().get("/", HTTP_AUTHORIZATION="Token qvp_whatever")
    request.user = AnonymousUser()
    ActingUserMiddleware(view)(request)
    assert seen == [("", "", request_limit)] or seen == [(None, None, request_limit)]


@pytest.mark.parametrize("wall", ["row-level security"], indirect=True)
def test_row_level_security_scopes_a_token_request_by_its_user(wall):
    client = token_client(wall["alice"])
    assert account_names(client, "/api/v1/orders/") == {"alpha"}


def test_pages_are_those_of_djangos_paginator(django_user_model, monkeypatch):
    for n in range(7):
        Instrument.objects.create(symbol=f"P{n}", asset_class="equity", exchange="XNAS")
    client = token_client(django_user_model.objects.create_user("bob"))
    asks = [{"page_size": 5}, {"page_size": 5, "page": 2}, {"page_size": 5, "page": 3},
            {"page": "last", "page_size": 3}, {"page": "x"}, {"symbol": "none"}]  # fmt: skip
    ours = [(r.status_code, r.json()) for r in (client.get(URL, ask) for ask in asks)]
    monkeypatch.setattr(PageNumberPagination, "django_paginator_class", Paginator)
    djangos = [(r.status_code, r.json()) for r in (client.get(URL, ask) for ask in asks)]
    assert ours == djangos
    assert [status for status, _ in ours] == [200, 200, 404, 200, 404, 200]


def test_lists_the_window_would_miscount_are_counted_by_django(db, django_assert_num_queries):
    for n in range(4):
        Instrument.objects.create(symbol=f"P{n}", asset_class="equity", exchange="XNAS")
    exchanges = Instrument.objects.values("exchange").distinct().order_by("exchange")
    page = CountingPaginator(exchanges, 2).page(1)
    assert page.paginator.count == 1
    distinct = Instrument.objects.filter(symbol__startswith="P").distinct().order_by("id")
    with django_assert_num_queries(2):
        page = CountingPaginator(distinct, 3).page(1)
        assert (page.paginator.count, len(page)) == (4, 3)
    with django_assert_num_queries(1):
        page = CountingPaginator(Instrument.objects.order_by("id"), 3).page(2)
        assert (page.paginator.count, len(page), page.has_next()) == (4, 1, False)


def test_every_answer_says_the_servers_time(django_user_model):
    response = token_client(django_user_model.objects.create_user("bob")).get(URL)
    name, _, duration = response["Server-Timing"].partition(";dur=")
    assert name == "app"
    assert 0 < float(duration) < 60_000


# --- Lists written without model instances (qvp_site/api/rows.py) -----------------------------
def test_bars_are_written_as_their_serializer_writes_them(instrument):
    from marketdata.api import BarSerializer
    from marketdata.models import DailyBar
    from qvp_site.api import rows

    moment = timezone.now().replace(microsecond=123456)
    DailyBar.objects.create(instrument=instrument, ts=moment, open=1.5, high=2, low=1, close=1.25)
    DailyBar.objects.create(
        instrument=instrument, ts=moment - timedelta(days=1), open=3, high=3, low=3, close=3,
        volume=0, vwap=3.0000000001, trade_count=7,
    )  # fmt: skip
    bars = DailyBar.objects.order_by("ts")
    expected = BarSerializer(bars, many=True).data
    assert rows.rows(BarSerializer, bars.values(*BarSerializer.Meta.fields)) == expected
    assert rows.plain(BarSerializer)


def test_instruments_are_written_as_their_serializer_writes_them(db):
    from marketdata.api import InstrumentSerializer
    from qvp_site.api import rows

    Instrument.objects.create(symbol="A", asset_class="equity", exchange="X", tick_size="0.01")
    Instrument.objects.create(symbol="B", asset_class="future", exchange="Y", active=False)
    found = Instrument.objects.order_by("id")
    expected = InstrumentSerializer(found, many=True).data
    assert rows.rows(InstrumentSerializer, found.values(*InstrumentSerializer.Meta.fields)) == (
        expected
    )


def test_a_serializer_with_a_computed_field_is_left_to_drf():
    from rest_framework import serializers

    from qvp_site.api import rows

    class Computed(serializers.Serializer):
        ts = serializers.DateTimeField()
        label = serializers.SerializerMethodField()

    class Renamed(serializers.Serializer):
        when = serializers.DateTimeField(source="ts")

    assert not rows.plain(Computed)
    assert not rows.plain(Renamed)


# --- The throttle's history files (qvp_site/throttling.py) ------------------------------------
def test_with_the_file_cache_a_user_past_the_rate_is_refused(django_user_model, file_cache):
    client = token_client(django_user_model.objects.create_user("bob"))
    assert [client.get(URL).status_code for _ in range(4)] == [200, 200, 200, 429]
    assert int(client.get(URL)["Retry-After"]) > 0
    other = token_client(django_user_model.objects.create_user("carol"))
    assert other.get(URL).status_code == 200  # a count per user
    assert len(list((file_cache / "throttle-history").iterdir())) == 2


def test_history_files_are_counted_in_turns(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from qvp_site.throttling import HistoryFiles

    def count_one(_: int) -> None:
        store = HistoryFiles(tmp_path)  # as each worker has its own
        with store.locked("throttle_user_1"):
            history = store.get("throttle_user_1", [])
            store.set("throttle_user_1", [float(len(history)), *history])

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(count_one, range(200)))
    store = HistoryFiles(tmp_path)
    with store.locked("throttle_user_1"):
        assert store.get("throttle_user_1") == [float(n) for n in range(199, -1, -1)]


def test_a_torn_history_file_is_forgotten_not_an_error(tmp_path):
    from qvp_site.throttling import HistoryFiles

    store = HistoryFiles(tmp_path)
    with store.locked("k"):
        store.set("k", [1.0, 2.0])
    (path,) = tmp_path.iterdir()
    path.write_bytes(path.read_bytes()[:-3])
    with store.locked("k"):
        assert store.get("k", []) == []


def test_history_times_the_throttle_never_writes_are_dropped(tmp_path):
    import time

    from qvp_site.throttling import FUTURE_SLACK_SECONDS, HistoryFiles

    now = time.time()
    clean = [now, now - 1.0, now - 30.0]
    ahead = now + FUTURE_SLACK_SECONDS + 3600
    cases = [
        (clean, clean),
        ([now, math.nan, now - 1.0], [now, now - 1.0]),
        ([math.inf, now, -math.inf], [now]),
        ([now, ahead], [now]),
        ([1e308, 1e308, now], [now]),  # a sum too large: filtered one by one
        ([-1e308, -1e308, now], [-1e308, -1e308, now]),  # finite and not ahead: kept
    ]
    store = HistoryFiles(tmp_path)
    for written, read in cases:
        with store.locked("k"):
            store.set("k", written)
            assert store.get("k") == read, written


def test_a_history_directory_removed_is_made_again(tmp_path):
    import shutil

    from qvp_site.throttling import HistoryFiles

    store = HistoryFiles(tmp_path / "history")
    with store.locked("k"):
        store.set("k", [1.0])
    shutil.rmtree(tmp_path / "history")
    with store.locked("k"):
        assert store.get("k") == []
        store.set("k", [2.0])
    assert (tmp_path / "history").stat().st_mode & 0o777 == 0o700


# --- The connection's health check (qvp_site/acting.py) -----------------------------------------
def wsgi_get(key: str) -> int:
    """A token request through the WSGI handler, in this thread (its connection), with the
    request signals the test client leaves out (Django's health check is reset by them)."""
    from io import BytesIO

    from django.core.handlers.wsgi import WSGIHandler

    statuses: list[str] = []
    environ = {
        "REQUEST_METHOD": "GET", "PATH_INFO": URL, "QUERY_STRING": "", "SERVER_NAME": "testserver",
        "SERVER_PORT": "80", "HTTP_HOST": "testserver", "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": f"Token {key}", "wsgi.input": BytesIO(), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "SERVER_PROTOCOL": "HTTP/1.1",
    }  # fmt: skip
    b"".join(WSGIHandler()(environ, lambda status, headers, *_: statuses.append(status)))
    return int(statuses[0].split()[0])


@pytest.fixture
def pings(monkeypatch) -> list[int]:
    """Django's health checks (``is_usable``: a SELECT 1) made on this thread's connection."""
    made: list[int] = []
    wrapper = type(connections["default"])
    usable = wrapper.is_usable

    def counted(self):
        made.append(1)
        return usable(self)

    monkeypatch.setattr(wrapper, "is_usable", counted)
    return made


@pytest.mark.django_db(transaction=True)
def test_a_connection_reused_at_once_is_not_pinged(django_user_model, pings):
    from qvp_site.acting import QUIET_REUSE_SECONDS

    key = create_token(django_user_model.objects.create_user("bob"), "ping test")[1]
    assert wsgi_get(key) == 200
    pings.clear()
    assert [wsgi_get(key) for _ in range(3)] == [200, 200, 200]
    assert pings == []
    # Idle longer than that: Django's check, as before.
    connection._qvp_released_at -= QUIET_REUSE_SECONDS + 1
    assert wsgi_get(key) == 200
    assert pings == [1]


@pytest.mark.django_db(transaction=True)
def test_a_connection_the_server_ended_is_replaced_not_a_500(django_user_model, pings):
    import select

    key = create_token(django_user_model.objects.create_user("bob"), "ping test")[1]
    assert wsgi_get(key) == 200
    ended = connection.connection.info.backend_pid
    other = connection.get_new_connection(connection.get_connection_params())
    try:
        other.execute("SELECT pg_terminate_backend(%s::integer)", [ended])
    finally:
        other.close()
    # The server's FATAL message and the socket's end reach this side.
    assert select.select([connection.connection.fileno()], [], [], 5)[0]
    pings.clear()
    assert wsgi_get(key) == 200  # the first request after, on a new connection
    assert pings == [1]
    assert connection.connection.info.backend_pid != ended


# --- The policy header built once (qvp_site/middleware.py) ---------------------------------------
