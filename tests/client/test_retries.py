"""Retries of 429 and 503 against a stub server that answers them on demand (the live
server throttles only at its rate): ``Retry-After`` honoured, exponential backoff without
it, a bounded number of attempts, POSTs retried only on those two statuses."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from qvp_client import Client, RetryPolicy, ServerError, Throttled, Unavailable

Answer = tuple[int, dict[str, str], object]


class Stub(ThreadingHTTPServer):
    """Answers each request with the next of ``answers`` (the last one again when they run
    out), keeping the requests' methods and paths."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.answers: list[Answer] = []
        self.seen: list[tuple[str, str]] = []

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Stub

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self._answer()

    def _answer(self) -> None:
        self.server.seen.append((self.command, self.path))
        answers = self.server.answers
        status, headers, body = answers.pop(0) if len(answers) > 1 else answers[0]
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"Content-Type": "application/json", **headers}.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: object) -> None:  # quiet
        pass


@pytest.fixture
def stub() -> Iterator[Stub]:
    server = Stub()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def waits() -> list[float]:
    return []


def client(stub: Stub, waits: list[float], **policy) -> Client:
    return Client(stub.url, "qvp_key", retry=RetryPolicy(**policy), sleep=waits.append)


THROTTLED: Answer = (429, {"Retry-After": "7"}, {"detail": "Request was throttled."})
BUSY: Answer = (503, {"Retry-After": "2"}, {"detail": "over the time limit", "rule": "t"})
VAR = {
    "account": 1,
    "method": "historical",
    "confidence": 0.95,
    "lookback": 252,
    "observations": 251,
    "portfolio_value": 1000.0,
    "var": 12.5,
    "cvar": 15.0,
}


def test_429_and_503_are_retried_after_their_retry_after(stub, waits):
    stub.answers = [THROTTLED, BUSY, (200, {}, VAR)]
    found = client(stub, waits).var(1)
    assert found.var == 12.5
    assert waits == [7.0, 2.0]
    assert len(stub.seen) == 3
    assert all(path.startswith("/api/v1/risk/var/?account=1") for _, path in stub.seen)


def test_without_retry_after_the_waits_grow_exponentially(stub, waits):
    stub.answers = [(503, {}, {"detail": "down"})] * 3 + [(200, {}, VAR)]
    client(stub, waits, backoff=0.5, factor=2, jitter=0).var(1)
    assert waits == [0.5, 1.0, 2.0]


def test_it_gives_up_after_the_bound(stub, waits):
    stub.answers = [THROTTLED]
    with pytest.raises(Throttled) as throttled:
        client(stub, waits, attempts=4).var(1)
    assert len(stub.seen) == 4
    assert waits == [7.0, 7.0, 7.0]
    assert "after 4 attempts" in str(throttled.value)
    assert throttled.value.status == 429

    # A Retry-After longer than the client will wait: no wait, at once.
    stub.seen.clear()
    stub.answers = [(503, {"Retry-After": "3600"}, {"detail": "maintenance"})]
    with pytest.raises(Unavailable):
        client(stub, waits, max_wait=60).var(1)
    assert len(stub.seen) == 1


def test_a_post_is_retried_on_429_and_503_only(stub, waits):
    stub.answers = [THROTTLED, (201, {}, {"created": 1, "unchanged": 0})]
    written = client(stub, waits).post_signals([{"agent": "a"}])
    assert (written.created, [m for m, _ in stub.seen]) == (1, ["POST", "POST"])

    # A 500 may come after the server wrote: never repeated.
    stub.seen.clear()
    stub.answers = [(500, {}, {"detail": "boom"}), (201, {}, {"created": 1, "unchanged": 0})]
    with pytest.raises(ServerError):
        client(stub, waits).post_signals([{"agent": "a"}])
    assert len(stub.seen) == 1

    # Told not to retry writes: a 503 raises at once (a GET is still retried).
    stub.seen.clear()
    stub.answers = [BUSY, (201, {}, {"created": 1, "unchanged": 0})]
    with pytest.raises(Unavailable):
        client(stub, waits, retry_writes=False).post_signals([{"agent": "a"}])
    assert len(stub.seen) == 1


def test_no_server_at_all_is_unavailable(waits):
    with pytest.raises(Unavailable, match="no connection"):
        Client("http://127.0.0.1:9", "k", sleep=waits.append).var(1)
