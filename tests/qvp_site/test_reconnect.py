"""A restart of the database costs a running client no request once the server is back.

The site is served by a real WSGI server in a thread (Django's test client skips the
connection health checks this is about), a client keeps calling the API with a token, and the
embedded server is restarted under it. Connections are persistent (CONN_MAX_AGE) and checked
before reuse (CONN_HEALTH_CHECKS), so the first request after the restart opens a new one.
"""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from django.conf import settings
from django.core.handlers.wsgi import WSGIHandler
from django.db import connections

from qvp_site.db import embedded
from qvp_site.tokens import create_token

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


class _Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


class _ThreadedServer(WSGIServer):
    """One request at a time, each in the serving thread: one persistent connection."""


@pytest.fixture
def site(settings):
    settings.ALLOWED_HOSTS = ["127.0.0.1"]
    settings.DATABASES["default"]["CONN_MAX_AGE"] = 600
    server = make_server("127.0.0.1", 0, WSGIHandler(), _ThreadedServer, handler_class=_Quiet)

    def serve():
        server.serve_forever()
        connections.close_all()  # the serving thread's own connection

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    thread.join(10)
    connections.close_all()  # this thread's connection died with the restart too


def call(url: str, key: str) -> int:
    request = urllib.request.Request(url, headers={"Authorization": f"Token {key}"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            return response.status
    except urllib.error.HTTPError as error:
        return error.code


def test_after_a_restart_no_request_fails(site, django_user_model):
    _, key = create_token(django_user_model.objects.create_user("feed"), "reconnect test")
    url = f"{site}/api/v1/instruments/"
    assert [call(url, key) for _ in range(3)] == [200, 200, 200]  # a connection to reuse

    embedded.restart(settings.VAR_DIR)  # waits until the server accepts connections again
    time.sleep(0.2)

    # Without the health checks the first request would fail (a 500 on the dead connection).
    assert [call(url, key) for _ in range(5)] == [200] * 5
